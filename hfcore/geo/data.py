"""Images with where and when they were taken: iNaturalist 2017, 2018, 2021 and YFCC-GEO100.

Layouts read (``root`` is the dataset's folder; image paths are relative to it):

- **iNaturalist 2021** (``inat2021``): ``train.json``, ``train_mini.json`` and ``val.json`` in
  COCO style, whose ``images`` entries carry ``file_name``, ``latitude``, ``longitude`` and
  ``date``; ``annotations`` map ``image_id`` to ``category_id``.
- **iNaturalist 2017 and 2018** (``inat2017``, ``inat2018``): ``{split}{year}.json`` in COCO
  style without locations, and the locations released separately by Mac Aodha et al. (2019),
  ``{split}{year}_locations.json`` (in ``root`` or ``root/inat{year}_locations/``): a list of
  ``{"id", "lat", "lon", "date", ...}`` keyed by image id.
- **YFCC100M-GEO100** (``yfcc``; Tang et al., 2015), with the split of Mac Aodha et al. (2019):
  ``train_test_split.csv``, written by their ``make_YFCC_dataset.py`` from the dataset's
  ``photo2gps.txt``, has the columns ``path`` (``<class name>/<photo>.jpg``), ``lat``, ``lon``,
  ``split`` (train, val, test) and ``class`` (0..99). Images are read from ``root/images/<path>``
  when ``root/images`` exists, and from ``root/<path>`` otherwise. There are no dates, so only
  the location features apply (``parts=("geo",)``).

Labels are the category ids in sorted order, mapped to 0..K-1. Missing coordinates or dates
give all-zero auxiliary features (``hfcore.geo.encoding``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from .encoding import PARTS, encode_location_time

logger = logging.getLogger(__name__)

DATASETS = ("inat2017", "inat2018", "inat2021", "yfcc")
DOWNLOAD_HINTS = {
    "inat2021": "Download the iNaturalist 2021 images and JSON files from github.com/visipedia/inat_comp (2021).",
    "inat2018": "Download iNaturalist 2018 from github.com/visipedia/inat_comp (2018) and the location files "
                "train2018_locations.json and val2018_locations.json from the same page.",
    "inat2017": "Download iNaturalist 2017 from github.com/visipedia/inat_comp (2017) and the location files "
                "train2017_locations.json and val2017_locations.json released with it.",
    "yfcc": "Get YFCC100M-GEO100 (photo2gps.txt and the photos, from the ICCV 2015 paper's site) and the "
            "train_test_split.csv of Mac Aodha et al. (github.com/macaodha/geo_prior, make_YFCC_dataset.py).",
}


@dataclass
class GeoSamples:
    """Image paths, labels and raw metadata of one split."""

    paths: list[Path]
    labels: np.ndarray
    latitude: list
    longitude: list
    date: list
    num_classes: int
    class_ids: list

    def __len__(self) -> int:
        return len(self.paths)

    def aux_features(self, parts: tuple[str, ...] = PARTS) -> np.ndarray:
        """Return the ``(n, 2 * len(features))`` encoded location and date of every sample."""
        return np.stack([encode_location_time(la, lo, d, parts)
                         for la, lo, d in zip(self.latitude, self.longitude, self.date)])

    def check_files(self, split: str = "") -> None:
        """Raise FileNotFoundError when an image listed in the annotations is missing, naming the first few."""
        missing = [path for path in self.paths if not path.is_file()]
        if missing:
            listed = ", ".join(str(path) for path in missing[:3])
            raise FileNotFoundError(f"{len(missing)} of {len(self.paths)} images of split {split!r} are missing, "
                                    f"for example {listed}; download the images into the dataset folder")

    def missing_metadata(self, parts: tuple[str, ...] = PARTS) -> int:
        """Return how many samples lack a coordinate, or their date when ``parts`` uses it."""
        return int((self.aux_features(parts) == 0).all(axis=1).sum())


def _read_json(path: Path, dataset: str):
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found. {DOWNLOAD_HINTS[dataset]}")
    with open(path) as stream:
        return json.load(stream)


def _labels(annotations: dict, images: list[dict], path: Path, class_ids: list | None):
    by_image = {a["image_id"]: a["category_id"] for a in annotations["annotations"]}
    missing = [im["id"] for im in images if im["id"] not in by_image]
    if missing:
        raise ValueError(f"{path}: {len(missing)} images have no annotation, for example image id {missing[0]}")
    class_ids = class_ids or sorted({c["id"] for c in annotations.get("categories", [])} or set(by_image.values()))
    index = {c: i for i, c in enumerate(class_ids)}
    unknown = sorted({by_image[im["id"]] for im in images} - set(index))
    if unknown:
        raise ValueError(f"{path}: category ids {unknown[:5]} are not among the {len(class_ids)} categories")
    return np.array([index[by_image[im["id"]]] for im in images], dtype=np.int64), class_ids


def load_inat2021(root: str | Path, split: str = "train", class_ids: list | None = None) -> GeoSamples:
    """Read ``root/{split}.json`` of iNaturalist 2021 (split: train, train_mini or val)."""
    root = Path(root)
    path = root / f"{split}.json"
    data = _read_json(path, "inat2021")
    images = data["images"]
    labels, class_ids = _labels(data, images, path, class_ids)
    return GeoSamples([root / im["file_name"] for im in images], labels, [im.get("latitude") for im in images],
                      [im.get("longitude") for im in images], [im.get("date") for im in images], len(class_ids),
                      class_ids)


def load_inat_2017_2018(root: str | Path, year: int, split: str = "train", class_ids: list | None = None) -> GeoSamples:
    """Read ``{split}{year}.json`` and its locations file (see the module doc)."""
    root, dataset = Path(root), f"inat{year}"
    if year not in (2017, 2018):
        raise ValueError(f"year must be 2017 or 2018, got {year!r}")
    path = root / f"{split}{year}.json"
    data = _read_json(path, dataset)
    name = f"{split}{year}_locations.json"
    location_file = next((p for p in (root / name, root / f"inat{year}_locations" / name) if p.is_file()), root / name)
    locations = {entry["id"]: entry for entry in _read_json(location_file, dataset)}
    images = data["images"]
    labels, class_ids = _labels(data, images, path, class_ids)
    meta = [locations.get(im["id"], {}) for im in images]
    without = sum(1 for im in images if im["id"] not in locations)
    if without:
        logger.warning("%s: %d of %d images have no entry in %s; they get zero location features", dataset, without,
                       len(images), location_file.name)
    return GeoSamples([root / im["file_name"] for im in images], labels, [m.get("lat") for m in meta],
                      [m.get("lon") for m in meta], [m.get("date") for m in meta], len(class_ids), class_ids)


def load_yfcc(root: str | Path, split: str = "train", class_ids: list | None = None) -> GeoSamples:
    """Read the ``split`` rows of ``root/train_test_split.csv`` (no dates: use ``parts=("geo",)``)."""
    root = Path(root)
    path = root / "train_test_split.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found. {DOWNLOAD_HINTS['yfcc']}")
    table = pd.read_csv(path)
    missing = [c for c in ("path", "lon", "lat", "class", "split") if c not in table.columns]
    if missing:
        raise ValueError(f"{path} lacks the columns {missing}; found {list(table.columns)}. "
                         f"{DOWNLOAD_HINTS['yfcc']}")
    class_ids = class_ids or sorted(table["class"].unique().tolist())
    rows = table[table["split"] == split]
    if rows.empty:
        raise ValueError(f"{path} has no rows with split {split!r}; splits present: {sorted(table['split'].unique())}")
    index = {c: i for i, c in enumerate(class_ids)}
    image_root = root / "images" if (root / "images").is_dir() else root
    nan_to_none = lambda values: [None if pd.isna(v) else float(v) for v in values]  # noqa: E731
    return GeoSamples([image_root / str(n) for n in rows["path"]], np.array([index[c] for c in rows["class"]], dtype=np.int64),
                      nan_to_none(rows["lat"]), nan_to_none(rows["lon"]), [None] * len(rows),
                      len(class_ids), class_ids)


def load_geo(dataset: str, root: str | Path, split: str, class_ids: list | None = None) -> GeoSamples:
    """Load one split of a dataset by name (``DATASETS``); pass the training split's ``class_ids`` to others."""
    if dataset == "inat2021":
        return load_inat2021(root, split, class_ids)
    if dataset in ("inat2017", "inat2018"):
        return load_inat_2017_2018(root, int(dataset[-4:]), split, class_ids)
    if dataset == "yfcc":
        return load_yfcc(root, split, class_ids)
    raise ValueError(f"unknown dataset {dataset!r}; use one of {DATASETS}")


def image_transforms(size: int, train: bool):
    """Random crops and flips for training; resize and centre crop for evaluation (ImageNet statistics)."""
    from torchvision import transforms

    normalize = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    if train:
        return transforms.Compose([transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), normalize])
    return transforms.Compose([transforms.Resize(int(round(size * 256 / 224))), transforms.CenterCrop(size),
                               transforms.ToTensor(), normalize])


class GeoDataset(Dataset):
    """Images (transformed), labels and encoded location and date features of one split."""

    def __init__(self, samples: GeoSamples, transform, parts: tuple[str, ...] = PARTS):
        self.samples = samples
        self.transform = transform
        self.aux = torch.from_numpy(samples.aux_features(parts))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        from PIL import Image, UnidentifiedImageError

        path = self.samples.paths[index]
        try:
            with Image.open(path) as image:
                image = image.convert("RGB")
        except FileNotFoundError as error:
            raise FileNotFoundError(f"image {path} listed in the annotations is missing") from error
        except UnidentifiedImageError as error:
            raise ValueError(f"image {path} is not a readable image; replace it with an intact copy") from error
        return self.transform(image), int(self.samples.labels[index]), self.aux[index]
