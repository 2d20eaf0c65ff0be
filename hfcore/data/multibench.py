"""Loader for MultiBench's prepared AV-MNIST folder.

Layout (pliang279/MultiBench): ``image/{train,test}_data.npy`` (n x 784),
``audio/{train,test}_data.npy`` (n x 112 x 112), ``{train,test}_labels.npy``, values already
divided by 255. Validation is the last 5,000 of the 60,000 training samples, as in
MultiBench's own data loader.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .avmnist import AVMNIST, Split
from .paths import DataNotFoundError

MULTIBENCH_FILES = ("image/train_data.npy", "image/test_data.npy", "audio/train_data.npy",
                    "audio/test_data.npy", "train_labels.npy", "test_labels.npy")


def load_multibench_avmnist(folder: str | Path, *, val_size: int = 5000) -> AVMNIST:
    """Read MultiBench's AV-MNIST folder into the same splits as the raw-source builder.

    Images and spectrograms are standardised with the training split's mean and standard
    deviation, as for the raw build. Raises DataNotFoundError naming any missing array and
    ValueError when array lengths disagree.
    """
    folder = Path(folder)
    missing = [name for name in MULTIBENCH_FILES if not (folder / name).is_file()]
    if missing:
        raise DataNotFoundError(
            f"{folder} is not a complete MultiBench AV-MNIST folder: missing {', '.join(missing)}. "
            "It must hold image/, audio/ and the label arrays as MultiBench's avmnist.tar.gz unpacks them."
        )
    arrays = {name: np.load(folder / name, allow_pickle=False) for name in MULTIBENCH_FILES}
    parts = {}
    for part in ("train", "test"):
        images = arrays[f"image/{part}_data.npy"]
        audio = arrays[f"audio/{part}_data.npy"]
        labels = arrays[f"{part}_labels.npy"].astype(np.int64).reshape(-1)
        if not len(images) == len(audio) == len(labels):
            raise ValueError(
                f"MultiBench {part} arrays disagree: {len(images)} images, {len(audio)} spectrograms, "
                f"{len(labels)} labels in {folder}"
            )
        parts[part] = (images.reshape(-1, 1, 28, 28), audio.reshape(-1, 1, 112, 112), labels)
    n_train = len(parts["train"][2])
    if not 0 < val_size < n_train:
        raise ValueError(f"val_size must be in 1..{n_train - 1} for {n_train} training samples, got {val_size}")
    ranges = {"train": ("train", slice(0, n_train - val_size)), "val": ("train", slice(n_train - val_size, n_train)),
              "test": ("test", slice(None))}
    image_train = parts["train"][0][ranges["train"][1]]
    audio_train = parts["train"][1][ranges["train"][1]]
    image_mean, image_std = float(image_train.mean()), float(image_train.std()) or 1.0
    audio_mean, audio_std = float(audio_train.mean(dtype=np.float64)), float(audio_train.std(dtype=np.float64)) or 1.0
    splits = {}
    for name, (source, rows) in ranges.items():
        images, audio, labels = parts[source]
        index = np.arange(len(labels))[rows]
        splits[name] = Split(
            image=((images[rows] - image_mean) / image_std).astype(np.float32),
            audio=((audio[rows] - audio_mean) / audio_std).astype(np.float16),
            label=labels[rows],
            mnist_index=index,
            recording=np.full(len(index), "", dtype=str),
        )
    info = {
        "source": "multibench",
        "folder": str(folder),
        "image_standardisation": {"mean": image_mean, "std": image_std},
        "audio_standardisation": {"mean": audio_mean, "std": audio_std},
        "sizes": {name: len(split) for name, split in splits.items()},
    }
    return AVMNIST(splits, info)
