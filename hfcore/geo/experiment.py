"""One run of paper Table 2: an image backbone with location and date, trained and evaluated.

``run_geo`` validates its parameters before loading anything, reads the dataset from a
user's folder (``hfcore.geo.data``), trains with the recipe of appendix B.3
(``hfcore.geo.recipe``: random crops and flips, mixup, label smoothing, SGD with momentum and
weight decay, per-step linear warm-up then cosine decay) for a fixed number of epochs, and
evaluates the final weights once on the evaluation split (iNaturalist's ``val``, YFCC's
``test``), as the public baselines report. No choice is made on the evaluation split.

Under ``torchrun`` each process reads its share of every epoch (``DistributedSampler``),
DistributedDataParallel averages the gradients, ``batch_size`` is the global batch, and the
evaluation counts are summed over processes; rank 0 writes the checkpoint and the results.
A checkpoint is written after every epoch, and a rerun with the same parameters resumes from
it: every epoch's shuffling, augmentation and mixup draw from seeds fixed by (seed, epoch,
rank), so a resumed run continues exactly as an uninterrupted one would. A finished run keeps
only its final weights, ``checkpoint_dir/run_name.final.pt``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm.auto import tqdm

from ..block_variants import BLOCKS
from ..data.paths import REPO_ROOT
from ..experiments import init_distributed_from_environment
from ..locks import exclusive_lock
from ..models import count_parameters
from ..results import ResultExistsError, provenance, write_json_atomic
from ..training import PRECISIONS, _atomic_torch_save, _broadcast_buffers
from .data import DATASETS, GeoDataset, image_transforms, load_geo
from .encoding import PARTS
from .models import GEO_FUSIONS, build_geo_model
from .recipe import mixup, mixup_cross_entropy, topk_correct, warmup_cosine

logger = logging.getLogger(__name__)

NON_IDENTITY = ("seed", "data_dir", "results_dir", "checkpoint_dir", "overwrite", "progress", "run_name", "num_workers")
DEFAULT_SPLITS = {"inat2021": ("train_mini", "val"), "inat2017": ("train", "val"), "inat2018": ("train", "val"),
                  "yfcc": ("train", "test")}


def run_identity(params: dict[str, Any]) -> str:
    identity = {k: v for k, v in sorted(params.items()) if k not in NON_IDENTITY}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _check_number(name: str, value: Any, *, positive: bool = False, integer: bool = False) -> None:
    kinds = (int,) if integer else (int, float)
    if not isinstance(value, kinds) or isinstance(value, bool):
        raise ValueError(f"{name} must be {'an integer' if integer else 'a number'}, got {value!r} "
                         f"({type(value).__name__}); pass a number, for example -p {name} 4 under papermill")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {'positive' if positive else 'non-negative'}, got {value!r}")


def validate_geo_params(params: dict[str, Any]) -> None:
    """Raise ValueError naming the first invalid parameter, before any data is loaded."""
    if params["model"] not in GEO_FUSIONS:
        raise ValueError(f"unknown model {params['model']!r}; valid names: {', '.join(GEO_FUSIONS)}")
    if params["dataset"] not in DATASETS:
        raise ValueError(f"unknown dataset {params['dataset']!r}; valid names: {', '.join(DATASETS)}")
    if not params["data_dir"]:
        raise ValueError("data_dir is required: the folder holding the dataset's annotation files (see the README)")
    for name in ("epochs", "batch_size", "image_size", "aux_width", "hidden_dim", "num_blocks"):
        _check_number(name, params[name], positive=True, integer=True)
    for name in ("warmup_epochs", "num_workers", "seed"):
        _check_number(name, params[name], integer=True)
    _check_number("lr", params["lr"], positive=True)
    for name in ("momentum", "weight_decay", "mixup_alpha", "label_smoothing"):
        _check_number(name, params[name])
    if params["momentum"] >= 1 or params["label_smoothing"] >= 1:
        raise ValueError(f"momentum and label_smoothing must lie in [0, 1), got {params['momentum']} and "
                         f"{params['label_smoothing']}")
    if params["warmup_epochs"] >= params["epochs"]:
        raise ValueError(f"warmup_epochs ({params['warmup_epochs']}) must be smaller than epochs ({params['epochs']})")
    if params["precision"] not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {params['precision']!r}")
    if params["block"] not in BLOCKS:
        raise ValueError(f"block must be one of {BLOCKS}, got {params['block']!r}")
    parts = params["parts"]
    if parts is not None and (not isinstance(parts, (list, tuple)) or not parts or set(parts) - set(PARTS)):
        raise ValueError(f"parts must be a non-empty list drawn from {list(PARTS)}, got {parts!r}")
    if params["dataset"] == "yfcc" and parts is not None and "temporal" in parts:
        raise ValueError("YFCC-GEO100 has no dates: use parts=['geo'] (or None)")


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919 + rank) % (2**31)


def _train_epoch(network: nn.Module, loader: DataLoader, optimizer, scheduler, params: dict[str, Any], epoch: int,
                 rank: int, device: torch.device, progress: bool) -> float:
    network.train()
    rng = np.random.default_rng(_epoch_seed(params["seed"], epoch, rank))
    generator = torch.Generator().manual_seed(_epoch_seed(params["seed"], epoch, rank))
    total, seen = 0.0, 0
    for step, (images, labels, aux) in enumerate(tqdm(loader, desc=f"epoch {epoch}", leave=False,
                                                       disable=not progress or rank != 0), 1):
        images, labels, aux = images.to(device), labels.to(device), aux.to(device)
        images, aux, labels_a, labels_b, lam = mixup(images, aux, labels, params["mixup_alpha"], rng, generator)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=params["precision"] == "bfloat16"):
            logits = network(images, aux)
        loss = mixup_cross_entropy(logits.float(), labels_a, labels_b, lam, params["label_smoothing"])
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch}, step {step}; lower the learning "
                                     f"rate (lr={params['lr']}). The checkpoint of epoch {epoch - 1} is kept.")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total, seen = total + loss.item() * len(labels), seen + len(labels)
    if dist.is_available() and dist.is_initialized():
        # BatchNorm statistics follow each process's own images; take rank 0's so that all agree.
        _broadcast_buffers(network.module if isinstance(network, nn.parallel.DistributedDataParallel) else network)
        sums = torch.tensor([total, float(seen)], dtype=torch.float64, device=device)
        dist.all_reduce(sums)
        total, seen = float(sums[0]), int(sums[1])
    return total / max(seen, 1)


@torch.no_grad()
def evaluate_geo(model: nn.Module, dataset: GeoDataset, batch_size: int, *, num_workers: int = 0,
                 device: torch.device | str = "cpu", precision: str = "float32", rank: int = 0,
                 world_size: int = 1) -> dict[str, float]:
    """Top-1 and top-5 accuracy and mean cross-entropy of ``model`` on ``dataset``.

    Under several processes each evaluates every ``world_size``-th sample and the counts are
    summed, so every sample is counted exactly once.
    """
    device = torch.device(device)
    model.eval()
    shard = Subset(dataset, range(rank, len(dataset), world_size)) if world_size > 1 else dataset
    counts = torch.zeros(4, dtype=torch.float64, device=device)  # top1, top5, loss sum, samples
    for images, labels, aux in DataLoader(shard, batch_size=batch_size, num_workers=num_workers):
        images, labels, aux = images.to(device), labels.to(device), aux.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16"):
            logits = model(images, aux).float()
        hits = topk_correct(logits, labels, (1, 5))
        loss = nn.functional.cross_entropy(logits, labels, reduction="sum")
        counts += torch.tensor([hits[1], hits[5], float(loss), len(labels)], dtype=torch.float64, device=device)
    if world_size > 1:
        dist.all_reduce(counts)
    top1, top5, loss_sum, n = counts.tolist()
    return {"top1": top1 / n, "top5": top5 / n, "loss": loss_sum / n, "samples": int(n)}


def run_geo(
    *,
    dataset: str = "inat2021",
    data_dir: str | None = None,
    model: str = "hyperfuse",
    backbone: str = "resnet50",
    weights: str | None = None,
    train_split: str | None = None,
    eval_split: str | None = None,
    parts: list[str] | None = None,
    epochs: int = 90,
    batch_size: int = 128,
    lr: float = 0.04,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    warmup_epochs: int = 5,
    mixup_alpha: float = 0.2,
    label_smoothing: float = 0.1,
    image_size: int = 224,
    aux_width: int = 256,
    hidden_dim: int = 64,
    num_blocks: int = 1,
    block: str = "base",
    precision: str = "float32",
    num_workers: int = 4,
    seed: int = 0,
    results_dir: str | None = None,
    checkpoint_dir: str | None = None,
    run_name: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train and evaluate one Table 2 model; write ``results_dir/run_name.json`` (rank 0) and return the record.

    ``parts`` chooses the auxiliary features (None: location and date, location only for YFCC).
    The HyperFuse options (``hidden_dim``, ``num_blocks``, ``block``) are recorded as None for
    the other models, which ignore them.
    """
    started = time.perf_counter()
    params = {k: str(v) if isinstance(v, Path) else v for k, v in locals().items() if k != "started"}
    validate_geo_params(params)
    if params["parts"] is None:
        params["parts"] = ["geo"] if dataset == "yfcc" else list(PARTS)
    params["train_split"] = train_split or DEFAULT_SPLITS[dataset][0]
    params["eval_split"] = eval_split or DEFAULT_SPLITS[dataset][1]
    if model not in ("hyperfuse", "dynamic_mlp_c"):
        params["hidden_dim"] = None
    if model != "hyperfuse":
        params["num_blocks"] = params["block"] = None
    run_name = params["run_name"] = run_name or f"{dataset}-{backbone}-{model}-{run_identity(params)}-seed{seed}"
    results_dir = Path(results_dir) if results_dir else REPO_ROOT / "results" / "geo" / "interactive"
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else REPO_ROOT / "checkpoints" / "geo"
    result_file = results_dir / f"{run_name}.json"
    rank, world_size = init_distributed_from_environment()
    if result_file.exists() and not overwrite:
        raise ResultExistsError(f"{result_file} already exists; pass overwrite=True (-p overwrite True under "
                                "papermill, --overwrite on the command line) to replace it, or choose another "
                                "run_name or results_dir")
    if world_size > 1:  # the processes of one torchrun job share the run, so none takes the file lock
        return _train_and_write(params, result_file, checkpoint_dir, started, rank, world_size)
    with exclusive_lock(result_file, hint="wait for it to end, or choose another run_name"):
        if result_file.exists() and not overwrite:
            raise ResultExistsError(f"{result_file} was written by another process while this run started; "
                                    "pass overwrite=True to replace it")
        return _train_and_write(params, result_file, checkpoint_dir, started, rank, world_size)


