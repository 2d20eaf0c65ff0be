"""Locating the raw data folder.

The data folder holds ``mnist/`` (MNIST IDX files), ``fsdd/recordings/`` (FSDD WAV files)
and optionally ``esc50/`` (the ESC-50 release). It is found, in order, from the explicit
argument, the ``HYPERFUSE_DATA`` environment variable, ``../shared/data`` beside the
repository, and ``data/`` inside the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV_VAR = "HYPERFUSE_DATA"
CACHE_ENV_VAR = "HYPERFUSE_CACHE"
REPO_ROOT = Path(__file__).resolve().parents[2]
FETCH_HINT = (
    "Download the public sources with `python -m hfcore fetch --dest DIR` (needs internet; "
    f"verifies checksums), then pass data_dir=DIR (--data-dir DIR on the command line) or set {DATA_ENV_VAR}=DIR."
)


class DataNotFoundError(FileNotFoundError):
    """Raised when no folder contains the data a loader needs."""


def candidate_data_dirs(data_dir: str | Path | None = None) -> list[Path]:
    """Return the folders searched for the raw data, in order."""
    if data_dir is not None:
        return [Path(data_dir).expanduser()]
    candidates = []
    if os.environ.get(DATA_ENV_VAR):
        candidates.append(Path(os.environ[DATA_ENV_VAR]).expanduser())
    candidates += [REPO_ROOT.parent / "shared" / "data", REPO_ROOT / "data"]
    return candidates


def find_data_dir(data_dir: str | Path | None = None, *, required: tuple[str, ...] = ("mnist", "fsdd")) -> Path:
    """Return the first candidate folder that contains every subfolder in ``required``.

    Raises DataNotFoundError naming every folder searched and how to get the data.
    """
    searched = candidate_data_dirs(data_dir)
    for folder in searched:
        if all((folder / name).is_dir() for name in required):
            return folder.resolve()
    listing = "\n".join(f"  - {folder}" for folder in searched)
    raise DataNotFoundError(
        f"no data folder with the subfolders {', '.join(required)} was found. Searched:\n{listing}\n{FETCH_HINT}"
    )


def default_cache_dir() -> Path:
    """Return the folder for built datasets: ``HYPERFUSE_CACHE`` or ``cache/`` in the repository."""
    return Path(os.environ.get(CACHE_ENV_VAR) or REPO_ROOT / "cache").expanduser()
