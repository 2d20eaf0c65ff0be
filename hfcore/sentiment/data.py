"""CMU-MOSI and CMU-MOSEI in MAG-BERT's pickle format, aligned to a transformer's subword tokens.

The aligned word-level features that MAG-BERT (Rahman et al., ACL 2020) distributes
(``mosi.pkl``, ``mosei.pkl``) are one pickled dict::

    {"train": [((words, visual, acoustic), label, segment), ...], "dev": [...], "test": [...]}

``words`` is a sequence of T word strings, ``visual`` a (T, 47) array of facial features
(35 for MOSEI), ``acoustic`` a (T, 74) array of COVAREP features, ``label`` the sentiment score
in [-3, 3] (a scalar or an array holding one value) and ``segment`` the clip's id.

``align_to_tokens`` turns one example into model inputs as MAG-BERT does: every word is
split into subwords, and the word's visual and acoustic rows are repeated for each of them.
The sequence is cut to ``max_seq_length`` less the two special tokens, which get zero
features. BERT-style models put ``[CLS]`` first and ``[SEP]`` last and pad on the right;
XLNet puts ``<sep> <cls>`` last and pads on the left. The tokenizer's ``padding_side`` and its
special tokens decide which layout applies.
"""

from __future__ import annotations

import logging
import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
VISUAL_DIMS = {"mosi": 47, "mosei": 35}
ACOUSTIC_DIM = 74
DOWNLOAD_HINT = (
    "Get the aligned features in MAG-BERT's format: mosi.pkl or mosei.pkl, from the download script of "
    "the MAG-BERT repository (github.com/WasifurRahman/BERT_multimodal_transformer, datasets/download_datasets.sh), "
    "and pass the file as data_path."
)


@dataclass
class Example:
    """One clip: its words, per-word visual and acoustic features, sentiment score and id."""

    words: list[str]
    visual: np.ndarray
    acoustic: np.ndarray
    label: float
    segment: str


class SentimentFormatError(ValueError):
    """Raised when a file is not in MAG-BERT's pickle format; the message names the part."""


def _example(entry: Any, where: str) -> Example:
    try:
        (words, visual, acoustic), label, segment = entry
    except (TypeError, ValueError) as error:
        raise SentimentFormatError(f"{where}: expected ((words, visual, acoustic), label, segment), "
                                   f"got {type(entry).__name__}") from error
    words = [str(w) for w in words]
    visual, acoustic = np.asarray(visual, dtype=np.float32), np.asarray(acoustic, dtype=np.float32)
    if visual.ndim != 2 or acoustic.ndim != 2 or len(visual) != len(words) or len(acoustic) != len(words):
        raise SentimentFormatError(f"{where}: {len(words)} words need visual and acoustic arrays with one row per "
                                   f"word; got shapes {visual.shape} and {acoustic.shape}")
    values = np.asarray(label, dtype=np.float64).reshape(-1)
    if values.size != 1 or not math.isfinite(values[0]):
        raise SentimentFormatError(f"{where}: the label must be one finite score, got {label!r}")
    return Example(words, np.nan_to_num(visual), np.nan_to_num(acoustic), float(values[0]), str(segment))