def _train_and_write(params: dict[str, Any], result_file: Path, checkpoint_dir: Path, started: float, rank: int,
                     world_size: int) -> dict[str, Any]:
    if params["batch_size"] % world_size:
        raise ValueError(f"batch_size {params['batch_size']} must be divisible by the {world_size} processes")
    device = torch.device(f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu")
    parts = tuple(params["parts"])
    train_samples = load_geo(params["dataset"], params["data_dir"], params["train_split"])
    eval_samples = load_geo(params["dataset"], params["data_dir"], params["eval_split"], train_samples.class_ids)
    for samples, split in ((train_samples, params["train_split"]), (eval_samples, params["eval_split"])):
        samples.check_files(split)  # before training, not after hours of it
    train_set = GeoDataset(train_samples, image_transforms(params["image_size"], train=True), parts)
    eval_set = GeoDataset(eval_samples, image_transforms(params["image_size"], train=False), parts)

    torch.manual_seed(params["seed"])
    model = build_geo_model(params["model"], backbone=params["backbone"], weights=params["weights"],
                            num_classes=train_samples.num_classes, aux_dim=train_set.aux.shape[1],
                            aux_width=params["aux_width"], hidden_dim=params["hidden_dim"] or 64,
                            num_blocks=params["num_blocks"] or 1, block=params["block"] or "base").to(device)
    network = nn.parallel.DistributedDataParallel(model) if world_size > 1 else model
    optimizer = torch.optim.SGD(model.parameters(), lr=params["lr"], momentum=params["momentum"],
                                weight_decay=params["weight_decay"])
    sampler = DistributedSampler(train_set, num_replicas=world_size, rank=rank, shuffle=True, seed=params["seed"],
                                 drop_last=True)
    per_process = params["batch_size"] // world_size
    if len(sampler) < per_process:  # drop_last would leave no step at all
        raise ValueError(f"batch_size {params['batch_size']} is larger than the {len(train_set)} training images; "
                         "lower batch_size")
    steps_per_epoch = max(1, len(sampler) // per_process)
    total_steps, warmup_steps = params["epochs"] * steps_per_epoch, params["warmup_epochs"] * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(step, total_steps, warmup_steps))

    checkpoint_path = checkpoint_dir / f"{params['run_name']}.pt"
    identity = run_identity(params)
    history: list[dict[str, float]] = []
    start_epoch, resumed_from = 1, None
    if checkpoint_path.is_file():
        saved = torch.load(checkpoint_path, map_location=device, weights_only=False)
        if saved.get("run_identity") == identity and saved.get("seed") == params["seed"]:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            history = saved["history"]
            start_epoch = resumed_from = saved["epoch"] + 1
            logger.info("resuming %s from epoch %d (checkpoint %s)", params["run_name"], start_epoch, checkpoint_path)
        else:
            logger.warning("checkpoint %s belongs to another run; starting afresh", checkpoint_path)

    for epoch in range(start_epoch, params["epochs"] + 1):
        sampler.set_epoch(epoch)
        torch.manual_seed(_epoch_seed(params["seed"], epoch, rank))  # augmentation when num_workers is 0
        loader = DataLoader(train_set, batch_size=per_process, sampler=sampler, num_workers=params["num_workers"],
                            drop_last=True, generator=torch.Generator().manual_seed(_epoch_seed(params["seed"], epoch, rank)))
        train_loss = _train_epoch(network, loader, optimizer, scheduler, params, epoch, rank, device, params["progress"])
        history.append({"epoch": epoch, "train_loss": train_loss, "lr_end": scheduler.get_last_lr()[0]})
        logger.info("epoch %d: train loss %.4f", epoch, train_loss)
        if rank == 0:
            checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_torch_save({"run_identity": identity, "seed": params["seed"], "epoch": epoch,
                                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                "scheduler": scheduler.state_dict(), "history": history}, checkpoint_path)

    metrics = evaluate_geo(model, eval_set, per_process, num_workers=params["num_workers"], device=device,
                           precision=params["precision"], rank=rank, world_size=world_size)
    record = {
        "experiment": "geo",
        "run_name": params["run_name"],
        "run_identity": identity,
        "dataset": params["dataset"],
        "model": params["model"],
        "backbone": params["backbone"],
        "seed": params["seed"],
        "parameters": params,
        "data": {"train_samples": len(train_samples), "eval_samples": len(eval_samples),
                 "classes": train_samples.num_classes, "aux_features": int(train_set.aux.shape[1]),
                 "train_missing_metadata": train_samples.missing_metadata(parts),
                 "eval_missing_metadata": eval_samples.missing_metadata(parts)},
        "metrics": {f"eval_{k}": v for k, v in metrics.items()} | {"history": history, "resumed_from_epoch": resumed_from},
        "selection": "none: the final epoch's weights are evaluated once, as the public baselines report",
        "parameter_count": count_parameters(model),
        "world_size": world_size,
        "device": str(device),
        "provenance": provenance(),
        "wall_seconds": round(time.perf_counter() - started, 2),
    }
    if world_size > 1:  # every process must end with the same weights; the record keeps the proof
        checksum = float(sum(v.double().sum() for v in model.state_dict().values() if v.is_floating_point()))
        checksums = [None] * world_size
        dist.all_gather_object(checksums, checksum)
        record["rank_weight_checksums"] = checksums
    if rank == 0:
        write_json_atomic(result_file, record, overwrite=params["overwrite"])
        # Keep the final weights (no optimizer state) and drop the resumable checkpoint.
        _atomic_torch_save(model.state_dict(), checkpoint_dir / f"{params['run_name']}.final.pt")
        checkpoint_path.unlink(missing_ok=True)
        logger.info("%s: top-1 %.4f, top-5 %.4f", params["run_name"], metrics["top1"], metrics["top5"])
    return record
