"""Seeded, resumable training with model selection on the validation split.

``train`` runs a fixed number of epochs, or stops early when the validation accuracy has not
improved for ``patience`` epochs. It keeps the weights of the epoch with the best validation
accuracy. It writes a checkpoint after every epoch, so an interrupted run resumes where it
stopped and ends with the same weights as an uninterrupted one.

Under ``torchrun`` (an initialised ``torch.distributed`` process group), ``train`` runs data
parallel: every process draws the same shuffled batches, takes its share of each batch, and
DistributedDataParallel averages the gradients, so one step uses the whole batch as a single
process would. Rank 0 writes the checkpoints.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from .atomic import atomic_path

logger = logging.getLogger(__name__)

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
PRECISIONS = ("float32", "bfloat16")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of one run.

    ``patience`` is the number of epochs without a better validation accuracy after which
    training stops (None trains all ``epochs``). ``precision="bfloat16"`` runs the forward
    passes, in training and evaluation, under ``torch.autocast`` with bfloat16: convolutions
    and matrix products run in bfloat16, while weights, BatchNorm statistics, the loss and
    the optimiser stay in float32. It pays off on CPUs with native bfloat16 (AVX512-BF16 or
    AMX) and on recent GPUs, and is slower elsewhere.
    """

    epochs: int = 15
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    patience: int | None = None
    seed: int = 0
    eval_batch_size: int = 500
    precision: str = "float32"

    def __post_init__(self):
        for name in ("epochs", "batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig.lr must be positive, got {self.lr!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; use one of {sorted(OPTIMIZERS)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; use one of {PRECISIONS}")
        if self.patience is not None and (not isinstance(self.patience, int) or self.patience <= 0):
            raise ValueError(f"TrainConfig.patience must be a positive integer or None, got {self.patience!r}")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch and ask PyTorch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


class TensorData:
    """In-memory dataset: a mapping from input name to array, plus integer labels.

    Arrays stay in their stored dtype (float16 spectrograms take half the memory) and are
    converted to float32 one batch at a time.
    """

    def __init__(self, inputs: Mapping[str, np.ndarray | torch.Tensor], labels: np.ndarray | torch.Tensor):
        self.inputs = {name: torch.as_tensor(array) for name, array in inputs.items()}
        self.labels = torch.as_tensor(labels).long()
        for name, tensor in self.inputs.items():
            if len(tensor) != len(self.labels):
                raise ValueError(f"input {name!r} has {len(tensor)} rows but there are {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, batch_size: int, *, generator: torch.Generator | None = None):
        """Yield ``(inputs, labels)`` batches, shuffled when ``generator`` is given."""
        order = torch.randperm(len(self), generator=generator) if generator is not None else torch.arange(len(self))
        for start in range(0, len(self), batch_size):
            index = order[start : start + batch_size]
            inputs = {}
            for name, tensor in self.inputs.items():
                batch = tensor[index].float()
                if batch.dim() == 4:
                    batch = batch.contiguous(memory_format=torch.channels_last)
                inputs[name] = batch
            yield inputs, self.labels[index]


def autocast(model: nn.Module, precision: str = "float32"):
    """Return the autocast context for ``precision`` on the device of ``model``'s parameters."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use one of {PRECISIONS}")
    device_type = next(model.parameters()).device.type
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bfloat16")


@torch.no_grad()
def predict_logits(
    model: nn.Module, data: TensorData, batch_size: int = 500, precision: str = "float32"
) -> torch.Tensor:
    """Return the model's float32 logits for every sample of ``data``, in order."""
    model.eval()
    with autocast(model, precision):
        return torch.cat([model.forward_batch(inputs).float() for inputs, _ in data.batches(batch_size)])


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None) -> dict:
    """Return accuracy, per-class accuracy (recall) and mean cross-entropy of ``logits``.

    A class absent from ``labels`` gets a per-class accuracy of None.
    """
    labels = labels.long()
    num_classes = num_classes or logits.shape[1]
    predictions = logits.argmax(dim=1)
    correct = predictions == labels
    per_class = []
    for c in range(num_classes):
        mask = labels == c
        per_class.append(float(correct[mask].float().mean()) if mask.any() else None)
    return {
        "accuracy": float(correct.float().mean()),
        "per_class_accuracy": per_class,
        "loss": float(F.cross_entropy(logits, labels)),
    }


def evaluate(model: nn.Module, data: TensorData, batch_size: int = 500, precision: str = "float32") -> dict:
    """Return ``classification_metrics`` of the model on ``data``."""
    return classification_metrics(predict_logits(model, data, batch_size, precision), data.labels)


@dataclass
class TrainResult:
    """Outcome of ``train``: the per-epoch history and the selected epoch."""

    history: list[dict]
    best_epoch: int
    best_val_accuracy: float
    stopped_early: bool
    resumed_from_epoch: int | None


def _atomic_torch_save(obj, path: Path) -> None:
    with atomic_path(path) as temporary:
        torch.save(obj, temporary)


