"""The benchmark's measuring tools, checked on worked examples; speed itself is not asserted."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hfcore import benchmark
from hfcore.benchmark import (
    FiLM,
    check_targets,
    count_flops,
    peak_tensor_bytes,
    square_matmul_size,
    time_per_call,
)

REPO = Path(__file__).resolve().parents[1]


def test_time_per_call_median_round():
    # A fake clock that advances 1, 2, 3, ... seconds per call: round 1 needs 2 calls
    # (1 + 2 = 3 s >= min_seconds), and later rounds reuse that call count.
    steps = iter([1, 2, 10, 20, 3, 3])
    now = [0.0]

    def call():
        now[0] += next(steps)

    seconds = time_per_call(call, min_seconds=2.5, rounds=3, warmup=0, clock=lambda: now[0])
    # Rounds: (1 + 2) / 2 = 1.5, (10 + 20) / 2 = 15, (3 + 3) / 2 = 3; the median is 3.
    assert seconds == 3.0


def test_count_flops_linear_layer():
    # Forward: 2 * batch * in * out. Backward: the same again for the input gradient and for
    # the weight gradient.
    layer = torch.nn.Linear(10, 20)
    x = torch.randn(8, 10, requires_grad=True)
    assert count_flops(lambda: layer(x)) == 2 * 8 * 10 * 20
    assert count_flops(lambda: layer(x).sum().backward()) == 3 * 2 * 8 * 10 * 20


def test_square_matmul_size_matches_the_flop_count():
    assert square_matmul_size(2 * 100**3) == 100
    assert square_matmul_size(2 * 100**3 * 1.03) == 101  # rounds to the nearest size
    with pytest.raises(ValueError, match="flops must be positive"):
        square_matmul_size(0)


def test_film_scales_and_shifts_by_hand():
    film = FiLM(primary_dim=2, aux_dim=1)
    with torch.no_grad():
        film.modulation.weight.copy_(torch.tensor([[2.0], [3.0], [0.5], [-1.0]]))
        film.modulation.bias.zero_()
    z_p = torch.tensor([[1.0, 10.0]])
    z_a = torch.tensor([[2.0]])
    # gamma = (4, 6), beta = (1, -2): (4 * 1 + 1, 6 * 10 - 2).
    torch.testing.assert_close(film(z_p, z_a), torch.tensor([[5.0, 58.0]]))


def test_peak_tensor_bytes_worked_example():
    x = torch.randn(1000, 1000)  # 4 MB, read by the step

    def step():
        a = x * 2
        b = a + 1  # x, a and b live together: 12 MB
        del a
        return b.sum()

    def lighter():
        a = x * 2
        del a
        b = x + 1  # never more than two 4 MB tensors at once
        return b.sum()

    # The scalar sum adds 4 bytes of storage, plus 8 for the profiler's own bookkeeping.
    assert peak_tensor_bytes(step) == pytest.approx(12_000_000, abs=64)
    assert peak_tensor_bytes(lighter) == pytest.approx(8_000_000, abs=64)


def test_layer_benchmark_rows_are_consistent():
    rows = benchmark.layer_benchmark((4, 8), batch=4, primary_dim=6, aux_dim=5, min_seconds=0.001, progress=False)
    assert [(r["hidden_dim"], r["generator"]) for r in rows] == [
        (4, "full"), (4, "factorized"), (8, "full"), (8, "factorized")
    ]
    for row in rows:
        assert row["seconds"] > 0
        assert row["flops"] > 0
        assert row["vs_linear"] == pytest.approx(row["seconds"] / row["linear_seconds"])
        assert row["vs_film"] == pytest.approx(row["seconds"] / row["film_seconds"])
        matmul_rate = 2 * row["matmul_size"] ** 3 / row["matmul_seconds"]
        assert row["matmul_fraction"] == pytest.approx(row["flops"] / row["seconds"] / matmul_rate)
    # The full generator's h^2 outputs cost more FLOPs than the factorized one's h gains.
    assert rows[2]["flops"] > rows[3]["flops"]


def epoch_row(model, precision, seconds, fraction):
    return {"model": model, "precision": precision, "seconds": seconds, "matmul_fraction": fraction}


def test_check_targets_worked_example():
    epochs = [
        epoch_row("lf", "float32", 10.0, 0.20),
        epoch_row("hyperfuse", "float32", 10.5, 0.22),
        epoch_row("lf", "bfloat16", 6.0, 0.40),
        epoch_row("hyperfuse", "bfloat16", 7.0, 0.36),
    ]
    layers = [
        {"hidden_dim": 8, "generator": "full", "matmul_fraction": 0.05},  # h < 32: not checked
        {"hidden_dim": 32, "generator": "full", "matmul_fraction": 0.55},
        {"hidden_dim": 128, "generator": "full", "matmul_fraction": 0.45},
        {"hidden_dim": 128, "generator": "factorized", "matmul_fraction": 0.10},  # not checked
    ]
    checks = {c.name: c for c in check_targets(layers=layers, epochs=epochs,
                                                 dataset={"build_seconds": 61.0, "load_seconds": 0.3})}
    assert checks["epoch_ratio"].value == pytest.approx(1.05)
    assert checks["epoch_ratio"].met
    assert checks["training_matmul_fraction/float32"].value == 0.20
    assert not checks["training_matmul_fraction/float32"].met
    assert checks["training_matmul_fraction/bfloat16"].value == 0.36
    assert checks["training_matmul_fraction/bfloat16"].met
    assert checks["block_matmul_fraction"].value == 0.45
    assert not checks["block_matmul_fraction"].met
    assert not checks["build_seconds"].met
    assert checks["load_seconds"].met


def test_check_targets_emap_speedup_is_the_slowest_model():
    emap = [{"model": "lf", "speedup": 35.0}, {"model": "hyperfuse", "speedup": 18.0}]
    (check,) = check_targets(emap=emap)
    assert check.name == "emap_speedup"
    assert check.value == 18.0
    assert not check.met


def test_emap_benchmark_both_ways_agree():
    rows = benchmark.emap_benchmark(("lf", "hyperfuse"), samples=4, rounds=1, progress=False)
    assert [row["model"] for row in rows] == ["lf", "hyperfuse"]
    for row in rows:
        assert row["pairs"] == 16
        assert row["max_abs_difference"] < 1e-4  # the same logits, computed two ways
        assert row["speedup"] == pytest.approx(row["full_model_seconds"] / row["encode_once_seconds"])


def test_check_targets_skips_what_was_not_measured():
    assert check_targets() == []


def test_peak_memory_hyperfuse_above_lf():
    figures = benchmark.peak_memory(batch_size=2)
    assert set(figures) == {"lf", "hyperfuse"}
    assert all(f["peak_bytes"] > 0 for f in figures.values())
    # Both share the two encoders; HyperFuse adds a 64x64 generator (about 270k weights,
    # with gradient and two Adam moments: over 4 MB) and drops most of LF's wider head.
    assert figures["hyperfuse"]["peak_bytes"] > figures["lf"]["peak_bytes"] + 3_000_000


def test_benchmark_script_quick_run_writes_results(fixture_data, tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--quick", "--no-progress", "--precisions", "float32",
         "--data-dir", str(fixture_data), "--output-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for heading in ("QUICK RUN", "1. HyperFuse block", "2. AV-MNIST training epoch", "3. AV-MNIST",
                    "4. Peak tensor memory", "6. EMAP pair logits on 64 pairs"):
        assert heading in done.stdout
    # Quick timings are mostly overhead, so the targets are not checked on them.
    assert "Targets" not in done.stdout
    (results_file,) = tmp_path.glob("benchmark-*.json")
    results = json.loads(results_file.read_text())
    assert {"machine", "layers", "epochs", "dataset", "memory", "emap", "targets", "provenance",
            "wall_seconds"} <= set(results)
    assert results["parameters"]["quick"] is True
    assert results["targets"] == []
    assert (tmp_path / "benchmark_layers.png").stat().st_size > 0


def test_benchmark_script_names_a_bad_part():
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "run.py"), "--parts", "gpu"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "unknown part 'gpu'" in done.stderr


def test_report_lists_targets_of_a_full_run():
    results = {
        "parameters": {"quick": False},
        "machine": {"cpu": "test CPU", "cores": 2, "torch_threads": 2, "torch": "2.x", "cpu_bfloat16": []},
        "matmul_size": 2048,
        "matmul_flops_per_second": 300e9,
        "dataset": {"sizes": {"train": 7000, "val": 1000, "test": 2000}, "build_seconds": 12.0, "load_seconds": 0.2},
        "targets": [{"description": "AV-MNIST load from the cache (s)", "value": 0.2, "bound": 2.0, "kind": "max",
                     "met": True}],
    }
    report = benchmark.format_report(results)
    assert "3. AV-MNIST (7,000 train / 1,000 val / 2,000 test): build from raw files 12.0 s" in report
    assert "[    met] AV-MNIST load from the cache (s): 0.2 (target <= 2.0)" in report
    assert "QUICK RUN" not in report


def test_epoch_benchmark_times_baselines_and_block_variants():
    from hfcore.training import TensorData

    g = torch.Generator().manual_seed(0)
    def data(n):
        return TensorData({"image": torch.randn(n, 1, 28, 28, generator=g),
                           "audio": torch.randn(n, 1, 112, 112, generator=g)}, torch.arange(n) % 10)

    rows = benchmark.epoch_benchmark(data(32), models=("lf", "gb", "hyperfuse/II"), precisions=("float32",),
                                     batch_size=16, rounds=1, matmul_flops_per_second=1e11, val_data=data(20),
                                     progress=False)
    assert [row["model"] for row in rows] == ["lf", "gb", "hyperfuse/II"]
    assert rows[0]["vs_lf"] == 1.0
    assert all(row["seconds"] > 0 and row["flops"] > 0 for row in rows)
    assert benchmark.build_config("hyperfuse/II").fusion.block == "II"
    report = benchmark.format_report({
        "parameters": {"quick": False}, "matmul_size": 2048, "matmul_flops_per_second": 1e11,
        "machine": {"cpu": "test CPU", "cores": 2, "torch_threads": 2, "torch": "2.x", "cpu_bfloat16": []},
        "models": rows,
    })
    assert "5. Training epoch of every model of the baseline comparison" in report
    assert "hyperfuse/II" in report