def load_mag_pickle(path: str | Path) -> dict[str, list[Example]]:
    """Read a MOSI or MOSEI pickle in MAG-BERT's format; return the examples of each split.

    Infinite or NaN feature values (the released COVAREP features contain some) become 0, as
    in MAG-BERT's loader. Raises FileNotFoundError or SentimentFormatError naming the file.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"sentiment data file {path} not found. {DOWNLOAD_HINT}")
    try:
        with open(path, "rb") as stream:
            raw = pickle.load(stream)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError) as error:
        raise SentimentFormatError(f"{path} is not a readable pickle ({error}). {DOWNLOAD_HINT}") from error
    if not isinstance(raw, dict) or any(split not in raw for split in SPLITS):
        found = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise SentimentFormatError(f"{path}: expected a dict with the splits {SPLITS}, found {found}. {DOWNLOAD_HINT}")
    data = {split: [_example(entry, f"{path} [{split}][{i}]") for i, entry in enumerate(raw[split])] for split in SPLITS}
    widths = {(e.visual.shape[1], e.acoustic.shape[1]) for split in SPLITS for e in data[split]}
    if len(widths) > 1:
        raise SentimentFormatError(f"{path}: feature widths differ between examples: {sorted(widths)}")
    logger.info("%s: %s examples", path.name, {k: len(v) for k, v in data.items()})
    return data


def feature_dims(data: dict[str, list[Example]]) -> tuple[int, int]:
    """Return ``(visual_dim, acoustic_dim)`` of the examples."""
    first = next(e for split in SPLITS for e in data[split])
    return first.visual.shape[1], first.acoustic.shape[1]


@dataclass
class Aligned:
    """Model inputs of one example, all of length ``max_seq_length``."""

    input_ids: list[int]
    attention_mask: list[int]
    token_type_ids: list[int]
    visual: np.ndarray
    acoustic: np.ndarray
    label: float


def align_to_tokens(example: Example, tokenizer, max_seq_length: int) -> Aligned:
    """Tokenize ``example.words`` and repeat each word's features over its subwords (see the module doc)."""
    if max_seq_length < 3:
        raise ValueError(f"max_seq_length must be at least 3 (two special tokens and a word), got {max_seq_length}")
    tokens, rows = [], []
    for index, word in enumerate(example.words):
        pieces = tokenizer.tokenize(word)
        tokens += pieces
        rows += [index] * len(pieces)
    tokens, rows = tokens[: max_seq_length - 2], rows[: max_seq_length - 2]
    visual, acoustic = example.visual[rows], example.acoustic[rows]
    zero_v, zero_a = np.zeros((1, visual.shape[1]), np.float32), np.zeros((1, acoustic.shape[1]), np.float32)
    left_padded = getattr(tokenizer, "padding_side", "right") == "left"
    if left_padded:  # XLNet: tokens <sep> <cls>
        tokens = tokens + [tokenizer.sep_token, tokenizer.cls_token]
        visual, acoustic = np.concatenate([visual, zero_v, zero_v]), np.concatenate([acoustic, zero_a, zero_a])
        token_types = [0] * (len(tokens) - 1) + [2]  # XLNet's segment id of <cls>
    else:  # BERT: [CLS] tokens [SEP]
        tokens = [tokenizer.cls_token] + tokens + [tokenizer.sep_token]
        visual, acoustic = np.concatenate([zero_v, visual, zero_v]), np.concatenate([zero_a, acoustic, zero_a])
        token_types = [0] * len(tokens)
    ids = tokenizer.convert_tokens_to_ids(tokens)
    pad = max_seq_length - len(ids)
    mask = [1] * len(ids)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    pad_type = getattr(tokenizer, "pad_token_type_id", 0)  # 3 for XLNet's tokenizer, 0 for BERT's
    zeros_v, zeros_a = np.zeros((pad, visual.shape[1]), np.float32), np.zeros((pad, acoustic.shape[1]), np.float32)
    if left_padded:
        ids, mask, token_types = [pad_id] * pad + ids, [0] * pad + mask, [pad_type] * pad + token_types
        visual, acoustic = np.concatenate([zeros_v, visual]), np.concatenate([zeros_a, acoustic])
    else:
        ids, mask, token_types = ids + [pad_id] * pad, mask + [0] * pad, token_types + [pad_type] * pad
        visual, acoustic = np.concatenate([visual, zeros_v]), np.concatenate([acoustic, zeros_a])
    return Aligned(ids, mask, token_types, visual.astype(np.float32), acoustic.astype(np.float32), example.label)


def tensor_batch(aligned: list[Aligned]) -> dict[str, torch.Tensor]:
    """Stack aligned examples into the tensors a sentiment model reads."""
    return {
        "input_ids": torch.tensor([a.input_ids for a in aligned], dtype=torch.long),
        "attention_mask": torch.tensor([a.attention_mask for a in aligned], dtype=torch.long),
        "token_type_ids": torch.tensor([a.token_type_ids for a in aligned], dtype=torch.long),
        "visual": torch.from_numpy(np.stack([a.visual for a in aligned])),
        "acoustic": torch.from_numpy(np.stack([a.acoustic for a in aligned])),
        "label": torch.tensor([a.label for a in aligned], dtype=torch.float32),
    }


def write_mag_pickle(path: str | Path, data: dict[str, list[Example]]) -> Path:
    """Write examples in MAG-BERT's pickle format (labels as (1, 1) arrays, as released)."""
    raw = {split: [((np.array(e.words), e.visual, e.acoustic), np.array([[e.label]], dtype=np.float32), e.segment)
                   for e in data[split]] for split in SPLITS}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as stream:
        pickle.dump(raw, stream)
    return path
