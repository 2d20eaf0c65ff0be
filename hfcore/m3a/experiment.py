"""One M3A training run, from parameters to a results file.

``run_m3a`` validates the parameters before loading anything, loads the release, splits the
release's training calls by date into training and validation (the latest ``val_fraction``),
standardises the features with training statistics, trains the named model and keeps the
weights of the epoch with the lowest validation loss, stops after ``patience`` epochs
without improvement, tests those weights once and writes one JSON record. The test split
plays no part in any choice (the release's code selects its checkpoint on the test set).

Volatility targets are standardised with the training mean and standard deviation for
training; predictions are mapped back, and every MSE is on the released scale.
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
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..block_variants import BLOCKS
from ..data.paths import REPO_ROOT
from ..locks import exclusive_lock
from ..models import count_parameters
from ..results import ResultExistsError, provenance, write_json_atomic
from ..training import seed_everything
from .data import HORIZONS, TASKS, M3AData, Normalizer, load_m3a, validation_split
from .metrics import movement_metrics, mse, trivial_movement, trivial_volatility_mse
from .models import FUSION_POSITIONS, HYPERFUSE_OPTIONS, PRIMARIES, build_m3a_model, m3a_model_names

logger = logging.getLogger(__name__)

NON_IDENTITY = ("seed", "data_dir", "cache_dir", "results_dir", "overwrite", "progress", "run_name")


def run_identity(params: dict[str, Any]) -> str:
    identity = {k: v for k, v in sorted(params.items()) if k not in NON_IDENTITY}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r} ({type(value).__name__})")


def validate_m3a_params(params: dict[str, Any]) -> None:
    """Raise ValueError naming the first invalid parameter, before any data is loaded."""
    if params["model"] not in m3a_model_names():
        raise ValueError(f"unknown M3A model {params['model']!r}; valid names: {', '.join(m3a_model_names())}")
    if params["task"] not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {params['task']!r}")
    if params["horizon"] not in HORIZONS:
        raise ValueError(f"horizon must be one of {HORIZONS} (days), got {params['horizon']!r}")
    for name in ("epochs", "batch_size", "hidden_dim", "num_blocks"):
        _positive_int(name, params[name])
    if params["patience"] is not None:
        _positive_int("patience", params["patience"])
    if not isinstance(params["seed"], int) or isinstance(params["seed"], bool):
        raise ValueError(f"seed must be an integer, got {params['seed']!r}")
    for name in ("lr", "weight_decay"):
        value = params[name]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0 or (name == "lr" and value == 0):
            raise ValueError(f"{name} must be a {'positive' if name == 'lr' else 'non-negative'} number, got {value!r}")
    if not isinstance(params["val_fraction"], float) or not 0 < params["val_fraction"] < 1:
        raise ValueError(f"val_fraction must be a number in (0, 1), got {params['val_fraction']!r}")
    if params["primary"] not in PRIMARIES:
        raise ValueError(f"primary must be one of {PRIMARIES} for M3A, got {params['primary']!r}")
    if params["fusion_position"] not in FUSION_POSITIONS:
        raise ValueError(f"fusion_position must be one of {FUSION_POSITIONS} for M3A, got {params['fusion_position']!r}")
    if params["block"] not in BLOCKS:
        raise ValueError(f"block must be one of {BLOCKS}, got {params['block']!r}")


def _pad(sequences: list[torch.Tensor], length: int) -> torch.Tensor:
    out = sequences[0].new_zeros((len(sequences), length, *sequences[0].shape[1:]))
    for i, seq in enumerate(sequences):
        out[i, : len(seq)] = seq
    return out


class CallBatches:
    """Standardised per-call tensors of some calls, served as padded batches."""

    def __init__(self, data: M3AData, positions: np.ndarray, normalizer: Normalizer, targets: np.ndarray):
        self.text = [torch.from_numpy(normalizer.text(data.text[i])) for i in positions]
        self.audio = [torch.from_numpy(normalizer.audio(data.audio[i])) for i in positions]
        self.speaker = [torch.from_numpy(data.speaker[i].astype(np.int64)) for i in positions]
        self.targets = torch.from_numpy(np.asarray(targets, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.text)

    def batch(self, index: np.ndarray | list[int]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        lengths = [len(self.text[i]) for i in index]
        length = max(lengths)
        mask = torch.zeros(len(index), length, dtype=torch.bool)
        for row, n in enumerate(lengths):
            mask[row, :n] = True
        batch = {
            "text": _pad([self.text[i] for i in index], length),
            "audio": _pad([self.audio[i] for i in index], length),
            "speaker": _pad([self.speaker[i] for i in index], length),
            "mask": mask,
        }
        return batch, self.targets[list(index)]

    def batches(self, batch_size: int, generator: torch.Generator | None = None):
        order = torch.randperm(len(self), generator=generator).tolist() if generator is not None else list(range(len(self)))
        for start in range(0, len(order), batch_size):
            yield self.batch(order[start : start + batch_size])


def _loss(task: str, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    if task == "volatility":
        return F.mse_loss(scores, targets)
    return F.binary_cross_entropy_with_logits(scores, targets)


@torch.no_grad()
def predict(model: torch.nn.Module, calls: CallBatches, batch_size: int = 64) -> np.ndarray:
    """Return the model's scores for every call, in order."""
    model.eval()
    scores = [model(batch) for batch, _ in calls.batches(batch_size)]
    return torch.cat(scores).numpy()


