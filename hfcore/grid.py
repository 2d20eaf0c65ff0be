"""Experiment grids: a declarative spec, one papermill execution per grid point, caching.

A spec is a small YAML file::

    name: avmnist_hidden_dim
    notebook: notebooks/avmnist_train.ipynb     # relative to the repository root
    results: results/avmnist/hidden_dim         # folder for this grid's outputs
    parameters: {model: hyperfuse, epochs: 12}  # the same for every point
    grid: {hidden_dim: [16, 64], seed: [0, 1, 2]}  # cartesian product
    grids:                                      # optional: more cartesian products, all run
      - {hidden_dim: [256], seed: [0]}
    summary:                                    # optional, run after the grid
      notebook: notebooks/avmnist_summary.ipynb
      parameters: {figure_path: figures/avmnist_hidden_dim.png}

Every point gets a key: a hash of its parameters and of the code version (the source of
``hfcore`` and the notebook). The notebook runs with ``results_dir`` set to
``<results>/runs`` and ``run_name`` set to ``<label>-<key>``, and its executed copy is kept as
``<results>/notebooks/<run_name>.ipynb``. A point whose results file exists is skipped, so an
interrupted grid resumes where it stopped. When the code changes, the keys change and the
points run again. Results of earlier code versions for the same parameters are then moved to
``<results>/runs/superseded/`` rather than overwritten. A failed point is reported with its
notebook and does not stop the others.

Two runners started on the same spec at once do not compute a point twice. A point runs
under the exclusive lock of its results file (``hfcore.locks``), which the operating system
releases when its holder dies, even by SIGKILL. A runner that finds the lock held reports
the point as busy and goes on, and a point whose results file appeared in the meantime is
skipped. Runners on several machines sharing one results folder should use one Dask
scheduler, since the lock is not reliable on every network file system.

Points run one after another, or in parallel on a Dask cluster: a local one with ``workers``
processes, or an existing scheduler given by its address (for example one that
dask-jobqueue started on a SLURM cluster).
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tqdm.auto import tqdm

from .data.paths import REPO_ROOT
from .locks import BusyError, exclusive_lock

logger = logging.getLogger(__name__)

KERNEL = "python3"
SPEC_KEYS = {"name", "notebook", "results", "parameters", "grid", "grids", "summary", "description"}
RESERVED_PARAMETERS = ("results_dir", "run_name")


@dataclass(frozen=True)
class Spec:
    """An experiment grid read from a spec file."""

    name: str
    notebook: Path
    results: Path
    parameters: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list] = field(default_factory=dict)
    summary: dict[str, Any] | None = None
    description: str = ""
    grids: tuple[dict[str, list], ...] = ()

    def all_grids(self) -> list[dict[str, list]]:
        """Return ``grid`` (when given) followed by the entries of ``grids``."""
        return ([self.grid] if self.grid or not self.grids else []) + list(self.grids)


@dataclass
class Point:
    """One grid point: its parameters, key and output paths."""

    parameters: dict[str, Any]
    key: str
    run_name: str
    result_file: Path
    notebook_file: Path


def _resolve(path: str | Path, base: Path) -> Path:
    path = Path(path).expanduser()
    return path if path.is_absolute() else base / path


def load_spec(path: str | Path, *, root: Path = REPO_ROOT) -> Spec:
    """Read and check a spec file; relative paths in it are taken from ``root``.

    Raises ValueError naming the spec file and the invalid entry.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"spec file {path} does not exist; the specs in {root / 'experiments'} are examples")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a spec must be a mapping with keys {sorted(SPEC_KEYS)}")
    unknown = sorted(set(data) - SPEC_KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; a spec takes {sorted(SPEC_KEYS)}")
    for required in ("name", "notebook", "results"):
        if not data.get(required):
            raise ValueError(f"{path}: missing required key {required!r}")
    grid = data.get("grid") or {}
    grids = data.get("grids") or []
    if not isinstance(grids, list) or not all(isinstance(g, dict) and g for g in grids):
        raise ValueError(f"{path}: grids must be a list of non-empty mappings, got {grids!r}")
    parameters = data.get("parameters") or {}
    for one in [grid, *grids]:
        for name, values in one.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"{path}: grid entry {name!r} must be a non-empty list, got {values!r}")
        overlap = sorted(set(one) & set(parameters))
        if overlap:
            raise ValueError(f"{path}: {overlap} appear both in grid and in parameters; keep each in one place")
    varied = set(grid).union(*grids)
    reserved = sorted((varied | set(parameters)) & set(RESERVED_PARAMETERS))
    if reserved:
        raise ValueError(f"{path}: {reserved} are set by the grid runner and cannot be given in a spec")
    notebook = _resolve(data["notebook"], root)
    if not notebook.is_file():
        raise FileNotFoundError(f"{path}: notebook {notebook} does not exist")
    return Spec(
        name=str(data["name"]),
        notebook=notebook,
        results=_resolve(data["results"], root),
        parameters=parameters,
        grid=grid,
        summary=data.get("summary"),
        description=str(data.get("description", "")),
        grids=tuple(grids),
    )


