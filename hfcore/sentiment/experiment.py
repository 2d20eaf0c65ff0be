"""Sentiment regression on CMU-MOSI / CMU-MOSEI with a pretrained transformer (paper Table 3).

``build_sentiment_model`` loads a local ``transformers`` checkpoint with a one-output
regression head and, for ``fusion="mag"`` or ``"hyperfuse"``, fuses the visual and acoustic
features into the token states entering encoder layer ``layer`` (``FusionAtLayer``).
``fusion="none"`` is the text-only model.

``run_sentiment`` trains one model (AdamW on the mean squared error, as MAG-BERT does), keeps
the epoch with the lowest mean absolute error on the dev split, tests it once and writes one
JSON record. MAG-BERT's public code reports the best test score over epochs; here the test
split plays no part in any choice.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..block_variants import BLOCKS
from ..data.paths import REPO_ROOT
from ..locks import exclusive_lock
from ..models import count_parameters
from ..results import ResultExistsError, provenance, write_json_atomic
from ..training import seed_everything
from .data import SPLITS, align_to_tokens, feature_dims, load_mag_pickle, tensor_batch
from .injection import FusionAtLayer, HyperFuseInjection, MAGInjection
from .metrics import sentiment_metrics

logger = logging.getLogger(__name__)

FUSIONS = ("none", "mag", "hyperfuse")
NON_IDENTITY = ("seed", "data_path", "checkpoint", "results_dir", "overwrite", "progress", "run_name")


class SentimentModel(nn.Module):
    """A ``transformers`` regression model with optional fusion of visual and acoustic features."""

    def __init__(self, backbone: nn.Module, fusion: nn.Module | None, layer: int):
        super().__init__()
        self.fusion_kind = "none" if fusion is None else type(fusion).__name__
        self.network = backbone if fusion is None else FusionAtLayer(backbone, fusion, layer=layer)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
        if isinstance(self.network, FusionAtLayer):
            aux = torch.cat([batch["visual"], batch["acoustic"]], dim=-1)
            output = self.network(aux=aux, **inputs)
        else:
            output = self.network(**inputs)
        return output.logits.squeeze(-1)


def build_sentiment_model(checkpoint: str | Path, *, fusion: str = "hyperfuse", layer: int = 0, visual_dim: int = 47,
                          acoustic_dim: int = 74, hidden_dim: int = 64, num_blocks: int = 1, block: str = "base",
                          beta_shift: float = 1.0, dropout: float = 0.5) -> SentimentModel:
    """Load ``checkpoint`` (a local folder) as a regression model and add the chosen fusion at ``layer``."""
    from transformers import AutoModelForSequenceClassification

    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
    path = Path(checkpoint).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no transformers checkpoint (config.json) in {path}. Download one, for example with "
                                "`hf download bert-base-uncased --local-dir DIR`, and pass checkpoint=DIR")
    backbone = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, problem_type="regression")
    width = backbone.config.hidden_size
    if fusion == "mag":
        module = MAGInjection(width, visual_dim, acoustic_dim, beta_shift=beta_shift, dropout=dropout)
    elif fusion == "hyperfuse":
        module = HyperFuseInjection(width, visual_dim + acoustic_dim, hidden_dim, num_blocks=num_blocks, block=block)
    else:
        module = None
    return SentimentModel(backbone, module, layer)


def run_identity(params: dict[str, Any]) -> str:
    """Return a short hash of what defines a run: its parameters and the checkpoint folder's name."""
    identity = {k: v for k, v in sorted(params.items()) if k not in NON_IDENTITY}
    identity["backbone"] = Path(params["checkpoint"]).name
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:8]


def validate_sentiment_params(params: dict[str, Any]) -> None:
    """Raise ValueError naming the first invalid parameter, before anything is loaded."""
    if params["fusion"] not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, got {params['fusion']!r}")
    for name in ("epochs", "batch_size", "max_seq_length", "hidden_dim", "num_blocks"):
        value = params[name]
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r} ({type(value).__name__})")
    if not isinstance(params["layer"], int) or isinstance(params["layer"], bool) or params["layer"] < 0:
        raise ValueError(f"layer must be a non-negative integer, got {params['layer']!r}")
    if not isinstance(params["lr"], (int, float)) or isinstance(params["lr"], bool) or params["lr"] <= 0:
        raise ValueError(f"lr must be a positive number, got {params['lr']!r}")
    if params["block"] not in BLOCKS:
        raise ValueError(f"block must be one of {BLOCKS}, got {params['block']!r}")
    if not 0 < params["train_fraction"] <= 1:
        raise ValueError(f"train_fraction must be in (0, 1], got {params['train_fraction']!r}")


def _batches(tensors: dict[str, torch.Tensor], batch_size: int, generator: torch.Generator | None = None):
    n = len(tensors["label"])
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        index = order[start : start + batch_size]
        yield {k: v[index] for k, v in tensors.items()}


@torch.no_grad()
def predict(model: SentimentModel, tensors: dict[str, torch.Tensor], batch_size: int = 32) -> np.ndarray:
    model.eval()
    return torch.cat([model(batch) for batch in _batches(tensors, batch_size)]).numpy()


