"""Models of the M3A comparison (paper Table 4, 12 and 13b), one call in, one score out.

Every model reads a batch of calls padded to a common length: ``text`` ``(B, T, 768)``,
``audio`` ``(B, T, 62)`` (standardised, missing values 0), ``speaker`` ``(B, T)`` speaker numbers
and ``mask`` ``(B, T)``, True on real utterances. It returns ``(B,)`` scores: the predicted
(standardised) volatility, or the logit of an upward price movement.

**M3ANet** (Sawhney et al., ACL 2021), read from the paper and the release's ``Code/M3A.py``:

- the text embedding is projected to the 62 audio features, ``t = W_t x_text``;
- attention fusion weighs text and audio feature by feature: ``a_t = softmax(A_t t)``,
  ``a_a = softmax(A_a x_audio)`` (softmax over the 62 features), normalised across the two
  modalities, ``w_t = a_t / (a_t + a_a)``, ``w_a = a_a / (a_t + a_a)``. The release multiplies the
  attended features by their weights a second time, ``u = t w_t^2 + x_audio w_a^2``; we keep that;
- sinusoidal position embeddings of the utterance index are added (62-d), and the one-hot
  speaker number is concatenated (31 speakers in the release, so 93 features);
- one post-norm transformer layer (3 heads, feed-forward width 16 for volatility and 64 for
  movement, no dropout) over the call's utterances, mean pooling, and a head
  ``Linear(16 or 32) - ReLU - Dropout(0.1) - Linear(1)``.

Where ours differs from the release:

- Calls are padded at the end, and the padding is masked out of attention and pooling. The
  release pads at the start with zeros, which its attention and average then include, and
  its positions count from the start of the padding.
- The volatility head is linear on standardised targets; the release puts a ReLU on raw targets.
- Movement is trained on logits with binary cross-entropy.

**Baselines of Table 4.** ``transformer_concat``: the text and audio features of an
utterance concatenated and projected to 62, then positions and the transformer, no speakers.
``transformer_att``: M3ANet's attention fusion and positions without the speaker one-hot, that
is M3ANet less the speaker information (2 heads, since 62 does not divide by 3). ``mdrm``
(Qin and Yang, ACL 2019, the multimodal deep regression model): a bidirectional LSTM over the
call for each modality, their outputs concatenated per utterance, a second bidirectional LSTM,
its final states and a small head.

**M3ANet + HyperFuse.** HyperFuse blocks transform each utterance's primary feature with
weights generated from its auxiliary feature, before M3ANet's attention fusion and
transformer. With text as primary, the auxiliary feature is ``[audio, position embedding,
speaker one-hot]``; with audio as primary, it is ``[text, position embedding, speaker
one-hot]``. ``fusion_position`` 0 puts the blocks on the primary feature as released (768-d text
or 62-d audio); 1 puts them after the primary's projection to the model width: M3ANet's text
projection, or, for audio, which M3ANet feeds in without one, an added ``Linear(62, 62)``.
Those are the two places the paper's Table 13b counts in this pipeline, in our reading.

**Unimodal** ``text_only`` and ``audio_only``: M3ANet with one modality and without attention
fusion (positions and speakers kept), the primary pipelines of Table 13b.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..block_variants import BLOCKS
from ..blocks import HyperFuse
from .data import AUDIO_DIM, TASKS, TEXT_DIM

DEFAULT_SPEAKERS = 31  # speaker numbers 0..30 in the release; higher numbers share the last slot
MODEL_WIDTH = AUDIO_DIM  # M3ANet works at the width of the audio features
PRIMARIES = ("text", "audio")
FUSION_POSITIONS = (0, 1)
BLOCK_I_MAX_WIDTH = 128

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str):
    def wrap(builder):
        _REGISTRY[name] = builder
        return builder
    return wrap


def m3a_model_names() -> list[str]:
    return sorted(_REGISTRY)


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """Return ``(length, dim)`` position embeddings: ``sin(j / 10000^(d/dim))`` at even ``d``,
    ``cos(j / 10000^((d-1)/dim))`` at odd ``d``, for utterance index ``j``, as in the release."""
    index = torch.arange(length, dtype=torch.float64).unsqueeze(1)
    even = torch.arange(0, dim, 2, dtype=torch.float64)
    angles = index / torch.pow(10000.0, even / dim)
    table = torch.zeros(length, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles[:, : dim // 2])
    return table.float()


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` ``(B, T, D)`` over the positions where ``mask`` ``(B, T)`` is True."""
    weights = mask.unsqueeze(-1).to(x.dtype)
    return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def speaker_one_hot(speaker: torch.Tensor, num_speakers: int) -> torch.Tensor:
    return F.one_hot(speaker.clamp(0, num_speakers - 1), num_speakers).float()


