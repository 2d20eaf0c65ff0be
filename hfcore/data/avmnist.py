"""AV-MNIST built from real MNIST digits and real FSDD recordings.

The construction follows the MFAS AV-MNIST generator (Perez-Rua et al., 2019; paper
appendix B.1), with its bugs fixed:

* Images: PCA is fitted on the training images only. Each image is replaced by its
  reconstruction from the first k components, where k is the smallest number whose
  cumulative explained variance reaches ``pca_energy``. With 0.25, about 75% of the
  variance is removed. The PCA mean is added back.
* Audio: each image takes the next recording of its digit from a seeded shuffle of the
  split's recordings, cycling through them. FSDD recording indices 0-34 are used for
  training, 35-39 for validation and 40-49 for testing, so no recording is shared between
  splits. Each recording is centred in a 1 s window, mixed with noise at ``snr_db`` and
  turned into a 112 x 112 log power spectrogram.
* Splits: with all four MNIST IDX files, 55,000 / 5,000 / 10,000 (train / validation =
  last ``mnist_val_size`` = 5,000 training images / test), as in the paper. With only the 10,000 test images,
  a stratified 70% / 10% / 20% split of them (7,000 / 1,000 / 2,000).

Noise kinds:

* ``"babble"``: the sum of ``babble_clips`` recordings of the same split, drawn at random
  independently of the label, each at a random offset in the window (the default).
* ``"white"``: Gaussian noise.
* ``"esc50"``: ESC-50 environmental clips resampled to 8 kHz. Folds 1-3 give training noise,
  fold 4 validation noise and fold 5 test noise. The HyperFuse paper mixes ESC-50 noise, but
  ESC-50 must be downloaded by the user.
* ``"none"``.

Built datasets are cached on disk, keyed by their build parameters and the source files'
names and sizes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from tqdm.auto import tqdm

from ..atomic import atomic_path
from .audio import WINDOW_SAMPLES, fit_window, log_spectrograms, mix_at_snr, read_wav
from .idx import read_idx
from .paths import DataNotFoundError, FETCH_HINT, default_cache_dir, find_data_dir

logger = logging.getLogger(__name__)

# Bump when the construction changes, so that old cache files are not reused.
BUILD_VERSION = 1
SPLITS = ("train", "val", "test")
NOISE_KINDS = ("babble", "white", "esc50", "none")
FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class AVMNISTConfig:
    """Build parameters of AV-MNIST; every field enters the cache key.

    ``snr_db`` and ``pca_energy`` were calibrated so that on the 10,000-image version the
    image-only model reaches about 60-67% test accuracy and the audio-only model about
    40-43%, the paper's regime (see ``results/avmnist/calibration``).
    """

    pca_energy: float = 0.25
    noise: str = "babble"
    snr_db: float = -12.0
    babble_clips: int = 3
    seed: int = 0
    fsdd_val_indices: tuple[int, int] = (35, 39)
    fsdd_test_indices: tuple[int, int] = (40, 49)
    small_split: tuple[float, float, float] = (0.7, 0.1, 0.2)
    mnist_val_size: int = 5000

    def __post_init__(self):
        if not 0.0 < self.pca_energy <= 1.0:
            raise ValueError(f"pca_energy must be in (0, 1], got {self.pca_energy!r}")
        if self.noise not in NOISE_KINDS:
            raise ValueError(f"noise must be one of {NOISE_KINDS}, got {self.noise!r}")
        if self.babble_clips <= 0:
            raise ValueError(f"babble_clips must be positive, got {self.babble_clips!r}")
        if not 0 < self.mnist_val_size:
            raise ValueError(f"mnist_val_size must be positive, got {self.mnist_val_size!r}")
        if abs(sum(self.small_split) - 1.0) > 1e-9 or min(self.small_split) <= 0:
            raise ValueError(f"small_split must be three positive fractions summing to 1, got {self.small_split}")


@dataclass
class Split:
    """One split: standardised images ``(n, 1, 28, 28)`` float32, spectrograms
    ``(n, 1, 112, 112)`` float16, labels ``(n,)`` int64, and the source of each sample."""

    image: np.ndarray
    audio: np.ndarray
    label: np.ndarray
    mnist_index: np.ndarray
    recording: np.ndarray  # FSDD file name of each sample's recording ("" when unknown)

    def __len__(self) -> int:
        return len(self.label)

    def subset(self, indices: np.ndarray) -> "Split":
        return Split(**{f.name: getattr(self, f.name)[indices] for f in dataclasses.fields(self)})


@dataclass
class AVMNIST:
    """The three splits and a description of how they were built."""

    splits: dict[str, Split]
    info: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> Split:
        return self.splits[name]

    def sizes(self) -> dict[str, int]:
        return {name: len(split) for name, split in self.splits.items()}


# ----------------------------------------------------------------------------- sources


def _find_file(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def load_mnist(folder: Path) -> dict[str, np.ndarray]:
    """Read the MNIST IDX files in ``folder``: the test set, and the training set if present.

    Returns ``test_images``/``test_labels`` and, when both training files exist,
    ``train_images``/``train_labels``. Raises DataNotFoundError when the test files are
    missing and ValueError when image and label counts disagree.
    """
    paths = {key: _find_file(folder, stem) for key, stem in MNIST_FILES.items()}
    if paths["test_images"] is None or paths["test_labels"] is None:
        raise DataNotFoundError(
            f"{folder} lacks the MNIST test files {MNIST_FILES['test_images']}[.gz] and "
            f"{MNIST_FILES['test_labels']}[.gz]. {FETCH_HINT}"
        )
    wanted = ["test"] + (["train"] if paths["train_images"] and paths["train_labels"] else [])
    arrays = {}
    for part in wanted:
        images = read_idx(paths[f"{part}_images"])
        labels = read_idx(paths[f"{part}_labels"])
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise ValueError(f"{paths[f'{part}_images']}: expected images of shape (n, 28, 28), got {images.shape}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(
                f"MNIST {part} set: {len(images)} images but {labels.shape} labels "
                f"({paths[f'{part}_images']}, {paths[f'{part}_labels']}); the files do not belong together"
            )
        if labels.max() > 9:
            raise ValueError(f"{paths[f'{part}_labels']}: labels must be digits 0-9, found {labels.max()}")
        arrays[f"{part}_images"] = images
        arrays[f"{part}_labels"] = labels.astype(np.int64)
    return arrays


def list_fsdd(folder: Path) -> list[tuple[str, int, str, int]]:
    """Return ``(file name, digit, speaker, index)`` for every FSDD recording in ``folder``."""
    if not folder.is_dir():
        raise DataNotFoundError(f"FSDD recordings folder {folder} does not exist. {FETCH_HINT}")
    entries = []
    for path in sorted(folder.iterdir()):
        match = FSDD_NAME.match(path.name)
        if match:
            entries.append((path.name, int(match.group(1)), match.group(2), int(match.group(3))))
    if not entries:
        raise DataNotFoundError(f"{folder} contains no FSDD recordings named DIGIT_SPEAKER_INDEX.wav. {FETCH_HINT}")
    return entries


def list_esc50(folder: Path) -> dict[int, list[Path]]:
    """Return the ESC-50 clips in ``folder/audio`` grouped by fold (file names FOLD-ID-TAKE-CLASS.wav)."""
    audio = folder / "audio"
    if not audio.is_dir():
        raise DataNotFoundError(
            f"ESC-50 audio folder {audio} does not exist. Download the ESC-50 release "
            "(github.com/karolpiczak/ESC-50) and unpack it as esc50/ in the data folder, or use noise='babble'."
        )
    folds: dict[int, list[Path]] = {}
    for path in sorted(audio.glob("*.wav")):
        fold = path.name.split("-", 1)[0]
        if fold.isdigit():
            folds.setdefault(int(fold), []).append(path)
    return folds


def _fingerprint(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(f"{path.name}:{path.stat().st_size};".encode())
    return digest.hexdigest()


# ----------------------------------------------------------------------------- building


def _pca_corrupt(train: np.ndarray, others: list[np.ndarray], energy: float) -> tuple[list[np.ndarray], dict]:
    """Project images onto the first k principal components of ``train`` and back."""
    flat = train.reshape(len(train), -1).astype(np.float32) / 255.0
    pca = PCA(svd_solver="full").fit(flat)
    cumulative = np.cumsum(pca.explained_variance_ratio_)
    k = int(np.searchsorted(cumulative, energy - 1e-12) + 1)
    components = pca.components_[:k]

    def reconstruct(images: np.ndarray) -> np.ndarray:
        x = images.reshape(len(images), -1).astype(np.float32) / 255.0 - pca.mean_
        return ((x @ components.T) @ components + pca.mean_).astype(np.float32).reshape(-1, 28, 28)

    info = {"pca_components": k, "pca_explained_variance": float(cumulative[k - 1])}
    return [reconstruct(train)] + [reconstruct(images) for images in others], info


def _recording_in_split(split: str, index: int, config: AVMNISTConfig) -> bool:
    low_val, high_val = config.fsdd_val_indices
    low_test, high_test = config.fsdd_test_indices
    if split == "val":
        return low_val <= index <= high_val
    if split == "test":
        return low_test <= index <= high_test
    return not (low_val <= index <= high_val or low_test <= index <= high_test)


def _noise_for_split(
    split: str,
    labels: np.ndarray,
    clips: list[np.ndarray],
    config: AVMNISTConfig,
    rng: np.random.Generator,
    esc50: dict[int, list[Path]] | None,
) -> np.ndarray | None:
    """Return one noise window per sample, or None for ``noise="none"``."""
    n = len(labels)
    if config.noise == "none":
        return None
    if config.noise == "white":
        return rng.standard_normal((n, WINDOW_SAMPLES)).astype(np.float32)
    noise = np.zeros((n, WINDOW_SAMPLES), dtype=np.float32)
    if config.noise == "babble":
        for row in range(n):
            for clip_index in rng.integers(0, len(clips), size=config.babble_clips):
                clip = clips[clip_index][:WINDOW_SAMPLES]
                offset = int(rng.integers(0, WINDOW_SAMPLES - len(clip) + 1))
                noise[row] += fit_window(clip, offset=offset)
        return noise
    folds = {"train": (1, 2, 3), "val": (4,), "test": (5,)}[split]
    files = [path for fold in folds for path in (esc50 or {}).get(fold, [])]
    if not files:
        raise DataNotFoundError(f"no ESC-50 clips of folds {folds} for the {split} split; use noise='babble'")
    pool = [read_wav(path) for path in tqdm(files, desc=f"ESC-50 {split}", leave=False)]
    for row in range(n):
        clip = pool[int(rng.integers(0, len(pool)))]
        start = int(rng.integers(0, max(1, len(clip) - WINDOW_SAMPLES + 1)))
        noise[row] = fit_window(clip[start : start + WINDOW_SAMPLES], offset=0)
    return noise


def _build_audio(
    split: str,
    labels: np.ndarray,
    recordings: list[tuple[str, int, str, int]],
    waves: dict[str, np.ndarray],
    config: AVMNISTConfig,
    rng: np.random.Generator,
    esc50: dict[int, list[Path]] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pair each label with a recording of its digit and return spectrograms and file names."""
    in_split = [entry for entry in recordings if _recording_in_split(split, entry[3], config)]
    chosen = np.empty(len(labels), dtype=object)
    for digit in range(10):
        pool = [entry[0] for entry in in_split if entry[1] == digit]
        positions = np.flatnonzero(labels == digit)
        if len(positions) and not pool:
            raise DataNotFoundError(f"no FSDD recording of digit {digit} for the {split} split")
        if len(positions):
            order = rng.permutation(len(pool))
            chosen[positions] = [pool[order[i % len(pool)]] for i in range(len(positions))]
    windows = np.stack([fit_window(waves[name]) for name in chosen])
    split_clips = [waves[entry[0]] for entry in in_split]
    noise = _noise_for_split(split, labels, split_clips, config, rng, esc50)
    if noise is not None:
        windows = np.stack([mix_at_snr(w, n, config.snr_db) for w, n in zip(windows, noise)])
    return log_spectrograms(windows), chosen.astype(str)


