"""One AV-MNIST training run, from parameters to a results file.

The training notebook calls ``run_avmnist``. It validates the parameters and loads (or
builds) the dataset. It then trains the named model, selects the epoch with the best
validation accuracy, tests those weights once and writes one JSON record.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from .block_variants import BLOCKS
from .blocks import GENERATORS
from .data.avmnist import AVMNIST, AVMNISTConfig, Split, load_avmnist
from .data.multibench import load_multibench_avmnist
from .data.paths import REPO_ROOT
from .models import build_model, count_parameters, model_names, model_option_names
from .locks import exclusive_lock
from .results import ResultExistsError, provenance, write_json_atomic
from .training import (PRECISIONS, TensorData, TrainConfig, _atomic_torch_save, distributed_rank_and_size,
                       evaluate, train)

logger = logging.getLogger(__name__)

# Parameters that do not change the numbers, left out of the run's identity.
NON_IDENTITY = ("seed", "data_dir", "results_dir", "cache_dir", "checkpoint_dir", "overwrite", "progress", "run_name")


def run_identity(params: dict[str, Any]) -> str:
    """Return a short hash of the parameters that define a run, other than the seed and paths."""
    identity = {k: v for k, v in sorted(params.items()) if k not in NON_IDENTITY}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:8]


def default_run_name(params: dict[str, Any]) -> str:
    """Return MODEL[-blockB]-IDENTITY-seedS: the block variant shows in the name, the other options in the hash."""
    block = f"-block{params['block']}" if params.get("block") not in (None, "base") else ""
    return f"{params['model']}{block}-{run_identity(params)}-seed{params['seed']}"


def subsample_training(split: Split, fraction: float, seed: int) -> Split:
    """Return a stratified ``fraction`` of ``split`` (all of it for 1.0)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"train_fraction must be in (0, 1], got {fraction!r}")
    if fraction == 1.0:
        return split
    keep, _ = train_test_split(np.arange(len(split)), train_size=fraction, stratify=split.label, random_state=seed)
    return split.subset(np.sort(keep))


def split_tensors(split: Split, modalities: tuple[str, ...]) -> TensorData:
    """Wrap the arrays of ``split`` that a model reads as ``TensorData``."""
    return TensorData({name: getattr(split, name) for name in modalities}, split.label)


def validate_params(params: dict[str, Any]) -> None:
    """Raise ValueError naming the first invalid parameter, before any data is loaded."""
    if params["model"] not in model_names():
        raise ValueError(f"unknown model {params['model']!r}; valid names: {', '.join(model_names())}")
    for name in ("epochs", "batch_size", "hidden_dim", "num_blocks"):
        value = params.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r} ({type(value).__name__})")
    if not isinstance(params["seed"], int) or isinstance(params["seed"], bool):
        raise ValueError(f"seed must be an integer, got {params['seed']!r}")
    if not isinstance(params["train_fraction"], (int, float)) or not 0 < params["train_fraction"] <= 1:
        raise ValueError(f"train_fraction must be a number in (0, 1], got {params['train_fraction']!r}")
    if params["generator"] not in GENERATORS:
        raise ValueError(f"generator must be one of {GENERATORS}, got {params['generator']!r}")
    rank = params["rank"]
    if rank is not None and (not isinstance(rank, int) or isinstance(rank, bool) or rank <= 0):
        raise ValueError(f"rank must be a positive integer or None, got {rank!r}")
    if rank is not None and params["generator"] != "factorized":
        raise ValueError(f"rank={rank} needs generator='factorized'; set both or leave rank None")
    if params["block"] not in BLOCKS:
        raise ValueError(f"block must be one of {BLOCKS}, got {params['block']!r}")
    if params["block"] != "base" and params["model"] != "hyperfuse":
        raise ValueError(f"block={params['block']!r} applies to model='hyperfuse' only; leave it 'base'")
    if params["block"] != "base" and (params["generator"] != "full" or rank is not None):
        raise ValueError(f"block={params['block']!r} takes no generator options; leave generator 'full' and rank None")
    if params["precision"] not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {params['precision']!r}")
    if params["primary"] not in ("image", "audio"):
        raise ValueError(f"primary must be 'image' or 'audio' for AV-MNIST, got {params['primary']!r}")
    for name in ("lr", "weight_decay", "snr_db", "pca_energy"):  # their ranges are checked where they are used
        value = params[name]
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"{name} must be a number, got {value!r} ({type(value).__name__}); "
                             "under papermill pass it without quotes, for example -p lr 0.001")
    if not params["lr"] > 0:
        raise ValueError(f"lr must be positive, got {params['lr']!r}")
    if not params["weight_decay"] >= 0:  # also rejects NaN
        raise ValueError(f"weight_decay must be 0 or positive, got {params['weight_decay']!r}")
    patience, position = params["patience"], params["fusion_position"]
    if patience is not None and (not isinstance(patience, int) or isinstance(patience, bool) or patience <= 0):
        raise ValueError(f"patience must be a positive integer or None, got {patience!r}")
    if position is not None and (not isinstance(position, int) or isinstance(position, bool) or position < 0):
        raise ValueError(f"fusion_position must be a non-negative integer or None, got {position!r}")
    for name in ("aux_mlp", "overwrite", "progress"):
        if not isinstance(params[name], bool):
            raise ValueError(f"{name} must be True or False, got {params[name]!r} ({type(params[name]).__name__})")


