"""The M3A release (Sawhney et al., ACL 2021): M&A conference calls with text, audio and speakers.

Each call is a sequence of utterances. Per utterance the release gives a 768-d BERT embedding
of the transcript, 62 eGeMAPS audio features and the number of the speaker within the call.
The labels are per call: future volatility over 3, 7 and 15 days (``Y_Volatility.csv``, the
negative log of the standard deviation of daily returns, used as released) and the direction
of the price movement over the same horizons (``Y_Movement.csv``).

Sources. ``load_m3a`` reads the features from either layout of the release, in this order:

- ``m3a-features.npz``, the packed file: ``C/text`` (float16), ``C/audio`` and ``C/speaker``
  per call folder ``C``;
- ``Dataset/<call>/{Text,Audio}.csv``, the release's own layout. Parsing its 784 MB of CSV
  takes minutes, so the parsed arrays are cached (``pack_release``) in the packed format, keyed
  by the folder's path, file count and modification times.

Text embeddings are held as float16 in both cases: the packed file stores them so, and
rounding the CSV values the same way makes the two sources give identical arrays, hence
identical results. Half precision keeps about three significant digits (relative error at
most 2**-11), far finer than anything the models resolve.

Matching labels to calls. Label rows name a call ``X_Company1_Company2.pdf`` plus a date
(month/day/year); folders are ``X_Company1_Company2_YYYY-MM-DD``. ``call_key`` maps both to one
key: the name without ``.pdf``, Unicode NFC (one label spells ``Â`` as ``A`` plus a combining
circumflex, its folder as one code point), every character other than letters, digits,
``_``, ``.`` and ``-`` replaced by ``_`` (folders write ``&`` and ``'`` so), then the ISO date.
Rows that match no folder are reported and left out. Rows that repeat an earlier row's call
and labels (four in the release, all in the training indices) are reported and dropped, so
no call is counted twice. Rows that repeat a call with different labels raise an error.

Missing audio. About 0.6% of utterances have empty audio cells (542 of 81,587 have no audio
at all). ``Normalizer`` standardises every feature with the mean and standard deviation of
the training split's utterances (NaN ignored) and then sets missing values to 0, the training
mean; ``Normalizer.missing_counts`` reports how many cells that touched.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..atomic import atomic_path
from ..data.paths import DATA_ENV_VAR, REPO_ROOT, DataNotFoundError, default_cache_dir

logger = logging.getLogger(__name__)

TEXT_DIM = 768
AUDIO_DIM = 62
HORIZONS = (3, 7, 15)
TASKS = ("volatility", "movement")
PACKED_FILE = "m3a-features.npz"
LABEL_FILES = {"volatility": "Y_Volatility.csv", "movement": "Y_Movement.csv"}
LABEL_COLUMNS = {"volatility": ("vFuture3", "vFuture7", "vFuture15"), "movement": ("YT3", "YT7", "YT15")}
INDEX_FILES = {"train": "Train_index.csv", "test": "Test_index.csv"}
DOWNLOAD_HINT = (
    "Get the release from https://github.com/midas-research/m3a-acl (the label and index CSV files "
    "and the Dataset/ folder of per-call Text.csv and Audio.csv), put it in a folder m3a/, and pass "
    f"data_dir=FOLDER (the folder that holds m3a/) or set {DATA_ENV_VAR}=FOLDER."
)

_UNSAFE = re.compile(r"[^\w.\-]")


def call_key(name: str, when: str | date) -> str:
    """Return the matching key of a call from a label row's name and date, or a folder's name.

    ``when`` is the label file's ``month/day/year`` string or a ``date``. For a folder name,
    use ``folder_key``.
    """
    stem = name[:-4] if name.lower().endswith(".pdf") else name
    stem = _UNSAFE.sub("_", unicodedata.normalize("NFC", stem))
    if isinstance(when, str):
        try:
            month, day, year = (int(part) for part in when.strip().split("/"))
            when = date(year, month, day)
        except ValueError as error:
            raise ValueError(f"label date {when!r} of {name!r} is not month/day/year") from error
    return f"{stem}_{when.isoformat()}"


def folder_key(folder: str) -> str:
    """Return the matching key of a call folder named ``X_Company1_Company2_YYYY-MM-DD``."""
    stem, _, iso = folder.rpartition("_")
    try:
        when = date.fromisoformat(iso)
    except ValueError as error:
        raise ValueError(f"call folder {folder!r} does not end in _YYYY-MM-DD") from error
    return call_key(stem, when)


@dataclass
class MatchReport:
    """What matching label rows to call folders kept and left out.

    ``unmatched_rows`` and ``duplicate_rows`` hold ``(row, file name, date)`` of the label
    files; ``calls_without_labels`` the folders that no row names.
    """

    matched_rows: int = 0
    unmatched_rows: list[tuple[int, str, str]] = field(default_factory=list)
    duplicate_rows: list[tuple[int, str, str]] = field(default_factory=list)
    calls_without_labels: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.matched_rows} label rows matched, {len(self.unmatched_rows)} unmatched, "
                f"{len(self.duplicate_rows)} duplicates dropped, {len(self.calls_without_labels)} calls without labels")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def read_labels(root: Path) -> pd.DataFrame:
    """Read both label files of ``root`` into one frame: ``file_name``, ``date``, ``volatility_3`` ...

    Raises when a file is missing, lacks a column, or when the two files disagree on the calls.
    """
    frames = {}
    for task, filename in LABEL_FILES.items():
        path = root / filename
        if not path.is_file():
            raise DataNotFoundError(f"M3A label file {path} is missing. {DOWNLOAD_HINT}")
        frame = pd.read_csv(path, dtype={"File Name": str, "Date": str})
        missing = [c for c in ("File Name", "Date", *LABEL_COLUMNS[task]) if c not in frame.columns]
        if missing:
            raise ValueError(f"{path} lacks the columns {missing}; found {list(frame.columns)}")
        frames[task] = frame
    vol, mov = frames["volatility"], frames["movement"]
    if len(vol) != len(mov) or not (vol["File Name"].equals(mov["File Name"]) and vol["Date"].equals(mov["Date"])):
        raise ValueError(f"{root / LABEL_FILES['volatility']} and {root / LABEL_FILES['movement']} do not list "
                         "the same calls in the same order; the release's indices assume they do")
    labels = pd.DataFrame({"file_name": vol["File Name"], "date": vol["Date"]})
    for task in TASKS:
        for horizon, column in zip(HORIZONS, LABEL_COLUMNS[task]):
            values = frames[task][column]
            if values.isna().any():
                rows = list(values.index[values.isna()])
                raise ValueError(f"{root / LABEL_FILES[task]}: column {column} is empty in rows {rows}")
            labels[f"{task}_{horizon}"] = values.astype(float if task == "volatility" else int)
    bad = ~labels[[f"movement_{h}" for h in HORIZONS]].isin([0, 1]).all(axis=1)
    if bad.any():
        raise ValueError(f"{root / LABEL_FILES['movement']}: movement labels must be 0 or 1; rows {list(labels.index[bad])}")
    return labels


def read_indices(root: Path, n_rows: int) -> dict[str, np.ndarray]:
    """Read the release's train and test row indices (0-based rows of the label files)."""
    indices = {}
    for split, filename in INDEX_FILES.items():
        path = root / filename
        if not path.is_file():
            raise DataNotFoundError(f"M3A index file {path} is missing. {DOWNLOAD_HINT}")
        values = pd.read_csv(path)["index"].to_numpy()
        if values.min() < 0 or values.max() >= n_rows:
            raise ValueError(f"{path} holds row {values.min() if values.min() < 0 else values.max()}, outside "
                             f"the {n_rows} label rows")
        indices[split] = values.astype(int)
    overlap = np.intersect1d(indices["train"], indices["test"])
    if len(overlap):
        raise ValueError(f"rows {overlap.tolist()} are in both {INDEX_FILES['train']} and {INDEX_FILES['test']}")
    return indices


