"""The grid runner on a tiny notebook that writes its parameters as a results file."""

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from hfcore.grid import expand, load_spec, run_grid

NOTEBOOK_CELLS = [
    "x = 0\nresults_dir = None\nrun_name = None\noverwrite = False",
    "import json, pathlib\n"
    "if x == 3:\n"
    "    raise ValueError('x must not be 3')\n"
    "path = pathlib.Path(results_dir) / f'{run_name}.json'\n"
    "path.parent.mkdir(parents=True, exist_ok=True)\n"
    "assert overwrite or not path.exists()\n"
    "path.write_text(json.dumps({'x': x, 'square': x * x}))",
]


def write_notebook(path: Path, extra_source: str = "", first_source: str = "") -> None:
    """Write the test notebook; ``first_source`` runs before the results file is written."""
    cells = [new_code_cell(NOTEBOOK_CELLS[0]), new_code_cell(first_source + NOTEBOOK_CELLS[1] + extra_source)]
    cells[0].metadata["tags"] = ["parameters"]
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)


@pytest.fixture
def spec_file(tmp_path):
    write_notebook(tmp_path / "square.ipynb")
    spec = tmp_path / "square.yaml"
    spec.write_text(
        "name: squares\nnotebook: square.ipynb\nresults: out\n"
        "parameters: {}\ngrid:\n  x: [1, 2, 3]\n"
    )
    return spec


def results(spec):
    return {path.name: json.loads(path.read_text()) for path in (spec.results / "runs").glob("*.json")}


def test_grid_runs_points_and_reports_failure(spec_file, tmp_path):
    spec = load_spec(spec_file, root=tmp_path)
    report = run_grid(spec)
    assert len(report.ran) == 2
    assert list(report.failed) == [expand(spec)[2].run_name]
    assert "x must not be 3" in report.failed[expand(spec)[2].run_name]
    assert sorted(r["square"] for r in results(spec).values()) == [1, 4]
    assert expand(spec)[0].notebook_file.is_file()


def test_rerun_skips_finished_points(spec_file, tmp_path):
    spec = load_spec(spec_file, root=tmp_path)
    run_grid(spec)
    first = expand(spec)[0]
    first.result_file.unlink()  # as if the grid had stopped before this point
    report = run_grid(spec)
    assert report.ran == [first.run_name]
    assert report.skipped == [expand(spec)[1].run_name]
    assert first.result_file.is_file()


def test_force_reruns_every_point(spec_file, tmp_path):
    spec = load_spec(spec_file, root=tmp_path)
    run_grid(spec)
    report = run_grid(spec, force=True)
    assert len(report.ran) == 2
    assert report.skipped == []


def test_code_change_reruns_and_keeps_older_results(spec_file, tmp_path):
    spec = load_spec(spec_file, root=tmp_path)
    run_grid(spec)
    old_names = sorted(results(spec))
    write_notebook(tmp_path / "square.ipynb", extra_source="\n# changed")
    report = run_grid(spec)
    assert len(report.ran) == 2
    assert sorted(results(spec)) != old_names
    superseded = sorted(p.name for p in (spec.results / "runs" / "superseded").glob("*.json"))
    assert superseded == old_names


def test_grid_runs_on_two_dask_workers(spec_file, tmp_path):
    pytest.importorskip("dask.distributed")
    spec = load_spec(spec_file, root=tmp_path)
    report = run_grid(spec, workers=2)
    assert len(report.ran) == 2
    assert len(report.failed) == 1
    assert sorted(r["square"] for r in results(spec).values()) == [1, 4]


@pytest.mark.parametrize(
    "text,message",
    [
        ("name: a\nnotebook: square.ipynb\n", "missing required key 'results'"),
        ("name: a\nnotebook: square.ipynb\nresults: out\ngrid: {x: 3}\n", "non-empty list"),
        ("name: a\nnotebook: square.ipynb\nresults: out\ngrid: {x: [1]}\nparameters: {x: 2}\n", "both in grid"),
        ("name: a\nnotebook: square.ipynb\nresults: out\nparameters: {run_name: b}\n", "set by the grid runner"),
        ("name: a\nnotebook: square.ipynb\nresults: out\nmodels: [lf]\n", "unknown key"),
        ("name: a\nnotebook: missing.ipynb\nresults: out\n", "does not exist"),
    ],
)
def test_invalid_spec_is_rejected(tmp_path, text, message):
    write_notebook(tmp_path / "square.ipynb")
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        load_spec(tmp_path / "bad.yaml", root=tmp_path)