class AttentionFusion(nn.Module):
    """M3ANet's feature-wise attention between two 62-d utterance features (see the module doc)."""

    def __init__(self, dim: int = MODEL_WIDTH):
        super().__init__()
        self.text_score = nn.Linear(dim, dim)
        self.audio_score = nn.Linear(dim, dim)

    def weights(self, text: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a_t = torch.softmax(self.text_score(text), dim=-1)
        a_a = torch.softmax(self.audio_score(audio), dim=-1)
        total = a_t + a_a
        return a_t / total, a_a / total

    def forward(self, text: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        w_t, w_a = self.weights(text, audio)
        return text * w_t**2 + audio * w_a**2


class CallEncoder(nn.Module):
    """One post-norm transformer layer over utterances, masked mean pooling and the task head."""

    def __init__(self, width: int, heads: int, task: str):
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        feedforward, head_width = (16, 16) if task == "volatility" else (64, 32)
        self.layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=feedforward, dropout=0.0,
                                                batch_first=True)
        self.head = nn.Sequential(nn.Linear(width, head_width), nn.ReLU(), nn.Dropout(0.1), nn.Linear(head_width, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        encoded = self.layer(x, src_key_padding_mask=~mask)
        return self.head(masked_mean(encoded, mask)).squeeze(-1)


class M3ANet(nn.Module):
    """M3ANet and its ablations; see the module docstring.

    Args:
        task: ``"volatility"`` or ``"movement"`` (sets the feed-forward and head widths).
        fusion: ``"attention"`` (M3ANet), ``"concat"``, or None for one modality.
        modalities: the utterance features read, ``("text", "audio")`` or one of them.
        speakers: concatenate the speaker one-hot (M3ANet) or not.
        hyperfuse: None, or a dict with ``primary``, ``fusion_position``, ``hidden_dim``,
            ``num_blocks`` and ``block`` for M3ANet + HyperFuse.
    """

    def __init__(self, task: str, *, fusion: str | None = "attention", modalities: tuple[str, ...] = ("text", "audio"),
                 speakers: bool = True, num_speakers: int = DEFAULT_SPEAKERS, hyperfuse: dict | None = None):
        super().__init__()
        if fusion not in ("attention", "concat", None):
            raise ValueError(f"fusion must be 'attention', 'concat' or None, got {fusion!r}")
        if (fusion is None) != (len(modalities) == 1):
            raise ValueError("a model with one modality takes fusion=None; one with two takes a fusion")
        self.task, self.fusion, self.modalities = task, fusion, tuple(modalities)
        self.num_speakers = num_speakers if speakers else 0
        self.text_projection = nn.Linear(TEXT_DIM, MODEL_WIDTH) if "text" in modalities and fusion != "concat" else None
        self.concat_projection = nn.Linear(TEXT_DIM + AUDIO_DIM, MODEL_WIDTH) if fusion == "concat" else None
        self.attention = AttentionFusion() if fusion == "attention" else None
        self.audio_projection = None
        self.hyperfuse = None
        self.hyperfuse_options = dict(hyperfuse) if hyperfuse else None
        if hyperfuse is not None:
            self._add_hyperfuse(**hyperfuse)
        width = MODEL_WIDTH + self.num_speakers
        self.encoder = CallEncoder(width, 3 if width % 3 == 0 else 2, task)

    def _add_hyperfuse(self, *, primary: str, fusion_position: int, hidden_dim: int, num_blocks: int = 1,
                       block: str = "base") -> None:
        if self.fusion != "attention" or not self.num_speakers:
            raise ValueError("HyperFuse is added to the full M3ANet (attention fusion and speakers)")
        if primary not in PRIMARIES:
            raise ValueError(f"primary must be one of {PRIMARIES}, got {primary!r}")
        if fusion_position not in FUSION_POSITIONS:
            raise ValueError(f"fusion_position must be one of {FUSION_POSITIONS} for M3A, got {fusion_position!r}")
        if block not in BLOCKS:
            raise ValueError(f"block must be one of {BLOCKS}, got {block!r}")
        raw = TEXT_DIM if primary == "text" else AUDIO_DIM
        primary_dim = raw if fusion_position == 0 else MODEL_WIDTH
        if block == "I" and primary_dim > BLOCK_I_MAX_WIDTH:
            raise ValueError(f"block 'I' generates a {primary_dim}x{primary_dim} matrix per utterance at "
                             f"fusion_position={fusion_position} with {primary} as primary; use fusion_position=1")
        aux_dim = (AUDIO_DIM if primary == "text" else TEXT_DIM) + MODEL_WIDTH + self.num_speakers
        if primary == "audio" and fusion_position == 1:
            self.audio_projection = nn.Linear(AUDIO_DIM, MODEL_WIDTH)
        self.hyperfuse = HyperFuse(primary_dim, aux_dim, hidden_dim, num_blocks=num_blocks, block=block,
                                   final_skip=block == "base")

    def utterances(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Return the ``(B, T, width)`` sequence that enters the transformer."""
        mask = batch["mask"]
        length = mask.shape[1]
        positions = sinusoidal_positions(length, MODEL_WIDTH).to(mask.device).expand(mask.shape[0], -1, -1)
        text, audio = batch.get("text"), batch.get("audio")
        speakers = speaker_one_hot(batch["speaker"], self.num_speakers) if self.num_speakers else None
        if self.hyperfuse is not None:
            text, audio = self._fuse_hyperfuse(text, audio, positions, speakers, mask)
        elif self.text_projection is not None and text is not None:
            text = self.text_projection(text)
        if self.fusion == "attention":
            fused = self.attention(text, audio)
        elif self.fusion == "concat":
            fused = self.concat_projection(torch.cat([batch["text"], batch["audio"]], dim=-1))
        else:
            fused = text if self.modalities == ("text",) else audio
        x = fused + positions
        if speakers is not None:
            x = torch.cat([x, speakers], dim=-1)
        return x

    def _fuse_per_utterance(self, primary: torch.Tensor, aux: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Run the HyperFuse stack on the real utterances only, each with its own weights."""
        fused = primary.clone()
        fused[mask] = self.hyperfuse(primary[mask], aux[mask])
        return fused

    def _fuse_hyperfuse(self, text, audio, positions, speakers, mask):
        options = self.hyperfuse_options
        if options["primary"] == "text":
            aux = torch.cat([audio, positions, speakers], dim=-1)
            if options["fusion_position"] == 0:
                text = self.text_projection(self._fuse_per_utterance(text, aux, mask))
            else:
                text = self._fuse_per_utterance(self.text_projection(text), aux, mask)
        else:
            aux = torch.cat([text, positions, speakers], dim=-1)
            text = self.text_projection(text)
            if options["fusion_position"] == 1:
                audio = self.audio_projection(audio)
            audio = self._fuse_per_utterance(audio, aux, mask)
        return text, audio

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.encoder(self.utterances(batch), batch["mask"])


class MDRM(nn.Module):
    """Multimodal deep regression model (Qin and Yang, 2019), our reading; see the module doc."""

    def __init__(self, task: str, *, hidden: int = 32):
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        self.task = task
        self.text_lstm = nn.LSTM(TEXT_DIM, hidden, batch_first=True, bidirectional=True)
        self.audio_lstm = nn.LSTM(AUDIO_DIM, hidden, batch_first=True, bidirectional=True)
        self.fusion_lstm = nn.LSTM(4 * hidden, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Sequential(nn.Linear(2 * hidden, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 1))

    @staticmethod
    def _run(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor):
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        output, (final, _) = lstm(packed)
        output, _ = nn.utils.rnn.pad_packed_sequence(output, batch_first=True, total_length=x.shape[1])
        return output, final

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        lengths = batch["mask"].sum(dim=1)
        text, _ = self._run(self.text_lstm, batch["text"], lengths)
        audio, _ = self._run(self.audio_lstm, batch["audio"], lengths)
        _, final = self._run(self.fusion_lstm, torch.cat([text, audio], dim=-1), lengths)
        return self.head(torch.cat([final[0], final[1]], dim=-1)).squeeze(-1)


@register("m3anet")
def _m3anet(task, **_):
    return M3ANet(task)


@register("transformer_att")
def _transformer_att(task, **_):
    return M3ANet(task, speakers=False)


@register("transformer_concat")
def _transformer_concat(task, **_):
    return M3ANet(task, fusion="concat", speakers=False)


@register("mdrm")
def _mdrm(task, **_):
    return MDRM(task)


@register("text_only")
def _text_only(task, **_):
    return M3ANet(task, fusion=None, modalities=("text",))


@register("audio_only")
def _audio_only(task, **_):
    return M3ANet(task, fusion=None, modalities=("audio",))


@register("m3anet_hyperfuse")
def _m3anet_hyperfuse(task, *, primary="text", fusion_position=0, hidden_dim=8, num_blocks=1, block="base", **_):
    return M3ANet(task, hyperfuse={"primary": primary, "fusion_position": fusion_position, "hidden_dim": hidden_dim,
                                   "num_blocks": num_blocks, "block": block})


HYPERFUSE_OPTIONS = ("primary", "fusion_position", "hidden_dim", "num_blocks", "block")


def build_m3a_model(name: str, task: str, **options) -> nn.Module:
    """Build an M3A model by name; HyperFuse options apply to ``m3anet_hyperfuse`` only."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown M3A model {name!r}; valid names: {', '.join(m3a_model_names())}")
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    unknown = set(options) - set(HYPERFUSE_OPTIONS)
    if unknown:
        raise ValueError(f"unknown M3A model options {sorted(unknown)}; valid: {HYPERFUSE_OPTIONS}")
    if options and name != "m3anet_hyperfuse":
        raise ValueError(f"options {sorted(options)} apply to m3anet_hyperfuse only, not {name!r}")
    return _REGISTRY[name](task, **options)
