"""Benchmarks of HyperFuse's cost: timings, FLOP rates and peak memory, each measured against a
baseline in the same run.

A HyperFuse block with the full generator spends about ``h^3`` multiply-adds (``2 h^3`` FLOPs)
per sample to generate its ``h x h`` matrix. The layer it stands for costs ``h^2``. The functions here
measure what that means in practice:

- ``layer_benchmark``: a block's forward and backward pass against ``nn.Linear`` and FiLM, and
  its FLOP rate as a fraction of one matrix product with the same FLOP count;
- ``epoch_benchmark``: a full AV-MNIST training epoch of HyperFuse against late fusion, and
  each one's FLOP rate as a fraction of the machine's float32 matrix-product rate;
- ``dataset_benchmark``: building AV-MNIST from the raw files and loading it from the cache;
- ``peak_memory``: the peak tensor memory of a training step, per model.

``check_targets`` compares the outcome with the performance targets in ``TARGETS``.
``benchmarks/run.py`` runs everything and prints the ratios.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode``: convolutions and matrix
products, forward and backward, two FLOPs per multiply-add. Element-wise work (BatchNorm,
pooling, activations, the optimiser) is not counted, so a FLOP rate measures how much of the
time goes to the products that dominate the arithmetic.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from .blocks import HyperFuseBlock
from .models import build_model
from .training import TensorData, autocast

logger = logging.getLogger(__name__)

# Performance targets: name -> (description, bound, "max" or "min").
TARGETS = {
    "epoch_ratio": ("HyperFuse / LF training-epoch time, float32", 1.10, "max"),
    "training_matmul_fraction": ("training FLOP rate / float32 matmul rate", 0.35, "min"),
    "block_matmul_fraction": ("full-generator block FLOP rate / equal-FLOP matmul rate, h >= 32", 0.50, "min"),
    "build_seconds": ("AV-MNIST build from the raw files (s)", 60.0, "max"),
    "load_seconds": ("AV-MNIST load from the cache (s)", 2.0, "max"),
    "emap_speedup": ("EMAP pair logits: full model on every pair / encode once, fuse the pairs", 20.0, "min"),
}


# One AV-MNIST sample of each modality: a 28x28 digit and a 112x112 spectrogram, one channel each.
INPUT_SHAPES = {"image": (1, 28, 28), "audio": (1, 112, 112)}


def time_per_call(
    fn: Callable[[], object],
    *,
    min_seconds: float = 0.2,
    rounds: int = 5,
    warmup: int = 2,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Return the median over ``rounds`` of the mean seconds per call of ``fn``.

    Each round calls ``fn`` as many times as it takes to last at least ``min_seconds`` (the
    call count is fixed after the first round), so short calls are averaged over many runs.
    """
    if rounds <= 0:
        raise ValueError(f"rounds must be positive, got {rounds}")
    for _ in range(warmup):
        fn()
    calls, per_call = 1, []
    for round_index in range(rounds):
        start = clock()
        done = 0
        while True:
            fn()
            done += 1
            elapsed = clock() - start
            if (round_index > 0 and done >= calls) or (round_index == 0 and elapsed >= min_seconds):
                break
        calls = max(calls, done)
        per_call.append(elapsed / done)
    return statistics.median(per_call)


def count_flops(fn: Callable[[], object]) -> int:
    """Return the FLOPs of the convolutions and matrix products that ``fn`` runs."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def square_matmul_size(flops: float) -> int:
    """Return ``n`` such that an ``n x n`` by ``n x n`` product (``2 n^3`` FLOPs) costs ``flops``."""
    if flops <= 0:
        raise ValueError(f"flops must be positive, got {flops}")
    return max(1, round((flops / 2) ** (1 / 3)))


def matmul_seconds(n: int, *, dtype: torch.dtype = torch.float32, min_seconds: float = 0.2) -> float:
    """Return the seconds of one ``n x n`` float matrix product on this machine."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=generator).to(dtype)
    b = torch.randn(n, n, generator=generator).to(dtype)
    return time_per_call(lambda: torch.mm(a, b), min_seconds=min_seconds)


