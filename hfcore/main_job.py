"""The main job: every AV-MNIST model over several seeds through papermill, then the summary.

Each run executes ``notebooks/avmnist_train.ipynb`` with its parameters; the executed
notebook is kept in ``<results>/notebooks/`` and the run writes ``<results>/runs/*.json``.
A run whose results file exists is skipped, so an interrupted job resumes where it stopped.
Finally ``notebooks/avmnist_summary.ipynb`` renders the table and the figure.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from .data.paths import REPO_ROOT, find_data_dir
from .experiments import default_run_name, resolve_params
from .results import provenance, write_json_atomic

logger = logging.getLogger(__name__)

NOTEBOOKS = REPO_ROOT / "notebooks"
KERNEL = "python3"


@dataclass(frozen=True)
class Profile:
    """A grid of runs: models x seeds with shared parameters."""

    models: tuple[str, ...]
    seeds: tuple[int, ...]
    params: dict = field(default_factory=dict)
    description: str = ""


MAIN_MODELS = ("image_only", "audio_only", "lf", "hyperfuse")
PROFILES = {
    "default": Profile(
        MAIN_MODELS,
        (0, 1, 2),
        {"epochs": 12},
        "3 seeds, 12 epochs (20 minutes of training on 2 CPU cores with the 10,000-image MNIST set)",
    ),
    "paper": Profile(
        MAIN_MODELS,
        (0, 1, 2, 3, 4),
        {"epochs": 30},
        "the paper's protocol: 5 seeds, 30 epochs",
    ),
    "smoke": Profile(
        MAIN_MODELS,
        (0,),
        {"epochs": 1, "train_fraction": 0.5},
        "1 seed, 1 epoch on half the training split: checks that the whole pipeline runs",
    ),
}


def profile_runs(profile: Profile, overrides: dict | None = None) -> list[dict]:
    """Return the parameters of every run of ``profile``, with ``overrides`` applied."""
    runs = []
    for model in profile.models:
        for seed in profile.seeds:
            params = {"model": model, "seed": seed, **profile.params, **(overrides or {})}
            runs.append(params)
    return runs


def execute_notebook(name: str, output: Path, parameters: dict) -> None:
    """Execute ``notebooks/<name>`` with papermill into ``output``, with the ``python3`` kernel."""
    import papermill

    output.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        str(NOTEBOOKS / name),
        str(output),
        parameters=parameters,
        kernel_name=KERNEL,
        progress_bar=False,
        cwd=str(NOTEBOOKS),
    )


def run_profile(
    name: str,
    *,
    results_root: str | Path | None = None,
    figures_dir: str | Path | None = None,
    data_dir: str | None = None,
    force: bool = False,
    overrides: dict | None = None,
) -> dict:
    """Run every missing run of profile ``name``, then the summary; return counts and timing.

    ``force`` reruns runs whose results exist, replacing them. Results go to
    ``results/avmnist/<name>/`` and the figure to ``figures/`` unless other folders are given.
    """
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}")
    profile = PROFILES[name]
    find_data_dir(data_dir)  # fail once, before the grid, when the data is missing
    root = Path(results_root) if results_root else REPO_ROOT / "results" / "avmnist" / name
    figures = Path(figures_dir) if figures_dir else REPO_ROOT / "figures"
    runs_dir, notebooks_dir = root / "runs", root / "notebooks"
    started = time.perf_counter()
    done, skipped, failed = 0, 0, []
    runs = profile_runs(profile, overrides)
    for params in tqdm(runs, desc=f"{name} runs"):
        params = {**params, "data_dir": data_dir, "results_dir": str(runs_dir), "overwrite": force, "progress": False}
        run_name = default_run_name(resolve_params(params))
        if (runs_dir / f"{run_name}.json").exists() and not force:
            logger.info("skipping %s: its results file exists", run_name)
            skipped += 1
            continue
        params["run_name"] = run_name
        try:
            execute_notebook("avmnist_train.ipynb", notebooks_dir / f"{run_name}.ipynb", params)
            done += 1
        except Exception as error:  # a failed run is reported and the others still run
            logger.error("run %s failed: %s (see %s)", run_name, error, notebooks_dir / f"{run_name}.ipynb")
            failed.append(run_name)
    execute_notebook(
        "avmnist_summary.ipynb",
        notebooks_dir / "summary.ipynb",
        {"results_dir": str(runs_dir), "output_dir": str(root), "figure_path": str(figures / f"avmnist_{name}.png")},
    )
    minutes = (time.perf_counter() - started) / 60
    if done or failed:  # a job that only redrew the summary keeps the record of the one that trained
        write_json_atomic(
            root / "last_job.json",
            {"profile": name, "ran": done, "skipped": skipped, "failed": failed, "minutes": round(minutes, 2),
             "overrides": overrides or {}, "provenance": provenance()},
            overwrite=True,  # a log of the latest job, not a result
        )
    logger.info("profile %s: %d run, %d skipped, %d failed in %.1f min", name, done, skipped, len(failed), minutes)
    if failed:
        raise RuntimeError(f"{len(failed)} run(s) failed: {', '.join(failed)}; their executed notebooks are in {notebooks_dir}")
    return {"ran": done, "skipped": skipped, "minutes": round(minutes, 1)}
