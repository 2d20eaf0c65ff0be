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


def write_run(folder, model, seed, accuracy, **parameters):
    record = {
        "model": model, "seed": seed, "run_identity": json.dumps(parameters, sort_keys=True),
        "parameters": {"model": model, "seed": seed, "epochs": 2, "results_dir": str(folder), **parameters},
        "metrics": {"test_accuracy": accuracy, "val_accuracy": accuracy, "best_epoch": 1},
        "dataset": {"train_size_used": 100}, "parameter_count": 10, "wall_seconds": 1.0,
    }
    write_json_atomic(folder / f"{model}-{seed}-{record['run_identity']}.json", record)


def test_summary_rows_per_parameter_variant(tmp_path):
    from hfcore.summary import results_frame

    # LF runs differ only in seed and path; HyperFuse runs also in hidden_dim and generator.
    write_run(tmp_path, "lf", 0, 0.70, hidden_dim=64)
    write_run(tmp_path, "lf", 1, 0.72, hidden_dim=64)
    for seed, accuracy in ((0, 0.70), (1, 0.74)):
        write_run(tmp_path, "hyperfuse", seed, accuracy, hidden_dim=32, generator="full")
        write_run(tmp_path, "hyperfuse", seed, accuracy - 0.02, hidden_dim=128, generator="full")
        write_run(tmp_path, "hyperfuse", seed, accuracy - 0.04, hidden_dim=128, generator="factorized")
    frame = results_frame(tmp_path)
    assert set(frame.loc[frame["model"] == "lf", "variant"]) == {""}
    table = summary_table(frame)
    # Values sort as numbers: hidden_dim=32 before hidden_dim=128.
    assert list(table["variant"]) == [
        "", "generator=factorized, hidden_dim=128", "generator=full, hidden_dim=32", "generator=full, hidden_dim=128"
    ]
    assert list(table["test_mean"]) == pytest.approx([71.0, 68.0, 72.0, 70.0])
    text = format_table(table)
    assert "| HyperFuse (generator=full, hidden_dim=32) | 72.0 ± 2.8 | 2 | 10 |  |" in text
    assert "| LF | 71.0 ± 1.4 | 2 | 10 | 71.4 |" in text


def test_accuracy_against_parameter_lines(tmp_path):
    import matplotlib

    matplotlib.use("Agg", force=True)
    from hfcore.summary import plot_accuracy, plot_accuracy_against, results_frame

    for seed in (0, 1):
        for hidden_dim in (32, 256):
            for generator in ("full", "factorized"):
                write_run(tmp_path, "hyperfuse", seed, 0.7 + 0.01 * seed, hidden_dim=hidden_dim, generator=generator)
    frame = results_frame(tmp_path)
    fig = plot_accuracy_against(frame, "hidden_dim")
    lines = fig.axes[0].get_lines()
    assert sorted(line.get_label() for line in lines) == ["HyperFuse, generator=factorized", "HyperFuse, generator=full"]
    for line in lines:
        assert list(line.get_xdata()) == [32, 256]
        assert list(line.get_ydata()) == pytest.approx([70.5, 70.5])  # the mean of 70 and 71
    assert len(fig.axes[0].get_xticks()) == 2
    with pytest.raises(ValueError, match="'lr' does not vary"):
        plot_accuracy_against(frame, "lr")
    # The per-model figure has one column per setting.
    assert len(plot_accuracy(frame).axes[0].get_xticks()) == 4


def test_full_disk_fails_clearly_and_keeps_the_earlier_result(tmp_path, monkeypatch):
    import errno
    import os

    path = write_json_atomic(tmp_path / "r.json", {"a": 1})

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match=r"could not write .*r\.json: the disk is full") as caught:
        write_json_atomic(path, {"a": 2}, overwrite=True)
    assert caught.value.errno == errno.ENOSPC
    assert "free space" in str(caught.value)
    assert caught.value.filename == str(path)
    assert json.loads(path.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]  # no temporary file left


def test_read_only_folder_fails_clearly(tmp_path, monkeypatch):
    import errno
    import tempfile

    path = write_json_atomic(tmp_path / "r.json", {"a": 1})

    def read_only(*args, **kwargs):  # chmod cannot make a folder read-only for root, so mkstemp fails here
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(OSError, match="read-only file system.*choose a writable folder"):
        write_json_atomic(path, {"a": 2}, overwrite=True)
    assert json.loads(path.read_text()) == {"a": 1}


def test_other_write_errors_pass_through_unchanged(tmp_path, monkeypatch):
    import errno
    import os

    def bad_descriptor(fd):
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(os, "fsync", bad_descriptor)
    with pytest.raises(OSError, match=r"^\[Errno 9\] Bad file descriptor$"):
        write_json_atomic(tmp_path / "r.json", {"a": 1})


def test_storage_errors_about_other_files_are_not_reworded(tmp_path):
    import errno

    from hfcore.atomic import atomic_path

    with pytest.raises(OSError, match=r"^\[Errno 13\] Permission denied: 'elsewhere.txt'$"):
        with atomic_path(tmp_path / "r.json"):
            raise PermissionError(errno.EACCES, "Permission denied", "elsewhere.txt")