def _standardise(arrays: dict[str, np.ndarray], dtype) -> tuple[dict[str, np.ndarray], dict]:
    mean = float(arrays["train"].mean(dtype=np.float64))
    std = float(arrays["train"].std(dtype=np.float64)) or 1.0
    return {k: ((v - mean) / std).astype(dtype) for k, v in arrays.items()}, {"mean": mean, "std": std}


def build_avmnist_arrays(data_dir: Path, config: AVMNISTConfig) -> AVMNIST:
    """Build AV-MNIST from the raw sources in ``data_dir`` (no caching)."""
    started = time.perf_counter()
    mnist = load_mnist(data_dir / "mnist")
    full = "train_images" in mnist
    if full:
        train_pool = np.arange(len(mnist["train_images"]))
        parts = {
            "train": ("train", train_pool[: -config.mnist_val_size]),
            "val": ("train", train_pool[-config.mnist_val_size :]),
            "test": ("test", np.arange(len(mnist["test_images"]))),
        }
    else:
        labels = mnist["test_labels"]
        all_indices = np.arange(len(labels))
        train_fraction, val_fraction, test_fraction = config.small_split
        train_idx, rest = train_test_split(
            all_indices, train_size=train_fraction, stratify=labels, random_state=config.seed
        )
        val_idx, test_idx = train_test_split(
            rest, test_size=test_fraction / (val_fraction + test_fraction), stratify=labels[rest],
            random_state=config.seed,
        )
        parts = {"train": ("test", np.sort(train_idx)), "val": ("test", np.sort(val_idx)), "test": ("test", np.sort(test_idx))}
    logger.info("MNIST source: %s", "60,000 + 10,000 images" if full else "10,000 test images only")

    images = {name: mnist[f"{source}_images"][idx] for name, (source, idx) in parts.items()}
    labels = {name: mnist[f"{source}_labels"][idx] for name, (source, idx) in parts.items()}
    corrupted, pca_info = _pca_corrupt(images["train"], [images["val"], images["test"]], config.pca_energy)
    corrupted = dict(zip(SPLITS, corrupted))

    recordings_dir = data_dir / "fsdd" / "recordings"
    recordings = list_fsdd(recordings_dir)
    waves = {name: read_wav(recordings_dir / name) for name, *_ in tqdm(recordings, desc="FSDD", leave=False)}
    esc50 = list_esc50(data_dir / "esc50") if config.noise == "esc50" else None
    rng = np.random.default_rng(config.seed)
    audio, chosen = {}, {}
    for name in SPLITS:
        audio[name], chosen[name] = _build_audio(name, labels[name], recordings, waves, config, rng, esc50)

    images_std, image_stats = _standardise(corrupted, np.float32)
    audio_std, audio_stats = _standardise(audio, np.float16)
    splits = {
        name: Split(
            image=images_std[name][:, None],
            audio=audio_std[name][:, None],
            label=labels[name],
            mnist_index=parts[name][1].astype(np.int64),
            recording=chosen[name],
        )
        for name in SPLITS
    }
    info = {
        "source": "raw",
        "mnist": "full" if full else "test-only",
        "config": dataclasses.asdict(config),
        **pca_info,
        "image_standardisation": image_stats,
        "audio_standardisation": audio_stats,
        "sizes": {name: len(split) for name, split in splits.items()},
        "build_seconds": round(time.perf_counter() - started, 2),
    }
    return AVMNIST(splits, info)