def _evaluate(task: str, scores: np.ndarray, targets: np.ndarray, scale: tuple[float, float]) -> dict[str, float]:
    if task == "volatility":
        mean, std = scale
        return {"mse": mse(targets, scores * std + mean)}
    probability = 1.0 / (1.0 + np.exp(-scores))
    loss = float(F.binary_cross_entropy_with_logits(torch.from_numpy(scores), torch.from_numpy(targets.astype(np.float32))))
    return {"bce": loss, **movement_metrics(targets, (probability >= 0.5).astype(int))}


def run_m3a(
    *,
    model: str,
    task: str = "volatility",
    horizon: int = 3,
    seed: int = 0,
    epochs: int = 200,
    patience: int | None = 30,
    batch_size: int = 32,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    hidden_dim: int = 8,
    num_blocks: int = 1,
    block: str = "base",
    fusion_position: int = 0,
    primary: str = "text",
    val_fraction: float = 0.1,
    data_dir: str | None = None,
    cache_dir: str | None = None,
    results_dir: str | None = None,
    run_name: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    data: M3AData | None = None,
) -> dict[str, Any]:
    """Train and test one M3A model and write ``results_dir/run_name.json``; return the record.

    The HyperFuse options (``hidden_dim``, ``num_blocks``, ``block``, ``fusion_position``,
    ``primary``) are recorded for ``m3anet_hyperfuse`` only. Other models reject values other
    than the defaults and record None, so no record claims an option that its model ignored. ``data`` skips
    loading when the caller already holds the release.
    """
    started = time.perf_counter()
    params = {k: str(v) if isinstance(v, Path) else v for k, v in locals().items() if k not in ("started", "data")}
    validate_m3a_params(params)
    defaults = {"hidden_dim": 8, "num_blocks": 1, "block": "base", "fusion_position": 0, "primary": "text"}
    if model != "m3anet_hyperfuse":
        changed = {k: params[k] for k, v in defaults.items() if params[k] != v}
        if changed:
            raise ValueError(f"{changed} apply to model='m3anet_hyperfuse' only; leave them at their defaults for {model!r}")
        for name in HYPERFUSE_OPTIONS:
            params[name] = None
    run_name = params["run_name"] = run_name or f"{model}-{task}{horizon}-{run_identity(params)}-seed{seed}"
    results_dir = Path(results_dir) if results_dir else REPO_ROOT / "results" / "m3a" / "interactive"
    result_file = results_dir / f"{run_name}.json"
    if result_file.exists() and not overwrite:
        raise ResultExistsError(f"{result_file} already exists; pass overwrite=True (-p overwrite True under "
                                "papermill) to replace it, or choose another run_name or results_dir")

    with exclusive_lock(result_file, hint="wait for it to end, or choose another run_name"):
        if result_file.exists() and not overwrite:  # finished by another process while this one started
            raise ResultExistsError(f"{result_file} was written by another process while this run started; "
                                    "pass overwrite=True to replace it")
        return _train_and_write(params, data, result_file, started)