def test_example_specs_load_and_expand():
    for path in sorted(Path(__file__).resolve().parents[1].joinpath("experiments").glob("*.yaml")):
        spec = load_spec(path)
        points = expand(spec)
        assert points, path
        assert len({p.run_name for p in points}) == len(points)


def test_killed_grid_resumes_without_redoing_finished_points(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    # Point x=2 sleeps while SQUARE_SLEEP is set, so the job can be killed during it.
    sleep = "import os, time\nif x == 2:\n    time.sleep(float(os.environ.get('SQUARE_SLEEP', 0)))\n"
    write_notebook(tmp_path / "square.ipynb", first_source=sleep)
    spec_file = tmp_path / "square.yaml"
    spec_file.write_text(f"name: squares\nnotebook: {tmp_path / 'square.ipynb'}\nresults: {tmp_path / 'out'}\n"
                         "grid:\n  x: [1, 2]\n")
    first, second = expand(load_spec(spec_file))
    command = [sys.executable, "-m", "hfcore", "run", str(spec_file)]

    job = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env={**os.environ, "SQUARE_SLEEP": "300"})
    deadline = time.monotonic() + 120
    while not first.result_file.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(3)  # the second point is now sleeping inside its kernel
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    assert first.result_file.exists()
    assert not second.result_file.exists()
    finished_at = first.result_file.stat().st_mtime

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    # The lock of the killed runner ended with its process, so the second point runs now.
    assert "1 run, 1 skipped, 0 busy in another process, 0 failed" in resumed.stdout
    assert first.result_file.stat().st_mtime == finished_at
    assert json.loads(second.result_file.read_text()) == {"x": 2, "square": 4}


def test_code_hash_ignores_comments_and_docstrings(tmp_path):
    from hfcore.grid import code_version_hash

    package = tmp_path / "pkg"
    package.mkdir()
    write_notebook(tmp_path / "square.ipynb", extra_source="\nfrom pkg.a import f")
    (package / "a.py").write_text('"""Module."""\n\ndef f(x):\n    """Square."""\n    return x * x\n')
    before = code_version_hash(tmp_path / "square.ipynb", package)
    (package / "a.py").write_text('"""Other words."""\n# a comment\n\n\ndef f(x):\n    return x * x  # same\n')
    assert code_version_hash(tmp_path / "square.ipynb", package) == before
    (package / "a.py").write_text('def f(x):\n    return x * x + 1\n')
    assert code_version_hash(tmp_path / "square.ipynb", package) != before


def write_package(package: Path, files: dict[str, str]) -> None:
    for name, source in files.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(source)


def test_point_modules_follow_imports_from_the_notebook(tmp_path):
    from hfcore.grid import point_module_files

    package = tmp_path / "pkg"
    write_package(package, {
        "__init__.py": "from .models import build\n",
        "models.py": "from .layers import dense\nfrom . import registry\n",
        "layers.py": "def dense():\n    from pkg.sub.deep import helper\n",
        "registry.py": "",
        "sub/__init__.py": "",
        "sub/deep.py": "from ..layers import dense\n",
        "other.py": "import numpy\n",  # imported by nothing: not part of a point
        "sub/unused.py": "",
    })
    write_notebook(tmp_path / "square.ipynb", extra_source="\nimport pkg.models")
    names = [p.relative_to(package).as_posix() for p in point_module_files(tmp_path / "square.ipynb", package)]
    assert names == ["__init__.py", "layers.py", "models.py", "registry.py", "sub/__init__.py", "sub/deep.py"]