def matmul_rate(n: int = 2048, *, min_seconds: float = 0.5) -> float:
    """Return the float32 FLOP rate (FLOP/s) of a large square matrix product: the practical peak."""
    return 2 * n**3 / matmul_seconds(n, min_seconds=min_seconds)


class FiLM(nn.Module):
    """Feature-wise linear modulation (Perez et al., 2018): ``gamma(z_a) * z_p + beta(z_a)``.

    One linear layer maps the auxiliary feature to the ``2 * primary_dim`` values of ``gamma``
    and ``beta``. It is the cheapest way for one modality to condition another, and the
    baseline that a generated-weights layer has to beat on cost.
    """

    def __init__(self, primary_dim: int, aux_dim: int):
        super().__init__()
        self.primary_dim = primary_dim
        self.out_dim = primary_dim
        self.modulation = nn.Linear(aux_dim, 2 * primary_dim)

    def forward(self, z_p: torch.Tensor, z_a: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.modulation(z_a).split(self.primary_dim, dim=-1)
        return gamma * z_p + beta


def _forward_backward(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> Callable[[], None]:
    def step():
        module.zero_grad(set_to_none=True)
        module(*inputs).sum().backward()

    return step


def layer_benchmark(
    hidden_dims: tuple[int, ...] = (8, 32, 128, 256),
    *,
    batch: int = 256,
    primary_dim: int = 48,
    aux_dim: int = 192,
    rank: int | None = None,
    seed: int = 0,
    min_seconds: float = 0.2,
    progress: bool = True,
) -> list[dict]:
    """Time one block's forward + backward pass against ``nn.Linear`` and FiLM, per ``h``.

    The default widths are those of AV-MNIST with the image as primary modality (48) and the
    audio embedding as auxiliary (192). For every ``h`` the function times the block with the
    full and with the factorized generator (``rank`` as in ``HyperFuseBlock``), a Linear layer
    ``primary_dim -> primary_dim``, FiLM, and a square matrix product with the block's FLOP
    count. Every input requires a gradient, as inside a network.

    Returns one dict per (h, generator) with the seconds of each, the block's FLOPs and FLOP
    rate, and the ratios ``vs_linear``, ``vs_film`` and ``matmul_fraction`` (the block's FLOP
    rate over that of the equal-FLOP matrix product).
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    z_p = torch.randn(batch, primary_dim, generator=generator).requires_grad_()
    z_a = torch.randn(batch, aux_dim, generator=generator).requires_grad_()
    linear = nn.Linear(primary_dim, primary_dim)
    film = FiLM(primary_dim, aux_dim)
    rows = []
    jobs = [(h, kind) for h in hidden_dims for kind in ("full", "factorized")]
    for h, kind in tqdm(jobs, desc="layers", disable=not progress, leave=False):
        block = HyperFuseBlock(primary_dim, aux_dim, h, generator=kind, rank=rank if kind == "factorized" else None)
        block_step = _forward_backward(block, (z_p, z_a))
        flops = count_flops(block_step)
        n = square_matmul_size(flops)
        # Interleaved so that the machine's state (clock, cache) is the same for all four.
        block_seconds = time_per_call(block_step, min_seconds=min_seconds)
        linear_seconds = time_per_call(_forward_backward(linear, (z_p,)), min_seconds=min_seconds)
        film_seconds = time_per_call(_forward_backward(film, (z_p, z_a)), min_seconds=min_seconds)
        mm_seconds = matmul_seconds(n, min_seconds=min_seconds)
        rows.append(
            {
                "hidden_dim": h,
                "generator": kind,
                "rank": block.rank,
                "batch": batch,
                "parameters": sum(p.numel() for p in block.parameters()),
                "flops": flops,
                "seconds": block_seconds,
                "flops_per_second": flops / block_seconds,
                "linear_seconds": linear_seconds,
                "film_seconds": film_seconds,
                "matmul_size": n,
                "matmul_seconds": mm_seconds,
                "vs_linear": block_seconds / linear_seconds,
                "vs_film": block_seconds / film_seconds,
                "matmul_fraction": (flops / block_seconds) / (2 * n**3 / mm_seconds),
            }
        )
    return rows


def _training_step(model: nn.Module, optimizer: torch.optim.Optimizer, precision: str):
    # The step of hfcore.training.train: autocast forward, the model's loss (cross-entropy plus
    # any extra objective of its fusion) in float32, backward, Adam.
    def step(inputs: dict[str, torch.Tensor], labels: torch.Tensor) -> None:
        model_inputs = model.batch_inputs(inputs)
        with autocast(model, precision):
            logits = model(*model_inputs)
            loss = model.loss(logits, labels, *model_inputs) if hasattr(model, "loss") else None
        if loss is None:
            loss = F.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def build_config(name: str) -> nn.Module:
    """Build ``name`` with ``build_model``; ``hyperfuse/<block>`` builds a HyperFuse block variant."""
    model, _, block = name.partition("/")
    return build_model(model, block=block) if block else build_model(model)


def epoch_benchmark(
    data: TensorData,
    *,
    models: tuple[str, ...] = ("lf", "hyperfuse"),
    precisions: tuple[str, ...] = ("float32", "bfloat16"),
    batch_size: int = 64,
    rounds: int = 2,
    seed: int = 0,
    matmul_flops_per_second: float | None = None,
    val_data: TensorData | None = None,
    progress: bool = True,
) -> list[dict]:
    """Time full training epochs over ``data`` for each model and precision.

    ``models`` are names for ``build_model``, or ``hyperfuse/<block>`` for a block variant.
    Every round trains each model for one epoch, in turn, from the same seeded weights; an
    epoch's time is the fastest of its ``rounds``. A model whose fusion adapts after each epoch
    (Gradient Blending) runs that step on ``val_data`` inside the timed epoch, when given. The training FLOPs of an epoch are those of
    one full batch, counted, times the number of samples over the batch size. The FLOP rate is
    given as a fraction of ``matmul_flops_per_second`` (measured here when None).

    Returns one dict per (model, precision) with ``seconds``, ``samples_per_second``,
    ``flops``, ``flops_per_second``, ``matmul_fraction`` and ``vs_lf`` (the epoch time over
    that of ``lf`` in the same precision, when ``lf`` is among ``models``).
    """
    matmul_flops_per_second = matmul_flops_per_second or matmul_rate()
    rows = []
    for precision in precisions:
        seconds = {name: math.inf for name in models}
        flops = {}
        jobs = [(r, name) for r in range(rounds) for name in models]
        for _, name in tqdm(jobs, desc=f"epochs ({precision})", disable=not progress, leave=False):
            torch.manual_seed(seed)
            model = build_config(name).to(memory_format=torch.channels_last)
            model.train()
            step = _training_step(model, torch.optim.Adam(model.parameters(), lr=1e-3), precision)
            order = torch.Generator().manual_seed(seed)
            if name not in flops:
                inputs, labels = next(data.batches(batch_size, generator=order))
                flops[name] = count_flops(lambda: step(inputs, labels)) * len(data) / len(labels)
            start = time.perf_counter()
            for inputs, labels in data.batches(batch_size, generator=order):
                step(inputs, labels)
            if val_data is not None and hasattr(model, "end_epoch"):
                with autocast(model, precision):
                    model.end_epoch(data, val_data)
                model.train()
            seconds[name] = min(seconds[name], time.perf_counter() - start)
        for name in models:
            rate = flops[name] / seconds[name]
            rows.append(
                {
                    "model": name,
                    "precision": precision,
                    "batch_size": batch_size,
                    "samples": len(data),
                    "seconds": seconds[name],
                    "samples_per_second": len(data) / seconds[name],
                    "flops": flops[name],
                    "flops_per_second": rate,
                    "matmul_fraction": rate / matmul_flops_per_second,
                    "vs_lf": seconds[name] / seconds["lf"] if "lf" in seconds else None,
                }
            )
    return rows


def dataset_benchmark(data_dir: str | Path | None = None, *, load_rounds: int = 3, return_dataset: bool = False):
    """Build AV-MNIST from the raw files into a fresh cache folder, then load it from there.

    Returns ``build_seconds`` (one build, as a user's first run pays it) and ``load_seconds``
    (the median of ``load_rounds`` loads), with the dataset sizes. With ``return_dataset``,
    returns ``(figures, dataset)`` so that the caller need not build it again.
    """
    from .data.avmnist import load_avmnist

    with tempfile.TemporaryDirectory(prefix="hfcore-bench-cache-") as cache:
        start = time.perf_counter()
        dataset = load_avmnist(data_dir, cache_dir=cache)
        build_seconds = time.perf_counter() - start
        loads = []
        for _ in range(load_rounds):
            start = time.perf_counter()
            load_avmnist(data_dir, cache_dir=cache)
            loads.append(time.perf_counter() - start)
    figures = {"build_seconds": build_seconds, "load_seconds": statistics.median(loads), "sizes": dataset.sizes()}
    return (figures, dataset) if return_dataset else figures


@contextlib.contextmanager
def _native_stderr_silenced():
    # The profiler's C++ side prints start and stop lines, and on CUDA builds without a GPU an
    # "ERROR" about the device count, straight to file descriptor 2; Python's sys.stderr
    # cannot catch them.
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_tensor_bytes(fn: Callable[[], object]) -> int:
    """Return the peak bytes of live CPU tensors while ``fn`` runs.

    The count comes from PyTorch's memory timeline. It covers every tensor that the profiler
    records in use (the weights, optimiser state and inputs that ``fn`` touches, and everything
    it allocates). It counts tensor storage, not the memory that the allocator keeps from the system.
    NOTE: storage allocated before ``fn`` and freed during it (gradients that ``zero_grad``
    drops, say) is of unknown size to the profiler and is left out.
    """
    with _native_stderr_silenced(), profile(
        activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True
    ) as prof:
        fn()
    with tempfile.TemporaryDirectory(prefix="hfcore-memory-") as folder:
        path = Path(folder) / "timeline.json"
        with warnings.catch_warnings():
            # Deprecated in favour of a CUDA-only recorder; for CPU tensors it is still the tool.
            warnings.simplefilter("ignore", FutureWarning)
            prof.export_memory_timeline(str(path), device="cpu")
        _, sizes = json.loads(path.read_text())
    return max((sum(row) for row in sizes), default=0)


def peak_memory(
    models: tuple[str, ...] = ("lf", "hyperfuse"), *, batch_size: int = 64, precision: str = "float32"
) -> dict[str, dict]:
    """Return the peak tensor memory of one training step of each model.

    One step runs first, so that the optimiser state exists, as in every step after the
    first. On CUDA the figure is ``torch.cuda.max_memory_allocated`` over the next step; on
    CPU it is ``peak_tensor_bytes`` of the next step. Both count weights, gradients,
    optimiser state, the batch and the activations kept for the backward pass.
    """
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    figures = {}
    for name in models:
        torch.manual_seed(0)
        model = build_model(name).to(device).to(memory_format=torch.channels_last)
        step = _training_step(model, torch.optim.Adam(model.parameters(), lr=1e-3), precision)
        inputs = {
            modality: torch.randn(batch_size, *INPUT_SHAPES[modality], device=device).contiguous(
                memory_format=torch.channels_last)
            for modality in model.modalities
        }
        labels = torch.randint(0, 10, (batch_size,), device=device)
        step(inputs, labels)
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            step(inputs, labels)
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        else:
            peak = peak_tensor_bytes(lambda: step(inputs, labels))
        figures[name] = {"device": device.type, "peak_bytes": int(peak), "batch_size": batch_size,
                         "precision": precision}
    return figures


@dataclass(frozen=True)
class TargetCheck:
    """One target: the measured value, the bound, and whether the value meets it."""

    name: str
    description: str
    value: float
    bound: float
    kind: str

    @property
    def met(self) -> bool:
        return self.value <= self.bound if self.kind == "max" else self.value >= self.bound


def check_targets(
    *, layers: list[dict] | None = None, epochs: list[dict] | None = None, dataset: dict | None = None,
    emap: list[dict] | None = None,
) -> list[TargetCheck]:
    """Compare measurements with ``TARGETS``; a target whose measurement is missing is skipped.

    - ``epoch_ratio``: HyperFuse over LF epoch time in float32, the default precision.
    - ``training_matmul_fraction``: the lower of the two models' fractions, for each
      precision measured (one check per precision).
    - ``block_matmul_fraction``: the lowest fraction of the full-generator block over the
      measured ``h >= 32``.
    - ``emap_speedup``: the lowest speed-up of the EMAP pair logits over the models measured.
    """
    checks = []

    def add(name: str, value: float, suffix: str = ""):
        description, bound, kind = TARGETS[name]
        checks.append(TargetCheck(name + suffix, description + suffix.replace("/", ", "), value, bound, kind))

    if epochs:
        by_key = {(row["model"], row["precision"]): row for row in epochs}
        if ("hyperfuse", "float32") in by_key and ("lf", "float32") in by_key:
            add("epoch_ratio", by_key["hyperfuse", "float32"]["seconds"] / by_key["lf", "float32"]["seconds"])
        for precision in dict.fromkeys(row["precision"] for row in epochs):
            fractions = [row["matmul_fraction"] for row in epochs if row["precision"] == precision]
            add("training_matmul_fraction", min(fractions), f"/{precision}")
    if layers:
        fractions = [row["matmul_fraction"] for row in layers if row["generator"] == "full" and row["hidden_dim"] >= 32]
        if fractions:
            add("block_matmul_fraction", min(fractions))
    if dataset:
        add("build_seconds", dataset["build_seconds"])
        add("load_seconds", dataset["load_seconds"])
    if emap:
        add("emap_speedup", min(row["speedup"] for row in emap))
    return checks


# The models whose EMAP gap the analysis notebook reports (HyperFuse, LF, MFM and the best baseline).
EMAP_MODELS = ("hyperfuse", "lf", "mfm", "gb")


def emap_benchmark(models: tuple[str, ...] = EMAP_MODELS, *, samples: int = 48, rounds: int = 3,
                   progress: bool = True) -> list[dict]:
    """Time the EMAP pair logits of each model both ways, on ``samples**2`` pairs of random inputs.

    ``hfcore.analysis.pair_logits`` encodes each modality once and runs only the fusion and the
    head on the pairs, while ``pair_logits_full_model`` runs the whole model on every pair. Each
    row gives both times, their ratio and the largest difference between the two results, which
    must be rounding only. Weights and inputs are random, because the cost does not depend on
    what a model has learned.
    """
    from .analysis import pair_logits, pair_logits_full_model

    rows = []
    for name in tqdm(models, desc="EMAP pairs", disable=not progress):
        torch.manual_seed(0)
        model = build_model(name).eval()
        generator = torch.Generator().manual_seed(0)
        x_p, x_a = (torch.randn(samples, *INPUT_SHAPES[modality], generator=generator) for modality in model.modalities)
        fast, full = pair_logits(model, x_p, x_a), pair_logits_full_model(model, x_p, x_a)
        fast_seconds = time_per_call(lambda: pair_logits(model, x_p, x_a), min_seconds=0.05, rounds=rounds, warmup=1)
        full_seconds = time_per_call(lambda: pair_logits_full_model(model, x_p, x_a), min_seconds=0.05,
                                     rounds=rounds, warmup=0)
        rows.append({"model": name, "pairs": samples * samples, "encode_once_seconds": fast_seconds,
                     "full_model_seconds": full_seconds, "speedup": full_seconds / fast_seconds,
                     "max_abs_difference": float((fast - full).abs().max())})
    return rows


def machine_description() -> dict:
    """Return the CPU model, core and thread counts, bfloat16 support and the torch version."""
    cpu, flags = platform.processor() or platform.machine(), set()
    if Path("/proc/cpuinfo").is_file():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and ":" in line:
                flags = set(line.split(":", 1)[1].split())
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_bfloat16": sorted(flags & {"avx512_bf16", "amx_bf16"}),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
    }


def _layer_lines(rows: list[dict]) -> list[str]:
    lines = [
        "",
        f"1. HyperFuse block, forward + backward, batch {rows[0]['batch']}: time ratios and FLOP rate",
        "   (x Linear, x FiLM: block time over that layer's; last column: block FLOP rate over that of "
        "one square matmul with the same FLOP count)",
        f"{'h':>5} {'generator':<11} {'block ms':>9} {'x Linear':>9} {'x FiLM':>8} {'GFLOP/s':>8} "
        f"{'of equal-FLOP matmul':>21}",
    ]
    for row in rows:
        lines.append(
            f"{row['hidden_dim']:>5} {row['generator']:<11} {1e3 * row['seconds']:>9.3f} {row['vs_linear']:>9.1f} "
            f"{row['vs_film']:>8.1f} {row['flops_per_second'] / 1e9:>8.1f} {row['matmul_fraction']:>21.2f}"
        )
    return lines


def _epoch_lines(rows: list[dict]) -> list[str]:
    lines = [
        "",
        f"2. AV-MNIST training epoch, {rows[0]['samples']} samples, batch {rows[0]['batch_size']}",
        "   (of matmul: training FLOP rate over the float32 matmul rate above; x LF: epoch time over LF's)",
        f"{'model':<10} {'precision':<9} {'seconds':>8} {'samples/s':>10} {'GFLOP/s':>8} {'of matmul':>10} {'x LF':>6}",
    ]
    for row in rows:
        ratio = f"{row['vs_lf']:.2f}" if row["vs_lf"] is not None else "-"
        lines.append(
            f"{row['model']:<10} {row['precision']:<9} {row['seconds']:>8.2f} {row['samples_per_second']:>10.0f} "
            f"{row['flops_per_second'] / 1e9:>8.1f} {row['matmul_fraction']:>10.2f} {ratio:>6}"
        )
    return lines


def _model_lines(rows: list[dict]) -> list[str]:
    lines = [
        "",
        f"5. Training epoch of every model of the baseline comparison, float32, {rows[0]['samples']} samples, "
        f"batch {rows[0]['batch_size']} (x LF: epoch time over LF's)",
        f"{'model':<16} {'seconds':>8} {'samples/s':>10} {'GFLOP/s':>8} {'x LF':>6}",
    ]
    for row in rows:
        ratio = f"{row['vs_lf']:.2f}" if row["vs_lf"] is not None else "-"
        lines.append(f"{row['model']:<16} {row['seconds']:>8.2f} {row['samples_per_second']:>10.0f} "
                     f"{row['flops_per_second'] / 1e9:>8.1f} {ratio:>6}")
    return lines


def _dataset_lines(data: dict) -> list[str]:
    sizes = " / ".join(f"{count:,} {name}" for name, count in data["sizes"].items())
    return ["", f"3. AV-MNIST ({sizes}): build from raw files {data['build_seconds']:.1f} s, "
                f"load from cache {data['load_seconds']:.2f} s"]


def _memory_lines(memory: dict[str, dict]) -> list[str]:
    first = next(iter(memory.values()))
    parts = ", ".join(f"{name} {figures['peak_bytes'] / 2**20:.0f} MiB" for name, figures in memory.items())
    lines = ["", f"4. Peak tensor memory of a training step ({first['device']}, batch {first['batch_size']}, "
                 f"{first['precision']}): {parts}"]
    if "lf" in memory and "hyperfuse" in memory and memory["lf"]["peak_bytes"] > 0:
        lines.append(f"   HyperFuse / LF: {memory['hyperfuse']['peak_bytes'] / memory['lf']['peak_bytes']:.2f}")
    return lines


def _emap_lines(rows: list[dict]) -> list[str]:
    lines = ["", f"6. EMAP pair logits on {rows[0]['pairs']} pairs: encode each modality once and fuse the pairs, "
                 "against the full model on every pair",
             f"{'model':<12}{'encode once (s)':>17}{'full model (s)':>16}{'speed-up':>10}{'max |diff|':>12}"]
    for row in rows:
        lines.append(f"{row['model']:<12}{row['encode_once_seconds']:>17.4f}{row['full_model_seconds']:>16.3f}"
                     f"{row['speedup']:>10.1f}{row['max_abs_difference']:>12.1e}")
    return lines


def _target_lines(targets: list[dict]) -> list[str]:
    lines = ["", "Targets"]
    for check in targets:
        sign = "<=" if check["kind"] == "max" else ">="
        status = "met" if check["met"] else "NOT MET"
        lines.append(f"  [{status:>7}] {check['description']}: {check['value']:.3g} (target {sign} {check['bound']})")
    return lines


def format_report(results: dict) -> str:
    """Return the benchmark results as the plain-text report that ``benchmarks/run.py`` prints."""
    lines = []
    if results["parameters"].get("quick"):
        lines.append("QUICK RUN: smoke-test sizes. The timings are mostly overhead and no target is checked.")
    machine = results["machine"]
    lines.append(
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['torch_threads']} torch threads, "
        f"torch {machine['torch']}, CPU bfloat16: {', '.join(machine['cpu_bfloat16']) or 'none'}"
    )
    lines.append(f"float32 matmul rate ({results['matmul_size']}^3): {results['matmul_flops_per_second'] / 1e9:.0f} GFLOP/s")

    if results.get("layers"):
        lines += _layer_lines(results["layers"])
    if results.get("epochs"):
        lines += _epoch_lines(results["epochs"])
    if results.get("dataset"):
        lines += _dataset_lines(results["dataset"])
    if results.get("memory"):
        lines += _memory_lines(results["memory"])
    if results.get("emap"):
        lines += _emap_lines(results["emap"])
    if results.get("models"):
        lines += _model_lines(results["models"])
    if results.get("targets"):
        lines += _target_lines(results["targets"])
    return "\n".join(lines)


def plot_layers(rows: list[dict]):
    """Plot forward + backward time against ``h`` for both generators, with Linear and FiLM."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for kind, marker in (("full", "o"), ("factorized", "s")):
        chosen = [row for row in rows if row["generator"] == kind]
        ax.plot([r["hidden_dim"] for r in chosen], [1e3 * r["seconds"] for r in chosen], marker=marker,
                label=f"HyperFuse block, {kind} generator")
    hidden = sorted({row["hidden_dim"] for row in rows})
    for key, label, style in (("linear_seconds", "nn.Linear", ":"), ("film_seconds", "FiLM", "--")):
        ax.plot(hidden, [1e3 * statistics.median(r[key] for r in rows if r["hidden_dim"] == h) for h in hidden],
                linestyle=style, color="0.4" if key == "film_seconds" else "0.6", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(hidden, [str(h) for h in hidden])
    ax.set_yscale("log")
    ax.set_xlabel("bottleneck width h")
    ax.set_ylabel("forward + backward (ms)")
    ax.set_title(f"Cost of one fusion layer, batch {rows[0]['batch']}")
    ax.legend(frameon=False, fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


PARTS = ("layers", "epochs", "dataset", "memory", "emap", "models")
# "models" times an epoch of every model of the baseline comparison (about 5 minutes), so it
# runs only when asked for.
DEFAULT_PARTS = ("layers", "epochs", "dataset", "memory", "emap")
# The configurations of experiments/avmnist_baselines.yaml, in the comparison's order.
COMPARISON_MODELS = ("hyperfuse", "lf", "lfn", "lmf", "mfm", "gb", "mbt", "mfas", "refnet", "film", "mag",
                     "dynamic_mlp_c", "hyperfuse/I", "hyperfuse/II", "hyperfuse/III", "hyperfuse/IV")


def run_benchmarks(
    *,
    data_dir: str | Path | None = None,
    parts: tuple[str, ...] = DEFAULT_PARTS,
    quick: bool = False,
    precisions: tuple[str, ...] = ("float32", "bfloat16"),
    progress: bool = True,
) -> dict:
    """Run the benchmark ``parts`` and return their measurements with the targets checked.

    ``quick`` shrinks every part (two small ``h``, 256 training samples, short timings) to check
    that the benchmark works. Its timings are then mostly overhead.
    """
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"unknown benchmark part(s) {unknown}; choose from {PARTS}")
    if {"dataset", "epochs"} & set(parts):
        from .data.paths import find_data_dir

        data_dir = find_data_dir(data_dir)  # fail now, not after minutes of layer timings
    started = time.perf_counter()
    matmul_size = 256 if quick else 2048
    results: dict = {
        "machine": machine_description(),
        "parameters": {"parts": list(parts), "quick": quick, "precisions": list(precisions),
                       "data_dir": str(data_dir) if data_dir else None, "seed": 0},
        "matmul_size": matmul_size,
        "matmul_flops_per_second": matmul_rate(matmul_size, min_seconds=0.05 if quick else 0.5),
    }
    if "layers" in parts:
        results["layers"] = layer_benchmark(
            (8, 32) if quick else (8, 32, 128, 256), batch=32 if quick else 256,
            min_seconds=0.01 if quick else 0.2, progress=progress,
        )
    dataset = None
    if "dataset" in parts:
        results["dataset"], dataset = dataset_benchmark(data_dir, load_rounds=1 if quick else 3, return_dataset=True)
    if {"epochs", "models"} & set(parts):
        from .data.avmnist import load_avmnist

        dataset = dataset or load_avmnist(data_dir)
        train_split, val_split = dataset["train"], dataset["val"]
        if quick:
            train_split = train_split.subset(list(range(min(256, len(train_split)))))
            val_split = val_split.subset(list(range(min(128, len(val_split)))))
        data, val_data = (TensorData({"image": split.image, "audio": split.audio}, split.label)
                          for split in (train_split, val_split))
    if "epochs" in parts:
        results["epochs"] = epoch_benchmark(
            data, precisions=precisions, rounds=1 if quick else 3,
            matmul_flops_per_second=results["matmul_flops_per_second"], progress=progress,
        )
    if "models" in parts:
        results["models"] = epoch_benchmark(
            data, models=COMPARISON_MODELS, precisions=("float32",), rounds=1 if quick else 2,
            matmul_flops_per_second=results["matmul_flops_per_second"], val_data=val_data, progress=progress,
        )
    if "memory" in parts:
        results["memory"] = peak_memory(batch_size=8 if quick else 64)
    if "emap" in parts:
        results["emap"] = emap_benchmark(samples=8 if quick else 48, rounds=1 if quick else 3, progress=progress)
    # Quick sizes time mostly overhead, so checking targets on them would mislead.
    results["targets"] = [] if quick else [
        {**check.__dict__, "met": check.met}
        for check in check_targets(layers=results.get("layers"), epochs=results.get("epochs"),
                                   dataset=results.get("dataset"), emap=results.get("emap"))
    ]
    results["wall_seconds"] = round(time.perf_counter() - started, 2)
    return results
