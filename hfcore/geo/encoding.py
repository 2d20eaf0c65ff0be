"""Location and date features as Dynamic MLP (Yang et al., CVPR 2022) encodes them.

Latitude is divided by 90 and longitude by 180; the date becomes its day of the year scaled
to (-1, 1], ``2 * day / days_in_year - 1`` (366 days in leap years). The three numbers ``x``
(in the order latitude, longitude, date) give the six features
``[sin(pi x_1), sin(pi x_2), sin(pi x_3), cos(pi x_1), cos(pi x_2), cos(pi x_3)]``. A sample
missing its latitude, longitude or (when the date is used) date gets all zeros, as in the public code of Dynamic MLP
and of Mac Aodha et al. (2019).

Consequences worth knowing: longitudes 180 and -180 (the date line) give the same features,
and so do 31 December and the day before 1 January, so both wrap around smoothly. The two
poles also give the same latitude features (``sin(pi) = sin(-pi)``, ``cos(pi) = cos(-pi)``).
"""

from __future__ import annotations

import math
from datetime import date, datetime

import numpy as np

PARTS = ("geo", "temporal")


def is_leap_year(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def parse_date(value) -> date | None:
    """Return the date of ``value`` (a ``date``, or a string starting ``YYYY-MM-DD``); None if missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    if not text:
        return None
    try:
        return datetime.strptime(text[:10], "%Y-%m-%d").date()
    except ValueError as error:
        raise ValueError(f"date {value!r} does not start with YYYY-MM-DD") from error


def scaled_date(day: date) -> float:
    """Return the day of the year of ``day`` scaled to (-1, 1]: 1 January is just above -1, 31 December is 1."""
    days_in_year = 366 if is_leap_year(day.year) else 365
    return 2.0 * day.timetuple().tm_yday / days_in_year - 1.0


def _number(value) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def encode_location_time(latitude, longitude, when, parts: tuple[str, ...] = PARTS) -> np.ndarray:
    """Return the Dynamic MLP features of one sample (see the module doc); zeros when anything is missing."""
    unknown = set(parts) - set(PARTS)
    if unknown or not parts:
        raise ValueError(f"parts must be a non-empty subset of {PARTS}, got {parts!r}")
    width = 2 * (2 * ("geo" in parts) + ("temporal" in parts))
    latitude, longitude = _number(latitude), _number(longitude)
    day = parse_date(when) if "temporal" in parts else None
    if latitude is None or longitude is None or ("temporal" in parts and day is None):
        return np.zeros(width, dtype=np.float32)
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise ValueError(f"latitude {latitude} must lie in [-90, 90] and longitude {longitude} in [-180, 180]")
    values = []
    if "geo" in parts:
        values += [latitude / 90.0, longitude / 180.0]
    if "temporal" in parts:
        values.append(scaled_date(day))
    x = np.pi * np.asarray(values, dtype=np.float64)
    return np.concatenate([np.sin(x), np.cos(x)]).astype(np.float32)
