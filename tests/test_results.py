import json

import pandas as pd
import pytest

from hfcore.results import ResultExistsError, provenance, write_json_atomic
from hfcore.summary import format_table, summary_table


def test_write_refuses_existing_file(tmp_path):
    path = write_json_atomic(tmp_path / "r.json", {"a": 1})
    with pytest.raises(ResultExistsError, match="overwrite=True"):
        write_json_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1}


def test_overwrite_replaces_file(tmp_path):
    path = write_json_atomic(tmp_path / "r.json", {"a": 1})
    write_json_atomic(path, {"a": 2}, overwrite=True)
    assert json.loads(path.read_text()) == {"a": 2}


def test_failed_write_keeps_earlier_result(tmp_path):
    path = write_json_atomic(tmp_path / "r.json", {"a": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"a": object()}, overwrite=True)
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_provenance_records_code_and_packages():
    record = provenance()
    assert set(record["code_version"]) >= {"git_commit", "dirty"}
    assert record["packages"]["numpy"]
    assert record["created_utc"].endswith("+00:00")


def test_summary_table_mean_and_sample_std_worked_example():
    frame = pd.DataFrame(
        {
            "model": ["lf", "lf", "lf", "hyperfuse"],
            "seed": [0, 1, 2, 0],
            "run_identity": ["x", "x", "x", "y"],
            "test_accuracy": [70.0, 72.0, 74.0, 71.0],
            "val_accuracy": [69.0, 71.0, 73.0, 70.0],
            "parameter_count": [10, 10, 10, 20],
            "wall_seconds": [60.0, 60.0, 60.0, 120.0],
        }
    )
    table = summary_table(frame).set_index("model")
    assert table.loc["lf", "test_mean"] == pytest.approx(72.0)
    assert table.loc["lf", "test_std"] == pytest.approx(2.0)  # sqrt(((-2)^2 + 0 + 2^2) / 2)
    assert table.loc["lf", "seeds"] == 3
    assert table.loc["lf", "paper"] == 71.4
    assert list(table.index) == ["lf", "hyperfuse"]
    text = format_table(table.reset_index())
    assert "| LF | 72.0 ± 2.0 | 3 | 10 | 71.4 |" in text
    assert "| HyperFuse | 71.0 ± n/a | 1 | 20 | 72.4 |" in text


def test_atomic_write_uses_normal_file_permissions(tmp_path):
    import os

    previous = os.umask(0o022)
    try:
        path = write_json_atomic(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644


def test_accuracy_figure_is_identical_when_redrawn(tmp_path):
    import matplotlib

    matplotlib.use("Agg", force=True)
    from hfcore.summary import plot_accuracy, save_figure

    frame = pd.DataFrame(
        {"model": ["lf", "lf", "hyperfuse"], "seed": [0, 1, 0], "test_accuracy": [70.0, 72.0, 71.0]}
    )
    first = save_figure(plot_accuracy(frame), tmp_path / "a.png").read_bytes()
    second = save_figure(plot_accuracy(frame), tmp_path / "b.png").read_bytes()
    assert first == second