# ----------------------------------------------------------------------------- caching


def cache_key(data_dir: Path, config: AVMNISTConfig) -> str:
    """Return the cache key: a hash of the build parameters and the source files' names and sizes."""
    mnist_files = [p for p in (data_dir / "mnist").iterdir() if p.is_file()]
    fsdd_files = [p for p in (data_dir / "fsdd" / "recordings").glob("*.wav")]
    payload = {
        "build_version": BUILD_VERSION,
        "config": dataclasses.asdict(config),
        "mnist": _fingerprint(mnist_files),
        "fsdd": _fingerprint(fsdd_files),
    }
    if config.noise == "esc50":
        payload["esc50"] = _fingerprint(list((data_dir / "esc50" / "audio").glob("*.wav")))
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def save_avmnist(dataset: AVMNIST, path: Path) -> None:
    """Write ``dataset`` to ``path`` (.npz) atomically: a temporary file, then a rename."""
    arrays = {"info": np.array(json.dumps(dataset.info))}
    for name, split in dataset.splits.items():
        for f in dataclasses.fields(split):
            arrays[f"{name}/{f.name}"] = getattr(split, f.name)
    with atomic_path(path) as temporary, open(temporary, "wb") as stream:
        np.savez(stream, **arrays)


def load_avmnist_file(path: Path) -> AVMNIST:
    """Read a dataset written by ``save_avmnist``."""
    with np.load(path, allow_pickle=False) as archive:
        info = json.loads(str(archive["info"]))
        splits = {
            name: Split(**{f.name: archive[f"{name}/{f.name}"] for f in dataclasses.fields(Split)})
            for name in SPLITS
        }
    return AVMNIST(splits, info)