def init_distributed_from_environment() -> tuple[int, int]:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    Uses the gloo backend on CPU and NCCL when CUDA is available, and gives each process an
    equal share of the CPU cores. Returns ``(rank, world_size)``; ``(0, 1)`` outside torchrun.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend=backend)
        local_size = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_size))
        logger.info("joined a %s process group as rank %d of %d", backend, torch.distributed.get_rank(), world_size)
    return distributed_rank_and_size()


def run_avmnist(
    *,
    model: str,
    seed: int = 0,
    epochs: int = 15,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    patience: int | None = None,
    hidden_dim: int = 64,
    num_blocks: int = 1,
    fusion_position: int | None = None,
    primary: str = "image",
    aux_mlp: bool = False,
    generator: str = "full",
    rank: int | None = None,
    block: str = "base",
    precision: str = "float32",
    train_fraction: float = 1.0,
    pca_energy: float = AVMNISTConfig.pca_energy,
    noise: str = AVMNISTConfig.noise,
    snr_db: float = AVMNISTConfig.snr_db,
    data_dir: str | None = None,
    multibench_dir: str | None = None,
    cache_dir: str | None = None,
    results_dir: str | None = None,
    checkpoint_dir: str | None = None,
    run_name: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    dataset: AVMNIST | None = None,
) -> dict[str, Any]:
    """Train and test one AV-MNIST model and write its results file; return the record.

    The results file is ``results_dir/run_name.json``; ``results_dir`` defaults to
    ``results/avmnist/interactive`` in the repository, and a relative one is taken from the
    working directory. It is never replaced unless ``overwrite`` is True. ``dataset`` skips
    loading when the caller already has the data built with the same settings.
    """
    started = time.perf_counter()
    params = {k: v for k, v in locals().items() if k not in ("started", "dataset")}
    validate_params(params)
    process_rank, world_size = init_distributed_from_environment()
    run_name = run_name or default_run_name(params)
    results_dir = results_dir or REPO_ROOT / "results" / "avmnist" / "interactive"
    result_file = Path(results_dir) / f"{run_name}.json"
    if result_file.exists() and not overwrite:
        raise ResultExistsError(
            f"{result_file} already exists; pass overwrite=True (-p overwrite True under papermill) "
            "to replace it, or choose another run_name or results_dir"
        )
    # One process per results file: a second run with the same name fails at once with BusyError.
    checkpoint_root = Path(checkpoint_dir) if checkpoint_dir else REPO_ROOT / "checkpoints"
    with contextlib.ExitStack() as locks:
        if world_size == 1:  # the processes of one torchrun job share the run, so none of them locks it
            # Runs of one name in two results folders would still share the checkpoint: lock both.
            for path in (result_file, checkpoint_root / f"{run_name}.pt"):
                locks.enter_context(exclusive_lock(path, hint="wait for it to end, or choose another run_name"))
        if result_file.exists() and not overwrite:  # finished by another process while this one started
            raise ResultExistsError(f"{result_file} was written by another process while this run started; "
                                    "pass overwrite=True to replace it")

        data_config = AVMNISTConfig(pca_energy=pca_energy, noise=noise, snr_db=snr_db)
        if dataset is None and multibench_dir is not None:
            dataset = load_multibench_avmnist(multibench_dir)
        elif dataset is None:
            dataset = load_avmnist(data_dir, data_config, cache_dir=cache_dir)
        elif dataset.info.get("source") == "raw" and (
            dataset.info["config"]["snr_db"] != snr_db or dataset.info["config"]["pca_energy"] != pca_energy
        ):
            raise ValueError(
                f"the dataset passed in was built with {dataset.info.get('config')}, not with "
                f"pca_energy={pca_energy}, snr_db={snr_db}; pass dataset=None to load the matching one"
            )

        # Options that a model's builder does not take (hidden_dim for LF, say) are left out.
        options = {"primary": primary, "hidden_dim": hidden_dim, "num_blocks": num_blocks,
                   "fusion_position": fusion_position, "aux_mlp": aux_mlp}
        if model == "hyperfuse":
            options.update(generator=generator, rank=rank, block=block)
        torch.manual_seed(seed)  # the same seed gives the same initial weights
        model_options = {k: v for k, v in options.items() if k in model_option_names(model)}
        # The record lists the options that this model never read, so no value in it is taken as used.
        ignored = sorted(IGNORABLE_OPTIONS - set(model_options))
        for name in ignored:
            if params[name] != RUN_DEFAULTS[name]:
                logger.warning("model %r does not use %s=%r; it is ignored", model, name, params[name])
        network = build_model(model, **model_options)

        train_split = subsample_training(dataset["train"], train_fraction, seed)
        modalities = network.modalities
        config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                             patience=patience, seed=seed, precision=precision)
        outcome = train(
            network,
            split_tensors(train_split, modalities),
            split_tensors(dataset["val"], modalities),
            config,
            checkpoint_path=checkpoint_root / f"{run_name}.pt",
            run_key=json.dumps({k: v for k, v in params.items() if k not in ("overwrite", "progress")}, default=str),
            progress=progress,
        )
        test = evaluate(network, split_tensors(dataset["test"], modalities), precision=precision)
        val = evaluate(network, split_tensors(dataset["val"], modalities), precision=precision)

        record = {
            "experiment": "avmnist",
            "run_name": run_name,
            "run_identity": run_identity(params),
            "model": model,
            "seed": seed,
            "parameters": params,
            "model_options": model_options,
        "ignored_parameters": ignored,
            "train_config": config.__dict__,
            "dataset": {**{k: v for k, v in dataset.info.items() if k != "cache_file"},
                        "train_size_used": len(train_split)},
            "metrics": {
                "test_accuracy": test["accuracy"],
                "test_per_class_accuracy": test["per_class_accuracy"],
                "test_loss": test["loss"],
                "val_accuracy": val["accuracy"],
                "best_epoch": outcome.best_epoch,
                "stopped_early": outcome.stopped_early,
                "history": outcome.history,
            },
            "parameter_count": count_parameters(network),
            "world_size": world_size,
            "resumed_from_epoch": outcome.resumed_from_epoch,
            "provenance": provenance(),
            "wall_seconds": round(time.perf_counter() - started, 2),
        }
        if world_size > 1:
            # Every process must hold the same weights; the record keeps each one's checksum as proof.
            checksum = float(sum(p.double().sum() for p in network.state_dict().values() if p.is_floating_point()))
            checksums = [None] * world_size
            torch.distributed.all_gather_object(checksums, checksum)
            record["rank_weight_checksums"] = checksums
        if process_rank != 0:
            return record
        # The weights first: a results file on disk promises that its weights are there too.
        _atomic_torch_save(network.state_dict(), checkpoint_root / f"{run_name}.best.pt")
        write_json_atomic(result_file, record, overwrite=overwrite)
        (checkpoint_root / f"{run_name}.pt").unlink(missing_ok=True)
        logger.info("%s: test accuracy %.4f (best epoch %d)", run_name, test["accuracy"], outcome.best_epoch)
        return record


IGNORABLE_OPTIONS = frozenset({"hidden_dim", "num_blocks", "fusion_position", "aux_mlp", "generator", "rank", "block"})
RUN_DEFAULTS = {name: parameter.default for name, parameter in inspect.signature(run_avmnist).parameters.items()}
