"""The main job: the AV-MNIST comparison specs in ``experiments/``, run through the grid runner.

``run_profile("default")`` runs ``experiments/avmnist_default.yaml``: every model over 3 seeds,
each point one execution of ``notebooks/avmnist_train.ipynb``, then the summary notebook that
renders the table and the figure. Finished points are skipped, so an interrupted job resumes.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from .data.paths import REPO_ROOT, find_data_dir
from .grid import GridReport, load_spec, run_grid, run_summary
from .results import provenance, write_json_atomic

logger = logging.getLogger(__name__)

PROFILES = {
    "default": REPO_ROOT / "experiments" / "avmnist_default.yaml",
    "paper": REPO_ROOT / "experiments" / "avmnist_paper.yaml",
    "smoke": REPO_ROOT / "experiments" / "avmnist_smoke.yaml",
}


def profile_description(name: str) -> str:
    """Return the description line of profile ``name``'s spec."""
    return load_spec(PROFILES[name]).description


def run_profile(
    name: str,
    *,
    results_root: str | Path | None = None,
    figures_dir: str | Path | None = None,
    data_dir: str | None = None,
    force: bool = False,
    workers: int = 1,
    scheduler: str | None = None,
) -> GridReport:
    """Run the missing points of profile ``name`` (all of them with ``force``), then the summary.

    ``results_root`` and ``figures_dir`` replace the spec's results folder and figure folder.
    Raises RuntimeError listing the failed points after the others have run.
    """
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}")
    find_data_dir(data_dir)  # fail once, before the grid, when the data is missing
    spec = load_spec(PROFILES[name])
    if results_root:
        spec = dataclasses.replace(spec, results=Path(results_root).resolve())
    if figures_dir and spec.summary:
        figure = Path(figures_dir).resolve() / Path(spec.summary["parameters"]["figure_path"]).name
        summary_parameters = {**spec.summary["parameters"], "figure_path": str(figure)}
        spec = dataclasses.replace(spec, summary={**spec.summary, "parameters": summary_parameters})

    report = run_grid(spec, force=force, workers=workers, scheduler=scheduler,
                      extra_parameters={"data_dir": data_dir} if data_dir else None)
    run_summary(spec)
    if report.ran or report.failed:  # a job that only redrew the summary keeps the record of the one that trained
        write_json_atomic(
            spec.results / "last_job.json",
            {"profile": name, "ran": len(report.ran), "skipped": len(report.skipped), "failed": report.failed,
             "minutes": round(report.minutes, 2), "workers": workers, "provenance": provenance()},
            overwrite=True,  # a log of the latest job, not a result
        )
    logger.info("profile %s: %s", name, report.summary())
    if report.failed:
        raise RuntimeError(f"profile {name}: {report.summary()}\nThe executed notebooks are in {spec.results / 'notebooks'}")
    if report.busy:
        raise RuntimeError(f"profile {name}: {report.summary()}\nAnother process is running {len(report.busy)} of its "
                           "points; rerun this command after it ends to complete the job and its summary")
    return report
