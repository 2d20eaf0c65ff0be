"""Data-parallel training with two processes under torchrun (gloo on CPU)."""

import json
import subprocess
import sys


def test_torchrun_two_processes_train_the_same_weights(fixture_data, tmp_path):
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "hfcore", "train", "--model", "lf", "--epochs", "2", "--batch-size", "32",
        "--data-dir", str(fixture_data), "--cache-dir", str(tmp_path / "cache"),
        "--results-dir", str(tmp_path / "results"), "--checkpoint-dir", str(tmp_path / "ckpt"),
        "--run-name", "ddp",
    ]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    record = json.loads((tmp_path / "results" / "ddp.json").read_text())
    assert record["world_size"] == 2
    first, second = record["rank_weight_checksums"]
    assert first == second
    assert len(record["metrics"]["history"]) == 2
    assert 0.0 <= record["metrics"]["test_accuracy"] <= 1.0