def distributed_rank_and_size() -> tuple[int, int]:
    """Return this process's rank and the world size (0 and 1 outside torch.distributed)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _broadcast_buffers(model: nn.Module) -> None:
    # BatchNorm running statistics are updated from each process's own share of the batch;
    # taking rank 0's makes every process evaluate, and select, the same model.
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)


def _sum_over_processes(total_loss: float, seen: int) -> tuple[float, int]:
    values = torch.tensor([total_loss, float(seen)], dtype=torch.float64)
    dist.all_reduce(values)
    return float(values[0]), int(values[1])


def _state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def train(
    model: nn.Module,
    train_data: TensorData,
    val_data: TensorData,
    config: TrainConfig,
    *,
    checkpoint_path: str | Path | None = None,
    run_key: str = "",
    progress: bool = True,
) -> TrainResult:
    """Train ``model`` in place and load the weights of the best validation epoch into it.

    Args:
        checkpoint_path: file written after every epoch. When it exists and was written for
            the same ``run_key`` and ``config``, training resumes from it.
        run_key: identifies the run (model, data and parameters); a checkpoint of another
            run is never resumed from, and is replaced instead.

    Raises FloatingPointError when a loss is NaN or infinite, naming the epoch and step; the
    checkpoint of the last finished epoch is kept.
    """
    seed_everything(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = OPTIMIZERS[config.optimizer](model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    model.to(memory_format=torch.channels_last)
    rank, world_size = distributed_rank_and_size()
    network = nn.parallel.DistributedDataParallel(model) if world_size > 1 else model
    checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
    config_dict = dataclasses.asdict(config)

    history: list[dict] = []
    best_state, best_val, best_epoch, start_epoch, resumed_from = None, -1.0, 0, 1, None
    if checkpoint_path is not None and checkpoint_path.is_file():
        saved = torch.load(checkpoint_path, weights_only=False)
        if saved.get("run_key") == run_key and saved.get("config") == config_dict:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            generator.set_state(saved["generator"])
            torch.set_rng_state(saved["torch_rng"])
            history, best_state = saved["history"], saved["best_state"]
            best_val, best_epoch = saved["best_val_accuracy"], saved["best_epoch"]
            start_epoch = resumed_from = saved["epoch"] + 1
            logger.info("resuming %s from epoch %d (checkpoint %s)", run_key or "run", start_epoch, checkpoint_path)
        else:
            logger.warning("checkpoint %s belongs to another run or configuration; starting afresh", checkpoint_path)

    stopped_early = bool(history) and history[-1].get("stopped_early", False)
    epochs = tqdm(range(start_epoch, config.epochs + 1), desc="epochs", disable=not progress, leave=False)
    for epoch in epochs:
        if stopped_early:
            break
        model.train()
        total_loss, seen = 0.0, 0
        for step, (inputs, labels) in enumerate(train_data.batches(config.batch_size, generator=generator), 1):
            if world_size > 1:  # this process's share of the global batch
                inputs = {name: tensor[rank::world_size] for name, tensor in inputs.items()}
                labels = labels[rank::world_size]
            model_inputs = model.batch_inputs(inputs)
            with autocast(model, config.precision):
                logits = network(*model_inputs)
                # Models with extra objectives (MFM, Refnet, Gradient Blending) add their terms.
                loss = model.loss(logits, labels, *model_inputs) if hasattr(model, "loss") else None
            if loss is None:
                loss = F.cross_entropy(logits.float(), labels)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"loss is {loss.item()} at epoch {epoch}, step {step}; lower the learning rate "
                    f"(lr={config.lr}). The checkpoint of epoch {epoch - 1} is kept at {checkpoint_path}."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(labels)
            seen += len(labels)

        if world_size > 1:
            _broadcast_buffers(model)
            total_loss, seen = _sum_over_processes(total_loss, seen)
        if hasattr(model, "end_epoch"):
            with autocast(model, config.precision):
                model.end_epoch(train_data, val_data)
        val = evaluate(model, val_data, config.eval_batch_size, config.precision)
        improved = val["accuracy"] > best_val
        if improved:
            best_val, best_epoch, best_state = val["accuracy"], epoch, _state_copy(model)
        stopped_early = config.patience is not None and epoch - best_epoch >= config.patience
        history.append(
            {
                "epoch": epoch,
                "train_loss": total_loss / seen,
                "val_loss": val["loss"],
                "val_accuracy": val["accuracy"],
                "stopped_early": stopped_early,
            }
        )
        epochs.set_postfix(val_acc=f"{val['accuracy']:.3f}", best=f"{best_val:.3f}")
        logger.info("epoch %d: train loss %.4f, val accuracy %.4f", epoch, total_loss / seen, val["accuracy"])
        if checkpoint_path is not None and rank == 0:
            _atomic_torch_save(
                {
                    "run_key": run_key,
                    "config": config_dict,
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "generator": generator.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "history": history,
                    "best_state": best_state,
                    "best_val_accuracy": best_val,
                    "best_epoch": best_epoch,
                },
                checkpoint_path,
            )
        if stopped_early:
            logger.info("stopping early after epoch %d: no improvement for %d epochs", epoch, config.patience)

    if best_state is None:
        raise RuntimeError("training ran no epoch; check TrainConfig.epochs")
    model.load_state_dict(best_state)
    return TrainResult(history, best_epoch, best_val, stopped_early, resumed_from)
