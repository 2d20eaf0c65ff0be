"""Data-parallel training with two processes under torchrun (gloo on CPU)."""

import json
import subprocess
import sys


def run_two_processes(arguments: list[str], result_file) -> dict:
    """Run ``python -m hfcore ARGUMENTS`` under torchrun with two processes; return its results file,
    after checking that both processes ended with the same weights."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "hfcore", *arguments]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    record = json.loads(result_file.read_text())
    assert record["world_size"] == 2
    first, second = record["rank_weight_checksums"]
    assert first == second
    return record


def test_torchrun_two_processes_train_the_same_weights(fixture_data, tmp_path):
    record = run_two_processes([
        "train", "--model", "lf", "--epochs", "2", "--batch-size", "32",
        "--data-dir", str(fixture_data), "--cache-dir", str(tmp_path / "cache"),
        "--results-dir", str(tmp_path / "results"), "--checkpoint-dir", str(tmp_path / "ckpt"),
        "--run-name", "ddp",
    ], tmp_path / "results" / "ddp.json")
    assert len(record["metrics"]["history"]) == 2
    assert 0.0 <= record["metrics"]["test_accuracy"] <= 1.0


def test_torchrun_trains_the_geo_model_data_parallel(tmp_path):
    from hfcore.geo.fixtures import write_inat2021_fixture

    data = write_inat2021_fixture(tmp_path / "inat2021")
    record = run_two_processes([
        "geo-train", "--dataset", "inat2021", "--data-dir", str(data), "--model", "hyperfuse",
        "--backbone", "resnet18", "--epochs", "2", "--warmup-epochs", "1", "--batch-size", "8", "--lr", "0.01",
        "--image-size", "32", "--hidden-dim", "8", "--num-workers", "0",
        "--results-dir", str(tmp_path / "results"), "--checkpoint-dir", str(tmp_path / "ckpt"), "--run-name", "ddp",
    ], tmp_path / "results" / "ddp.json")
    assert record["metrics"]["eval_samples"] == 12  # each evaluation image counted once over both processes
    assert len(record["metrics"]["history"]) == 2