def _train_and_write(params: dict[str, Any], data: M3AData | None, result_file: Path, started: float) -> dict[str, Any]:
    model, task, horizon, seed = params["model"], params["task"], params["horizon"], params["seed"]
    run_name, val_fraction, epochs, patience = params["run_name"], params["val_fraction"], params["epochs"], params["patience"]
    data_dir, cache_dir, progress = params["data_dir"], params["cache_dir"], params["progress"]
    data = data if data is not None else load_m3a(data_dir, cache_dir=cache_dir, progress=progress)
    split = validation_split(data, val_fraction)
    targets = data.targets(task, horizon)
    normalizer = Normalizer.fit([data.text[i] for i in split["train"]], [data.audio[i] for i in split["train"]])
    scale = (float(targets[split["train"]].mean()), float(targets[split["train"]].std())) if task == "volatility" else (0.0, 1.0)
    train_targets = (targets - scale[0]) / scale[1] if task == "volatility" else targets
    calls = {name: CallBatches(data, idx, normalizer, train_targets[idx]) for name, idx in split.items()}

    seed_everything(seed)
    options = {k: params[k] for k in HYPERFUSE_OPTIONS} if model == "m3anet_hyperfuse" else {}
    network = build_m3a_model(model, task, **options)
    optimizer = torch.optim.Adam(network.parameters(), lr=params["lr"], weight_decay=params["weight_decay"])
    generator = torch.Generator().manual_seed(seed)
    history: list[dict[str, float]] = []
    best = (float("inf"), -1, None)
    val_key = "mse" if task == "volatility" else "bce"
    stopped_early = False
    for epoch in tqdm(range(1, epochs + 1), desc=f"{model} {task} {horizon}d", disable=not progress):
        network.train()
        total, count = 0.0, 0
        for batch, target in calls["train"].batches(params["batch_size"], generator):
            optimizer.zero_grad(set_to_none=True)
            loss = _loss(task, network(batch), target)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{run_name}: the training loss became {loss.item()} in epoch {epoch}; "
                                         "lower lr or check the inputs")
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * len(target), count + len(target)
        val = _evaluate(task, predict(network, calls["val"]), targets[split["val"]], scale)
        history.append({"epoch": epoch, "train_loss": total / count, **{f"val_{k}": v for k, v in val.items()}})
        if val[val_key] < best[0]:
            best = (val[val_key], epoch, copy.deepcopy(network.state_dict()))
        elif patience is not None and epoch - best[1] >= patience:
            stopped_early = True
            break
    network.load_state_dict(best[2])
    metrics = {f"val_{k}": v for k, v in _evaluate(task, predict(network, calls["val"]), targets[split["val"]], scale).items()}
    metrics.update({f"test_{k}": v for k, v in _evaluate(task, predict(network, calls["test"]), targets[split["test"]], scale).items()})
    train_targets_raw, test_targets_raw = targets[split["train"]], targets[split["test"]]
    trivial = ({"test_mse": trivial_volatility_mse(train_targets_raw, test_targets_raw)} if task == "volatility"
               else {f"test_{k}": v for k, v in trivial_movement(train_targets_raw, test_targets_raw).items()})
    record = {
        "experiment": "m3a",
        "run_name": run_name,
        "run_identity": run_identity(params),
        "model": model,
        "task": task,
        "horizon": horizon,
        "seed": seed,
        "parameters": params,
        "dataset": {**data.info(), "split_sizes_used": {k: int(len(v)) for k, v in split.items()},
                    "validation_dates": [str(data.dates[split["val"]].min()), str(data.dates[split["val"]].max())],
                    "missing_audio_train": Normalizer.missing_counts([data.audio[i] for i in split["train"]]),
                    "target_scale": scale},
        "metrics": {**metrics, "best_epoch": best[1], "epochs_run": len(history), "stopped_early": stopped_early,
                    "history": history},
        "trivial_baseline": trivial,
        "parameter_count": count_parameters(network),
        "provenance": provenance(),
        "wall_seconds": round(time.perf_counter() - started, 2),
    }
    write_json_atomic(result_file, record, overwrite=params["overwrite"])
    logger.info("%s: %s", run_name, {k: round(v, 4) for k, v in metrics.items() if k.startswith("test_")})
    return record