def match_labels(labels: pd.DataFrame, folders: list[str]) -> tuple[dict[int, str], MatchReport]:
    """Map each label row to its call folder; return ``{row: folder}`` and the report."""
    by_key: dict[str, str] = {}
    for folder in folders:
        key = folder_key(folder)
        if key in by_key:
            raise ValueError(f"call folders {by_key[key]!r} and {folder!r} have the same matching key {key!r}")
        by_key[key] = folder
    label_columns = [c for c in labels.columns if c.startswith(TASKS)]
    report = MatchReport()
    mapping: dict[int, str] = {}
    first_row: dict[str, int] = {}
    for row in labels.itertuples():
        key = call_key(row.file_name, row.date)
        folder = by_key.get(key)
        entry = (int(row.Index), row.file_name, row.date)
        if folder is None:
            report.unmatched_rows.append(entry)
            continue
        if folder in first_row:
            earlier = first_row[folder]
            if not labels.loc[earlier, label_columns].equals(labels.loc[row.Index, label_columns]):
                raise ValueError(f"label rows {earlier} and {row.Index} name the same call {folder!r} with "
                                 "different labels; fix the label files")
            report.duplicate_rows.append(entry)
            continue
        first_row[folder] = int(row.Index)
        mapping[int(row.Index)] = folder
    report.matched_rows = len(mapping)
    report.calls_without_labels = sorted(set(folders) - set(mapping.values()))
    for kind in ("unmatched_rows", "duplicate_rows"):
        for entry in getattr(report, kind):
            logger.warning("M3A label row %d (%s, %s): %s", entry[0], entry[1], entry[2], kind.replace("_", " ")[:-1])
    return mapping, report