def load_avmnist(
    data_dir: str | Path | None = None,
    config: AVMNISTConfig | None = None,
    *,
    cache_dir: str | Path | None = None,
    rebuild: bool = False,
) -> AVMNIST:
    """Return AV-MNIST built from the raw sources, from the cache when it was built before.

    Args:
        data_dir: folder with ``mnist/`` and ``fsdd/recordings/``; found as described in
            ``hfcore.data.paths`` when None.
        config: build parameters; the calibrated defaults when None.
        cache_dir: folder of built datasets (``HYPERFUSE_CACHE`` or ``cache/`` when None).
        rebuild: build even when a cached copy exists, and replace it.
    """
    config = config or AVMNISTConfig()
    data_dir = find_data_dir(data_dir)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache_dir / f"avmnist-{cache_key(data_dir, config)}.npz"
    if path.is_file() and not rebuild:
        logger.info("loading cached AV-MNIST from %s", path)
        dataset = load_avmnist_file(path)
        dataset.info.update(cache_file=str(path), data_dir=str(data_dir))
        return dataset
    logger.info("building AV-MNIST from %s (%s)", data_dir, config)
    dataset = build_avmnist_arrays(data_dir, config)
    save_avmnist(dataset, path)
    logger.info("built AV-MNIST %s in %.1f s, cached at %s", dataset.sizes(), dataset.info["build_seconds"], path)
    dataset.info.update(cache_file=str(path), data_dir=str(data_dir))
    return dataset
