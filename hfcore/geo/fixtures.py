"""Small fixtures in the exact public layouts of iNaturalist 2017, 2018, 2021 and YFCC100M-GEO100.

Images are small JPEGs whose colour depends on the class, plus noise; locations depend on the
class too, so a model can learn from either input. One image per split has no location, as
some real records do. Used by the tests and the smoke runs of the notebooks.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np

SPECIES = ("Lumbricus terrestris", "Cardinalis cardinalis", "Quercus robur")
KINGDOMS = ("Animalia", "Animalia", "Plantae")


def _jpeg(path: Path, label: int, rng: np.random.Generator, size: int = 40) -> tuple[int, int]:
    from PIL import Image

    base = np.zeros(3)
    base[label % 3] = 200
    pixels = np.clip(base + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=90)
    return size, size


def _location(label: int, rng: np.random.Generator) -> tuple[float, float, date]:
    latitude = float(np.clip(-50 + 45 * label + rng.normal(0, 5), -90, 90))
    longitude = float(np.clip(-120 + 100 * label + rng.normal(0, 10), -180, 180))
    day = date(2019, 1, 1) + timedelta(days=int(rng.integers(0, 365)))
    return round(latitude, 5), round(longitude, 5), day


def _categories() -> list[dict]:
    return [{"id": i, "name": name, "supercategory": KINGDOMS[i], "kingdom": KINGDOMS[i]}
            for i, name in enumerate(SPECIES)]


def write_inat2021_fixture(root: str | Path, per_class: dict[str, int] | None = None, seed: int = 0) -> Path:
    """Write ``train_mini.json``, ``val.json`` and their images under ``root``; return ``root``."""
    root, rng = Path(root), np.random.default_rng(seed)
    per_class = per_class or {"train_mini": 8, "val": 4}
    image_id = 0
    for split, count in per_class.items():
        images, annotations, categories = [], [], _categories()
        for category in categories:
            category["image_dir_name"] = f"{category['id']:05d}_{category['kingdom']}_{category['name'].replace(' ', '_')}"
            category["common_name"] = category["name"]
            for _ in range(count):
                file_name = f"{split}/{category['image_dir_name']}/{rng.bytes(8).hex()}.jpg"
                width, height = _jpeg(root / file_name, category["id"], rng)
                latitude, longitude, day = _location(category["id"], rng)
                missing = image_id % (3 * count) == 0  # one record per split without a location
                images.append({"id": image_id, "width": width, "height": height, "file_name": file_name,
                               "license": 0, "rights_holder": "fixture", "date": f"{day} 10:30:00+00:00",
                               "latitude": None if missing else latitude, "longitude": None if missing else longitude,
                               "location_uncertainty": None if missing else 10})
                annotations.append({"id": image_id, "image_id": image_id, "category_id": category["id"]})
                image_id += 1
        document = {"info": {"year": 2021, "version": "fixture"}, "images": images, "categories": categories,
                    "annotations": annotations, "licenses": [{"id": 0, "name": "CC0"}]}
        (root / f"{split}.json").write_text(json.dumps(document))
    return root


def write_inat_2017_2018_fixture(root: str | Path, year: int, per_class: dict[str, int] | None = None,
                                 seed: int = 0) -> Path:
    """Write ``{split}{year}.json``, ``{split}{year}_locations.json`` and the images under ``root``."""
    root, rng = Path(root), np.random.default_rng(seed)
    per_class = per_class or {"train": 8, "val": 4}
    folder = "train_val2018" if year == 2018 else "train_val_images"
    image_id = 0
    for split, count in per_class.items():
        images, annotations, locations = [], [], []
        for category in _categories():
            for _ in range(count):
                subfolder = str(category["id"]) if year == 2018 else category["name"]
                file_name = f"{folder}/{category['supercategory']}/{subfolder}/{rng.bytes(16).hex()}.jpg"
                width, height = _jpeg(root / file_name, category["id"], rng)
                images.append({"id": image_id, "file_name": file_name, "width": width, "height": height, "license": 0})
                annotations.append({"id": image_id, "image_id": image_id, "category_id": category["id"]})
                latitude, longitude, day = _location(category["id"], rng)
                if image_id % (3 * count) != 0:  # one image per split has no entry in the locations file
                    locations.append({"id": image_id, "lat": latitude, "lon": longitude, "date": str(day),
                                      "valid": True})
                image_id += 1
        document = {"info": {"year": year}, "images": images, "annotations": annotations,
                    "categories": _categories(), "licenses": [{"id": 0, "name": "fixture"}]}
        (root / f"{split}{year}.json").write_text(json.dumps(document))
        (root / f"{split}{year}_locations.json").write_text(json.dumps(locations))
    return root


def write_yfcc_fixture(root: str | Path, per_class: dict[str, int] | None = None, seed: int = 0) -> Path:
    """Write ``train_test_split.csv`` (path, lat, lon, split, class) and ``images/<class>/<photo>.jpg``."""
    import pandas as pd

    root, rng = Path(root), np.random.default_rng(seed)
    per_class = per_class or {"train": 8, "val": 2, "test": 4}
    rows = []
    for split, count in per_class.items():
        for label, name in enumerate(("alcatraz", "beach", "colosseum")):
            for k in range(count):
                path = f"{name}/{rng.integers(10**9, 10**10)}.jpg"
                _jpeg(root / "images" / path, label, rng)
                latitude, longitude, _ = _location(label, rng)
                missing = k == 0 and split == "train" and label == 0
                rows.append({"path": path, "lat": np.nan if missing else latitude,
                             "lon": np.nan if missing else longitude, "split": split, "class": label})
    pd.DataFrame(rows).to_csv(root / "train_test_split.csv", index=False)
    return root
