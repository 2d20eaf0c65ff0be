"""Learning-rate selection, paired differences and the comparison table, on worked examples."""

import json
import math

import pandas as pd
import pytest

from hfcore.comparison import (
    comparison_frame,
    comparison_table,
    format_comparison,
    paired_difference,
    plot_comparison,
    select_learning_rates,
    tuning_table,
    write_comparison,
)


def write_run(folder, model, lr, seed, test, val, *, block="base", params=1000, wall=120.0, epochs=12):
    record = {
        "model": model,
        "seed": seed,
        "parameters": {"model": model, "lr": lr, "seed": seed, "block": block, "epochs": epochs},
        "metrics": {"test_accuracy": test / 100, "val_accuracy": val / 100,
                    "history": [{"epoch": e} for e in range(1, epochs + 1)]},
        "parameter_count": params,
        "wall_seconds": wall,
    }
    name = f"{model}-{block}-{lr}-{seed}.json"
    (folder / name).write_text(json.dumps(record))


def test_paired_difference_worked_example():
    # Differences 1, 2, 3: mean 2, sample std 1, t(0.975, 2) = 4.302653, half width 4.302653 / sqrt(3).
    values = pd.Series([71.0, 72.0, 73.0], index=[0, 1, 2])
    reference = pd.Series([70.0, 70.0, 70.0, 99.0], index=[0, 1, 2, 3])  # seed 3 has no partner
    result = paired_difference(values, reference)
    assert result["n"] == 3
    assert result["mean"] == pytest.approx(2.0)
    assert result["low"] == pytest.approx(2 - 4.302653 / math.sqrt(3), abs=1e-5)
    assert result["high"] == pytest.approx(2 + 4.302653 / math.sqrt(3), abs=1e-5)


def test_paired_difference_needs_two_seeds():
    result = paired_difference(pd.Series([1.0], index=[0]), pd.Series([0.0], index=[0]))
    assert result["mean"] == 1.0
    assert math.isnan(result["low"])
    assert math.isnan(result["high"])


def test_learning_rate_chosen_on_validation(tmp_path):
    write_run(tmp_path, "lf", 0.001, 0, test=90, val=70)
    write_run(tmp_path, "lf", 0.002, 0, test=60, val=72)  # best validation, worse test: still chosen
    write_run(tmp_path, "lf", 0.0005, 0, test=95, val=72)  # tie on validation: the smaller rate wins
    write_run(tmp_path, "lf", 0.001, 1, test=99, val=99)  # another seed: not part of the tuning
    frame = comparison_frame(tmp_path)
    assert select_learning_rates(frame) == {"lf": 0.0005}
    assert tuning_table(frame).loc["lf"].to_dict() == {0.0005: 72.0, 0.001: 70.0, 0.002: 72.0}


def test_comparison_table_pairs_seeds_with_hyperfuse(tmp_path):
    for seed, (hf, lf) in enumerate([(72.0, 71.0), (73.0, 71.0), (71.0, 70.0)]):
        write_run(tmp_path, "hyperfuse", 0.001, seed, test=hf, val=80, params=500, wall=60.0)
        write_run(tmp_path, "lf", 0.002, seed, test=lf, val=80, params=300, wall=120.0)
    write_run(tmp_path, "lf", 0.001, 0, test=99, val=10)  # a rejected rate: left out of the table
    write_run(tmp_path, "hyperfuse", 0.001, 0, test=50, val=70, block="II")
    table = comparison_table(comparison_frame(tmp_path), epoch_seconds={"lf": 10.0, "hyperfuse": 5.0})
    table = table.set_index("config")
    assert list(table.index) == ["hyperfuse", "lf", "hyperfuse/II"]
    lf = table.loc["lf"]
    assert lf["lr"] == 0.002
    assert lf["seeds"] == 3
    assert lf["test_mean"] == pytest.approx(212 / 3)
    assert lf["diff_mean"] == pytest.approx(-4 / 3)  # differences -1, -2, -1
    assert lf["seconds_per_epoch"] == 10.0
    assert lf["wall_seconds_per_epoch"] == pytest.approx(10.0)  # 120 s over 12 epochs
    assert math.isnan(table.loc["hyperfuse/II", "seconds_per_epoch"])
    assert lf["paper"] == 71.4
    assert table.loc["hyperfuse/II", "paired_seeds"] == 1
    assert math.isnan(table.loc["hyperfuse/II", "diff_low"])
    text = format_comparison(table.reset_index())
    assert "| LF | 0.002 | 70.7 ± 0.6 | 3 | 300 | 10.0 | -1.3 [" in text
    assert "| HyperFuse | 0.001 | 72.0 ± 1.0 | 3 | 500 | 5.0 | reference | 72.4 ± 0.3 |" in text
    fig = plot_comparison(comparison_frame(tmp_path), table.reset_index())
    assert len(fig.axes) == 2