def test_code_hash_ignores_modules_that_points_never_run(tmp_path):
    from hfcore.grid import NOT_RUN_BY_POINTS, code_version_hash

    package = tmp_path / "pkg"
    write_package(package, {"a.py": "def f(x):\n    return x * x\n"})
    write_notebook(tmp_path / "square.ipynb", extra_source="\nfrom pkg import a, " + NOT_RUN_BY_POINTS[0][:-3])
    before = code_version_hash(tmp_path / "square.ipynb", package)
    # A module the notebook never imports, and a listed one that it does import (summaries, say).
    write_package(package, {"loader.py": "def load():\n    return 1\n", NOT_RUN_BY_POINTS[0]: "x = 1\n"})
    assert code_version_hash(tmp_path / "square.ipynb", package) == before
    # A module that an imported one starts to import counts.
    write_package(package, {"a.py": "from . import loader\n\ndef f(x):\n    return x * x\n"})
    after = code_version_hash(tmp_path / "square.ipynb", package)
    assert after != before
    write_package(package, {"loader.py": "def load():\n    return 2\n"})
    assert code_version_hash(tmp_path / "square.ipynb", package) != after


def test_grids_run_every_product_once(tmp_path):
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(
        "name: union\nnotebook: notebooks/avmnist_train.ipynb\nresults: out\n"
        "parameters: {epochs: 1}\n"
        "grids:\n  - {model: [lf, hyperfuse], seed: [0]}\n  - {model: [hyperfuse], seed: [0, 1]}\n"
    )
    from hfcore.data.paths import REPO_ROOT

    spec = load_spec(spec_file, root=REPO_ROOT)
    points = expand(spec, code_hash="0" * 16)
    combos = [(p.parameters["model"], p.parameters["seed"]) for p in points]
    assert combos == [("lf", 0), ("hyperfuse", 0), ("hyperfuse", 1)]  # (hyperfuse, 0) listed once
    assert all(p.parameters["epochs"] == 1 for p in points)


def test_grids_entries_are_checked(tmp_path):
    spec_file = tmp_path / "spec.yaml"
    base = "name: bad\nnotebook: notebooks/avmnist_train.ipynb\nresults: out\nparameters: {seed: 0}\n"
    from hfcore.data.paths import REPO_ROOT

    spec_file.write_text(base + "grids: {model: [lf]}\n")
    with pytest.raises(ValueError, match="grids must be a list"):
        load_spec(spec_file, root=REPO_ROOT)
    spec_file.write_text(base + "grids:\n  - {seed: [1, 2]}\n")
    with pytest.raises(ValueError, match="appear both in grid and in parameters"):
        load_spec(spec_file, root=REPO_ROOT)


def test_run_grid_locked_point_busy(spec_file, tmp_path):
    from hfcore.grid import point_lock

    spec = load_spec(spec_file, root=tmp_path)
    held = expand(spec)[0]
    with point_lock(held.result_file):
        report = run_grid(spec)
    assert report.busy == [held.run_name]
    assert not held.result_file.exists()
    assert len(report.ran) == 1
    assert "1 busy" in report.summary()
    assert run_grid(spec).ran == [held.run_name]  # released: the next runner computes it


def test_point_lock_names_its_holder(tmp_path):
    from hfcore.grid import PointBusyError, point_lock

    result_file = tmp_path / "runs" / "a.json"
    with point_lock(result_file):
        with pytest.raises(PointBusyError, match=r"a\.json is being computed by pid \d+ on "):
            with point_lock(result_file):
                pass


def test_run_grid_two_runners_at_once(tmp_path):
    import subprocess
    import sys

    log = tmp_path / "executions.log"
    write_notebook(tmp_path / "slow.ipynb", first_source=(
        "import time\n"
        f"open({str(log)!r}, 'a').write(f'{{x}}\\n')\n"
        "time.sleep(2)\n"))
    spec = tmp_path / "slow.yaml"
    spec.write_text(f"name: slow\nnotebook: {tmp_path / 'slow.ipynb'}\nresults: {tmp_path / 'out'}\n"
                    "grid:\n  x: [1, 2]\n")
    code = f"from hfcore.grid import load_spec, run_grid; run_grid(load_spec({str(spec)!r}))"
    runners = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(2)]
    assert [runner.wait(timeout=300) for runner in runners] == [0, 0]
    assert sorted(log.read_text().split()) == ["1", "2"]
    assert len(list((tmp_path / "out" / "runs").glob("*.json"))) == 2