def _code_without_docstrings(source: str) -> str:
    """Return a dump of the syntax tree of ``source`` without docstrings (comments never enter it)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                node.body = node.body[1:] or [ast.Pass()]
    return ast.dump(tree)


# Modules that no training point runs: they read results, time code, or start points from
# outside the notebook (the command line and this runner). Editing them must not mark saved
# results as stale.
NOT_RUN_BY_POINTS = ("benchmark.py", "summary.py", "comparison.py", "analysis.py", "ablations.py", "__main__.py",
                     "grid.py", "main_job.py")


def _module_file(package_dir: Path, parts: list[str]) -> Path | None:
    # hfcore.a.b -> package_dir/a/b.py or package_dir/a/b/__init__.py; None outside the package.
    base = package_dir.joinpath(*parts)
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _imported_package_modules(source: str, module_parts: list[str], is_package: bool, package: str) -> set:
    """Return the module paths (as part lists inside ``package``) that ``source`` imports anywhere."""
    found = set()
    # The package that relative imports start from: the module itself for an __init__ file.
    here = module_parts if is_package else module_parts[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == package:
                    found.add(tuple(parts[1:]))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)] if node.level > 1 else list(here)
                parts = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == package:
                parts = node.module.split(".")[1:]
            else:
                continue
            found.add(tuple(parts))
            # "from .pkg import name" may import the submodule pkg.name.
            found.update(tuple(parts + [alias.name]) for alias in node.names)
    return found


def point_module_files(notebook: Path, package_dir: Path = REPO_ROOT / "hfcore") -> list[Path]:
    """Return the files of ``package_dir`` that a point of ``notebook`` can run.

    These are the modules that the notebook's code cells import, the modules they import in
    turn (anywhere in the file, also inside functions), and the ``__init__.py`` of every package
    on the way, which Python runs on import. The top-level modules in ``NOT_RUN_BY_POINTS`` are
    left out.
    """
    package = package_dir.name
    cells = json.loads(notebook.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    code = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!")))
    pending = [list(parts) for parts in _imported_package_modules(code, [], True, package)]
    files: set[Path] = set()
    while pending:
        parts = pending.pop()
        for depth in range(len(parts) + 1):  # every package on the way, then the module itself
            path = _module_file(package_dir, parts[:depth])
            if path is None or path in files:
                continue
            files.add(path)
            module_parts = list(path.relative_to(package_dir).with_suffix("").parts)
            is_package = path.name == "__init__.py"
            if is_package:
                module_parts = module_parts[:-1]
            pending.extend(list(p) for p in _imported_package_modules(path.read_text(), module_parts, is_package, package))
    return sorted(p for p in files if not (p.parent == package_dir and p.name in NOT_RUN_BY_POINTS))


def code_version_hash(notebook: Path, package_dir: Path = REPO_ROOT / "hfcore") -> str:
    """Return a hash of the code that a point of ``notebook`` runs: its cells and its modules.

    The modules are those of ``point_module_files``: a module that the notebook cannot reach
    (a loader of another dataset, an analysis run outside the points) does not count, so adding
    or changing one keeps the saved results current.

    Python files are hashed by their syntax tree without docstrings, so editing a comment, a
    docstring or the layout keeps the hash, while any change to what the code does changes it.
    Only cell sources of the notebook count, so re-executing it (new outputs) keeps the hash.
    """
    digest = hashlib.sha256()
    for path in point_module_files(notebook, package_dir):
        digest.update(path.relative_to(package_dir).as_posix().encode())
        digest.update(_code_without_docstrings(path.read_text()).encode())
    cells = json.loads(notebook.read_text())["cells"]
    digest.update(json.dumps([cell["source"] for cell in cells]).encode())
    return digest.hexdigest()[:12]


def _parameter_hash(parameters: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parameters, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _label(values: dict[str, Any]) -> str:
    # A model name reads well on its own; other values keep their parameter's name (seed0).
    text = "_".join(str(value) if name == "model" else f"{name}{value}" for name, value in values.items())
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in text)[:60] or "point"


def expand(spec: Spec, *, code_hash: str | None = None) -> list[Point]:
    """Return the spec's grid points in grid order (the last grid entry varies fastest).

    With ``grids``, the points of each grid follow those of the one before; a point that an
    earlier grid already contains (the same parameters) is listed once.
    """
    code_hash = code_hash or code_version_hash(spec.notebook)
    points, seen = [], set()
    for grid in spec.all_grids():
        for point in _expand_one(spec, grid, code_hash):
            if point.key not in seen:
                seen.add(point.key)
                points.append(point)
    return points


def _expand_one(spec: Spec, grid: dict[str, list], code_hash: str) -> list[Point]:
    names = list(grid)
    points = []
    for combination in itertools.product(*(grid[name] for name in names)):
        varying = dict(zip(names, combination))
        parameters = {**spec.parameters, **varying}
        parameter_hash = _parameter_hash(parameters)
        run_name = f"{_label(varying)}-p{parameter_hash}-c{code_hash[:8]}"
        points.append(
            Point(
                parameters=parameters,
                key=f"{parameter_hash}-{code_hash}",
                run_name=run_name,
                result_file=spec.results / "runs" / f"{run_name}.json",
                notebook_file=spec.results / "notebooks" / f"{run_name}.ipynb",
            )
        )
    return points


def supersede_older_results(point: Point) -> list[Path]:
    """Move results of the same parameters made by other code versions to ``runs/superseded/``."""
    runs = point.result_file.parent
    parameter_part = point.run_name.rsplit("-c", 1)[0]
    moved = []
    for old in runs.glob(f"{parameter_part}-c*.json"):
        if old != point.result_file:
            target = runs / "superseded" / old.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(old, target)
            logger.info("moved %s, made by another code version, to %s", old.name, target.parent)
            moved.append(target)
    return moved


def execute_point(notebook: str, output: str, parameters: dict[str, Any], threads: int | None = None) -> float:
    """Execute ``notebook`` with papermill into ``output``; return the wall time in seconds.

    ``threads`` caps the kernel's intra-op threads (OMP_NUM_THREADS), so that parallel workers
    share the cores instead of oversubscribing them.
    """
    import papermill

    started = time.perf_counter()
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(notebook, output, parameters=parameters, kernel_name=KERNEL, progress_bar=False,
                               cwd=str(Path(notebook).parent))
    return time.perf_counter() - started


PointBusyError = BusyError  # the name the grid's callers know


def point_lock(result_file: Path):
    """Return the exclusive lock of the point whose results file is ``result_file`` (see ``hfcore.locks``)."""
    return exclusive_lock(result_file, kind="grid", hint="rerun the grid after it ends to pick up the remaining points")


def run_point(notebook: str, point: Point, parameters: dict[str, Any], *, force: bool = False,
              threads: int | None = None) -> str:
    """Execute one point under its lock; return "ran", "skipped" (its results appeared) or "busy"."""
    try:
        with point_lock(point.result_file):
            if point.result_file.exists() and not force:
                return "skipped"
            execute_point(notebook, str(point.notebook_file), parameters, threads)
            return "ran"
    except PointBusyError as error:
        logger.warning("skipping a point that another process is running: %s", error)
        return "busy"


@dataclass
class GridReport:
    """Outcome of ``run_grid``: the points run, skipped, busy (run by another process) and failed."""

    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    minutes: float = 0.0

    def record(self, point: Point, status: str) -> None:
        {"ran": self.ran, "skipped": self.skipped, "busy": self.busy}[status].append(point.run_name)

    def summary(self) -> str:
        lines = [f"{len(self.ran)} run, {len(self.skipped)} skipped, {len(self.busy)} busy in another process, "
                 f"{len(self.failed)} failed in {self.minutes:.1f} min"]
        lines += [f"  failed: {name}: {error}" for name, error in self.failed.items()]
        return "\n".join(lines)


def describe_error(error: Exception) -> str:
    """Return one line naming the error; for a failed notebook, the error raised in its cell."""
    if hasattr(error, "ename") and hasattr(error, "evalue"):  # papermill.PapermillExecutionError
        return f"{error.ename}: {error.evalue}"
    lines = [line for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def _point_parameters(point: Point) -> dict[str, Any]:
    return {**point.parameters, "results_dir": str(point.result_file.parent), "run_name": point.run_name}


def run_grid(
    spec: Spec,
    *,
    force: bool = False,
    workers: int = 1,
    scheduler: str | None = None,
    extra_parameters: dict[str, Any] | None = None,
) -> GridReport:
    """Run every point of ``spec`` whose results file is missing (all of them with ``force``).

    Args:
        workers: with 1 and no ``scheduler``, points run one after another in this process.
            With more, a local Dask cluster of that many single-threaded worker processes runs them.
        scheduler: address of a running Dask scheduler (``tcp://host:8786``) to submit to instead.
        extra_parameters: passed to every point, outside its key (a data folder, say).
    """
    started = time.perf_counter()
    report = GridReport()
    points = expand(spec)
    pending = []
    for point in points:
        if point.result_file.exists() and not force:
            report.skipped.append(point.run_name)
        else:
            supersede_older_results(point)
            pending.append(point)
    logger.info("grid %s: %d points, %d to run", spec.name, len(points), len(pending))

    def parameters_for(point: Point) -> dict[str, Any]:
        return {**_point_parameters(point), **(extra_parameters or {}), **({"overwrite": True} if force else {})}

    if pending and (workers > 1 or scheduler):
        _run_on_dask(pending, spec, parameters_for, report, workers=workers, scheduler=scheduler, force=force)
    else:
        for point in tqdm(pending, desc=spec.name):
            try:
                report.record(point, run_point(str(spec.notebook), point, parameters_for(point), force=force))
            except Exception as error:  # reported in the summary; the other points still run
                logger.error("point %s failed: %s (see %s)", point.run_name, error, point.notebook_file)
                report.failed[point.run_name] = describe_error(error)
    report.minutes = (time.perf_counter() - started) / 60
    return report


def _run_on_dask(pending, spec, parameters_for, report, *, workers: int, scheduler: str | None,
                 force: bool = False) -> None:
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        threads = max(1, (os.cpu_count() or 1) // workers)
        futures = {
            client.submit(run_point, str(spec.notebook), point, parameters_for(point), force=force, threads=threads,
                          key=f"{spec.name}-{point.run_name}", pure=False): point
            for point in pending
        }
        for future in tqdm(as_completed(futures), total=len(futures), desc=spec.name):
            point = futures[future]
            try:
                report.record(point, future.result())
            except Exception as error:  # reported in the summary; the other points still run
                logger.error("point %s failed: %s (see %s)", point.run_name, error, point.notebook_file)
                report.failed[point.run_name] = describe_error(error)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_summary(spec: Spec) -> Path | None:
    """Execute the spec's summary notebook on its saved results; return the executed copy."""
    if not spec.summary:
        return None
    notebook = _resolve(spec.summary["notebook"], REPO_ROOT)
    parameters = {"results_dir": str(spec.results / "runs"), "output_dir": str(spec.results)}
    for name, value in (spec.summary.get("parameters") or {}).items():
        parameters[name] = str(_resolve(value, REPO_ROOT)) if name.endswith(("_path", "_dir")) else value
    output = spec.results / "notebooks" / "summary.ipynb"
    execute_point(str(notebook), str(output), parameters)
    return output


def regenerate(spec_paths: list[Path]) -> list[Path]:
    """Re-execute the summary notebook of every spec from saved results alone (no training)."""
    outputs = []
    for path in spec_paths:
        spec = load_spec(path)
        if not (spec.results / "runs").is_dir():
            logger.warning("skipping %s: no results in %s yet", spec.name, spec.results / "runs")
            continue
        output = run_summary(spec)
        if output is not None:
            outputs.append(output)
    return outputs