def read_call_csv(folder: Path) -> dict[str, np.ndarray]:
    """Read one call folder of the release: ``text`` (float16), ``audio`` (NaN where empty), ``speaker``."""
    text_file, audio_file = folder / "Text.csv", folder / "Audio.csv"
    for path in (text_file, audio_file):
        if not path.is_file():
            raise DataNotFoundError(f"M3A call file {path} is missing. {DOWNLOAD_HINT}")
    text = pd.read_csv(text_file, index_col=0)
    audio = pd.read_csv(audio_file, index_col=0)
    if "Speaker" not in text.columns or text.shape[1] != TEXT_DIM + 1:
        raise ValueError(f"{text_file} must hold a Speaker column and {TEXT_DIM} embedding columns; "
                         f"found {text.shape[1]} columns")
    if audio.shape[1] != AUDIO_DIM:
        raise ValueError(f"{audio_file} must hold {AUDIO_DIM} feature columns; found {audio.shape[1]}")
    if len(text) != len(audio):
        raise ValueError(f"{text_file} has {len(text)} utterances but {audio_file} has {len(audio)}")
    speaker = text.pop("Speaker")
    if speaker.isna().any() or (speaker < 0).any():
        raise ValueError(f"{text_file}: the Speaker column must hold non-negative integers")
    empty_rows = np.flatnonzero(text.isna().any(axis=1).to_numpy())
    if len(empty_rows):
        raise ValueError(f"{text_file}: utterances {empty_rows.tolist()} have empty text embedding cells. A text "
                         "embedding cannot be imputed; restore the file from the release")
    return {
        "text": text.to_numpy(dtype=np.float64).astype(np.float16),  # one rounding, as in the packed file
        "audio": audio.to_numpy(dtype=np.float32),
        "speaker": speaker.to_numpy().astype(np.int16),
        "audio_feature_names": np.array(audio.columns, dtype=str),
    }