def test_comparison_frame_reports_an_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no results files"):
        comparison_frame(tmp_path)


def test_write_comparison_splits_baselines_and_block_variants(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    for seed in (0, 1):
        write_run(runs, "hyperfuse", 0.001, seed, test=72.0 + seed, val=80)
        write_run(runs, "lf", 0.001, seed, test=71.0, val=80)
        write_run(runs, "hyperfuse", 0.001, seed, test=70.0, val=80, block="III")
    frame = comparison_frame(runs)
    paths = write_comparison(comparison_table(frame), tuning_table(frame), tmp_path)
    assert [p.name for p in paths] == ["comparison.csv", "comparison.md", "tuning.csv"]
    baselines, blocks = (tmp_path / "comparison.md").read_text().split("## HyperFuse block variants")
    assert "| LF |" in baselines
    assert "Block III" not in baselines
    assert "| HyperFuse Block III |" in blocks
    assert "| HyperFuse |" in blocks
    assert "| LF |" not in blocks


def test_seed_grids_seed_first_order():
    from hfcore.comparison import seed_grids

    entries = seed_grids({"lf": 0.002, "hyperfuse/II": 0.0005, "hyperfuse": 0.001}, seeds=(1, 2))
    assert entries[:3] == [
        {"model": ["hyperfuse"], "block": ["base"], "lr": [0.001], "seed": [1]},
        {"model": ["lf"], "block": ["base"], "lr": [0.002], "seed": [1]},
        {"model": ["hyperfuse"], "block": ["II"], "lr": [0.0005], "seed": [1]},
    ]
    assert [e["seed"] for e in entries] == [[1]] * 3 + [[2]] * 3


def test_best_baseline_is_chosen_on_validation(tmp_path):
    from hfcore.comparison import best_baseline

    for seed in (0, 1):
        write_run(tmp_path, "hyperfuse", 0.001, seed, test=90, val=90)
        write_run(tmp_path, "lf", 0.001, seed, test=80, val=75)
        write_run(tmp_path, "mfm", 0.001, seed, test=60, val=76)  # better validation, worse test
    assert best_baseline(comparison_frame(tmp_path)) == "mfm"
    only_hyperfuse = tmp_path / "hf"
    only_hyperfuse.mkdir()
    write_run(only_hyperfuse, "hyperfuse", 0.001, 0, test=90, val=90)
    assert best_baseline(comparison_frame(only_hyperfuse)) is None


def test_benchmark_epoch_seconds_reads_the_newest_full_record(tmp_path):
    from hfcore.comparison import benchmark_epoch_seconds

    assert benchmark_epoch_seconds(tmp_path) == {}
    def write(stamp, quick, seconds):
        record = {"parameters": {"quick": quick}, "models": [{"model": "lf", "seconds": seconds}]}
        (tmp_path / f"benchmark-{stamp}.json").write_text(json.dumps(record))
    write("20260101T000000Z", False, 8.0)
    write("20260102T000000Z", False, 9.0)
    write("20260103T000000Z", True, 0.1)  # a quick run: its timings are overhead, never used
    (tmp_path / "benchmark-20260104T000000Z.json").write_text(json.dumps({"parameters": {"quick": False}}))
    assert benchmark_epoch_seconds(tmp_path) == {"lf": 9.0}


def test_comparison_rejects_runs_that_differ_in_other_settings(tmp_path):
    write_run(tmp_path, "hyperfuse", 0.001, 0, test=72.0, val=80, epochs=12)
    write_run(tmp_path, "lf", 0.001, 0, test=71.0, val=80, epochs=5)
    with pytest.raises(ValueError, match=r"differ in more than model, block, learning rate and seed \(epochs: 12, 5\)"):
        comparison_frame(tmp_path)


def test_comparison_rejects_two_runs_of_one_seed(tmp_path):
    write_run(tmp_path, "lf", 0.001, 0, test=71.0, val=80)
    record = json.loads((tmp_path / "lf-base-0.001-0.json").read_text())
    (tmp_path / "copy.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="contains two runs of lf at lr 0.001 with seed 0"):
        comparison_frame(tmp_path)


def test_format_comparison_says_what_is_missing(tmp_path):
    write_run(tmp_path, "lf", 0.001, 0, test=71.0, val=80)
    text = format_comparison(comparison_table(comparison_frame(tmp_path)))
    assert "No HyperFuse run: the paired differences need one." in text
    assert "benchmarks/run.py --parts models" in text
    write_run(tmp_path, "hyperfuse", 0.001, 0, test=72.0, val=80)
    text = format_comparison(comparison_table(comparison_frame(tmp_path), epoch_seconds={"lf": 8.0}))
    assert "need two or more seeds" in text
    assert "--parts models" not in text