def run_sentiment(
    *,
    data_path: str,
    checkpoint: str,
    fusion: str = "hyperfuse",
    layer: int = 0,
    seed: int = 0,
    epochs: int = 40,
    batch_size: int = 48,
    lr: float = 1e-5,
    max_seq_length: int = 50,
    hidden_dim: int = 64,
    num_blocks: int = 1,
    block: str = "base",
    beta_shift: float = 1.0,
    dropout: float = 0.5,
    train_fraction: float = 1.0,
    model_label: str | None = None,
    results_dir: str | None = None,
    run_name: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train and test one sentiment model and write ``results_dir/run_name.json``; return the record.

    Defaults follow MAG-BERT (AdamW, lr 1e-5, batch 48, 50 subword tokens, beta_shift 1,
    dropout 0.5 in the gate, fusion after the embeddings). ``model_label`` names the model in
    tables (for example "XLNet + HyperFuse"); ``train_fraction`` keeps the first share of the
    shuffled training split (seeded), for data-efficiency curves.
    """
    started = time.perf_counter()
    params = {k: str(v) if isinstance(v, Path) else v for k, v in locals().items() if k != "started"}
    validate_sentiment_params(params)
    backbone = Path(checkpoint).name
    run_name = params["run_name"] = run_name or f"{backbone}-{fusion}-l{layer}-{run_identity(params)}-seed{seed}"
    results_dir = Path(results_dir) if results_dir else REPO_ROOT / "results" / "sentiment" / "interactive"
    result_file = results_dir / f"{run_name}.json"
    if result_file.exists() and not overwrite:
        raise ResultExistsError(f"{result_file} already exists; pass overwrite=True (-p overwrite True under "
                                "papermill) to replace it, or choose another run_name or results_dir")
    with exclusive_lock(result_file, hint="wait for it to end, or choose another run_name"):
        return _train_and_write(params, result_file, started)


def _train_and_write(params: dict[str, Any], result_file: Path, started: float) -> dict[str, Any]:
    from transformers import AutoTokenizer

    data = load_mag_pickle(params["data_path"])
    visual_dim, acoustic_dim = feature_dims(data)
    seed_everything(params["seed"])
    model = build_sentiment_model(params["checkpoint"], fusion=params["fusion"], layer=params["layer"],
                                  visual_dim=visual_dim, acoustic_dim=acoustic_dim, hidden_dim=params["hidden_dim"],
                                  num_blocks=params["num_blocks"], block=params["block"],
                                  beta_shift=params["beta_shift"], dropout=params["dropout"])
    tokenizer = AutoTokenizer.from_pretrained(params["checkpoint"])
    tensors = {split: tensor_batch([align_to_tokens(e, tokenizer, params["max_seq_length"]) for e in data[split]])
               for split in SPLITS}
    generator = torch.Generator().manual_seed(params["seed"])
    if params["train_fraction"] < 1:
        keep = torch.randperm(len(tensors["train"]["label"]), generator=generator)
        keep = keep[: max(1, int(round(params["train_fraction"] * len(keep))))]
        tensors["train"] = {k: v[keep] for k, v in tensors["train"].items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=params["lr"])
    loss_function = nn.MSELoss()
    history, best = [], (float("inf"), 0, None)
    for epoch in tqdm(range(1, params["epochs"] + 1), desc=params["run_name"], disable=not params["progress"]):
        model.train()
        total, count = 0.0, 0
        for step, batch in enumerate(_batches(tensors["train"], params["batch_size"], generator), start=1):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_function(model(batch), batch["label"])
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{params['run_name']}: the training loss became {loss.item()} in epoch "
                                         f"{epoch}, step {step}; lower lr or check the features")
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * len(batch["label"]), count + len(batch["label"])
        dev = sentiment_metrics(predict(model, tensors["dev"]), tensors["dev"]["label"].numpy())
        history.append({"epoch": epoch, "train_loss": total / count, **{f"dev_{k}": v for k, v in dev.items()}})
        if dev["mae"] < best[0]:
            best = (dev["mae"], epoch, copy.deepcopy(model.state_dict()))
    model.load_state_dict(best[2])
    test = sentiment_metrics(predict(model, tensors["test"]), tensors["test"]["label"].numpy())
    dev = sentiment_metrics(predict(model, tensors["dev"]), tensors["dev"]["label"].numpy())
    record = {
        "experiment": "sentiment",
        "run_name": params["run_name"],
        "run_identity": run_identity(params),
        "model_label": params["model_label"] or f"{Path(params['checkpoint']).name} + {params['fusion']}",
        "fusion": params["fusion"],
        "seed": params["seed"],
        "parameters": params,
        "dataset": {"file": str(params["data_path"]), "sizes": {k: len(v["label"]) for k, v in tensors.items()},
                    "visual_dim": visual_dim, "acoustic_dim": acoustic_dim},
        "metrics": {**{f"test_{k}": v for k, v in test.items()}, **{f"dev_{k}": v for k, v in dev.items()},
                    "best_epoch": best[1], "history": history},
        "parameter_count": count_parameters(model),
        "provenance": provenance(),
        "wall_seconds": round(time.perf_counter() - started, 2),
    }
    write_json_atomic(result_file, record, overwrite=params["overwrite"])
    logger.info("%s: test %s", params["run_name"], {k: round(v, 4) for k, v in test.items()})
    return record