def _release_fingerprint(dataset_dir: Path, folders: list[str]) -> str:
    digest = hashlib.sha256(str(dataset_dir.resolve()).encode())
    for name in folders:
        for filename in ("Text.csv", "Audio.csv"):
            stat = (dataset_dir / name / filename).stat()
            digest.update(f"{name}/{filename}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def list_call_folders(dataset_dir: Path) -> list[str]:
    """Return the names of the call folders in ``dataset_dir``, sorted."""
    return sorted(entry.name for entry in dataset_dir.iterdir() if entry.is_dir())


def pack_release(dataset_dir: str | Path, out_file: str | Path, *, progress: bool = True) -> Path:
    """Parse every call folder of ``dataset_dir`` and write them in the packed layout, atomically."""
    dataset_dir, out_file = Path(dataset_dir), Path(out_file)
    folders = list_call_folders(dataset_dir)
    if not folders:
        raise DataNotFoundError(f"{dataset_dir} holds no call folders. {DOWNLOAD_HINT}")
    arrays: dict[str, np.ndarray] = {}
    names = None
    for name in tqdm(folders, desc="parsing M3A calls", disable=not progress):
        call = read_call_csv(dataset_dir / name)
        if names is None:
            names = call["audio_feature_names"]
        elif not np.array_equal(names, call["audio_feature_names"]):
            raise ValueError(f"{dataset_dir / name / 'Audio.csv'} has other feature columns than the first call")
        for kind in ("text", "audio", "speaker"):
            arrays[f"{name}/{kind}"] = call[kind]
    arrays["audio_feature_names"] = names
    with atomic_path(out_file) as temporary:
        with open(temporary, "wb") as stream:
            np.savez(stream, **arrays)
    logger.info("packed %d M3A calls from %s into %s", len(folders), dataset_dir, out_file)
    return out_file


@dataclass
class M3AFeatures:
    """Per-call features, keyed by call folder name."""

    text: dict[str, np.ndarray]
    audio: dict[str, np.ndarray]
    speaker: dict[str, np.ndarray]
    audio_feature_names: list[str]
    source: str


def read_packed(path: Path) -> M3AFeatures:
    """Read a file in the packed layout (the release's ``m3a-features.npz`` or our cache)."""
    text, audio, speaker = {}, {}, {}
    with np.load(path, allow_pickle=False) as packed:
        if "audio_feature_names" not in packed.files:
            raise ValueError(f"{path} is not an M3A packed file: it has no audio_feature_names array")
        names = [str(n) for n in packed["audio_feature_names"]]
        for key in packed.files:
            call, _, kind = key.rpartition("/")
            if not call:
                continue
            target = {"text": text, "audio": audio, "speaker": speaker}.get(kind)
            if target is None:
                raise ValueError(f"{path}: unexpected array {key!r}")
            target[call] = packed[key]
    for call in text:
        if call not in audio or call not in speaker:
            raise ValueError(f"{path}: call {call!r} lacks its audio or speaker array")
        n = len(text[call])
        if text[call].shape != (n, TEXT_DIM) or audio[call].shape != (n, AUDIO_DIM) or speaker[call].shape != (n,):
            raise ValueError(f"{path}: call {call!r} has shapes text {text[call].shape}, audio {audio[call].shape}, "
                             f"speaker {speaker[call].shape}; expected ({n}, {TEXT_DIM}), ({n}, {AUDIO_DIM}), ({n},)")
        if np.isnan(text[call]).any():
            rows = np.flatnonzero(np.isnan(text[call]).any(axis=1)).tolist()
            raise ValueError(f"{path}: call {call!r} has empty text embeddings in utterances {rows}")
    text = {k: v.astype(np.float16, copy=False) for k, v in text.items()}
    audio = {k: v.astype(np.float32, copy=False) for k, v in audio.items()}
    speaker = {k: v.astype(np.int64) for k, v in speaker.items()}
    return M3AFeatures(text, audio, speaker, names, str(path))


def find_m3a_dir(data_dir: str | Path | None = None) -> Path:
    """Return the M3A folder: ``data_dir/m3a`` (or ``data_dir`` itself when it holds the label files).

    Without ``data_dir`` the folders searched are ``$HYPERFUSE_DATA/m3a``, ``../shared/data/m3a``
    beside the repository and ``data/m3a`` inside it.
    """
    if data_dir is not None:
        base = [Path(data_dir).expanduser()]
    else:
        base = ([Path(os.environ[DATA_ENV_VAR]).expanduser()] if os.environ.get(DATA_ENV_VAR) else [])
        base += [REPO_ROOT.parent / "shared" / "data", REPO_ROOT / "data"]
    searched = []
    for folder in base:
        for candidate in (folder / "m3a", folder):
            searched.append(candidate)
            if (candidate / LABEL_FILES["volatility"]).is_file():
                return candidate.resolve()
    listing = "\n".join(f"  - {folder}" for folder in searched)
    raise DataNotFoundError(f"no M3A folder with {LABEL_FILES['volatility']} was found. Searched:\n{listing}\n{DOWNLOAD_HINT}")


def load_features(root: Path, *, cache_dir: str | Path | None = None, progress: bool = True) -> M3AFeatures:
    """Read the features of the M3A folder ``root``: the packed file if present, else ``Dataset/``."""
    packed = root / PACKED_FILE
    if packed.is_file():
        return read_packed(packed)
    dataset_dir = root / "Dataset"
    if not dataset_dir.is_dir():
        raise DataNotFoundError(f"{root} holds neither {PACKED_FILE} nor a Dataset/ folder of calls. {DOWNLOAD_HINT}")
    folders = list_call_folders(dataset_dir)
    cache_file = Path(cache_dir or default_cache_dir()) / f"m3a-{_release_fingerprint(dataset_dir, folders)}.npz"
    if not cache_file.is_file():
        logger.info("parsing the M3A CSV release in %s once; later runs read %s", dataset_dir, cache_file)
        pack_release(dataset_dir, cache_file, progress=progress)
    return read_packed(cache_file)


@dataclass
class M3AData:
    """The matched calls of the release: features, labels, dates and the release's split.

    Lists and arrays are aligned: entry ``i`` is call ``calls[i]``. ``split["train"]`` and
    ``split["test"]`` hold positions into them (the release's rows, less unmatched and
    duplicate rows).
    """

    calls: list[str]
    dates: np.ndarray  # datetime64[D]
    text: list[np.ndarray]
    audio: list[np.ndarray]
    speaker: list[np.ndarray]
    labels: pd.DataFrame  # volatility_3 ... movement_15, one row per call
    split: dict[str, np.ndarray]
    report: MatchReport
    source: str
    audio_feature_names: list[str]

    def targets(self, task: str, horizon: int) -> np.ndarray:
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        if horizon not in HORIZONS:
            raise ValueError(f"horizon must be one of {HORIZONS} days, got {horizon!r}")
        dtype = np.float32 if task == "volatility" else np.int64
        return self.labels[f"{task}_{horizon}"].to_numpy(dtype=dtype)

    @property
    def max_speaker(self) -> int:
        return int(max(s.max() for s in self.speaker))

    def info(self) -> dict:
        return {
            "source": self.source,
            "calls": len(self.calls),
            "utterances": int(sum(len(t) for t in self.text)),
            "split_sizes": {k: int(len(v)) for k, v in self.split.items()},
            "match_report": self.report.as_dict(),
        }


def load_m3a(data_dir: str | Path | None = None, *, cache_dir: str | Path | None = None,
             progress: bool = True) -> M3AData:
    """Load the M3A release: match labels to calls, keep the release's train/test rows.

    Unmatched and duplicate label rows are logged, recorded in ``report`` and left out.
    """
    root = find_m3a_dir(data_dir)
    labels = read_labels(root)
    indices = read_indices(root, len(labels))
    features = load_features(root, cache_dir=cache_dir, progress=progress)
    mapping, report = match_labels(labels, sorted(features.text))
    logger.info("M3A: %s", report.summary())
    rows = sorted(mapping)
    position = {row: i for i, row in enumerate(rows)}
    calls = [mapping[row] for row in rows]
    split = {name: np.array([position[r] for r in idx if r in position], dtype=int) for name, idx in indices.items()}
    dates = np.array([np.datetime64(folder_key(c).rsplit("_", 1)[1], "D") for c in calls])
    return M3AData(
        calls=calls,
        dates=dates,
        text=[features.text[c] for c in calls],
        audio=[features.audio[c] for c in calls],
        speaker=[features.speaker[c] for c in calls],
        labels=labels.loc[rows].reset_index(drop=True),
        split=split,
        report=report,
        source=features.source,
        audio_feature_names=features.audio_feature_names,
    )


def validation_split(data: M3AData, fraction: float = 0.1) -> dict[str, np.ndarray]:
    """Split the release's training calls by date: the latest ``fraction`` becomes validation.

    Returns ``{"train", "val", "test"}`` positions. Ties in date go to the earlier part in call
    order, so the split is deterministic. The test split is the release's, untouched.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction!r}")
    train = data.split["train"]
    n_val = max(1, int(round(fraction * len(train))))
    order = train[np.lexsort((train, data.dates[train]))]  # by date, then position
    return {"train": np.sort(order[:-n_val]), "val": np.sort(order[-n_val:]), "test": data.split["test"].copy()}


@dataclass
class Normalizer:
    """Per-feature standardisation fitted on training utterances; missing values become 0.

    ``fit`` ignores NaN. A feature that is constant on the training split is centred and left
    unscaled (its standard deviation is taken as 1).
    """

    text_mean: np.ndarray
    text_std: np.ndarray
    audio_mean: np.ndarray
    audio_std: np.ndarray

    @classmethod
    def fit(cls, text: list[np.ndarray], audio: list[np.ndarray]) -> "Normalizer":
        all_text = np.concatenate(text).astype(np.float64)
        all_audio = np.concatenate(audio).astype(np.float64)
        if np.isnan(all_audio).all(axis=0).any():
            bad = np.flatnonzero(np.isnan(all_audio).all(axis=0)).tolist()
            raise ValueError(f"audio features {bad} are missing in every training utterance; cannot normalise them")
        text_std = all_text.std(axis=0)
        audio_std = np.nanstd(all_audio, axis=0)
        return cls(all_text.mean(axis=0), np.where(text_std > 0, text_std, 1.0),
                   np.nanmean(all_audio, axis=0), np.where(audio_std > 0, audio_std, 1.0))

    def text(self, values: np.ndarray) -> np.ndarray:
        return ((values.astype(np.float64) - self.text_mean) / self.text_std).astype(np.float32)

    def audio(self, values: np.ndarray) -> np.ndarray:
        scaled = (values.astype(np.float64) - self.audio_mean) / self.audio_std
        return np.nan_to_num(scaled, nan=0.0).astype(np.float32)

    @staticmethod
    def missing_counts(audio: list[np.ndarray]) -> dict[str, int]:
        stacked = np.concatenate(audio)
        missing = np.isnan(stacked)
        return {"cells": int(missing.sum()), "utterances_with_any": int(missing.any(axis=1).sum()),
                "utterances_all_missing": int(missing.all(axis=1).sum()), "utterances": int(len(stacked))}

    def to_json(self) -> str:
        return json.dumps({k: v.tolist() for k, v in dataclasses.asdict(self).items()})
