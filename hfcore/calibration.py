"""Calibration of the AV-MNIST corruption: unimodal accuracies against noise level.

The HyperFuse paper's regime (its Table 5 and section 5.1) has the image alone at about 60-67% test accuracy and the audio alone at
about 40-43%, so that both modalities are needed. ``calibrate`` trains the unimodal models
with the final training recipe at each setting and writes one results file per run under
``results_dir``; ``calibration_table`` summarises them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .data.avmnist import AVMNISTConfig, load_avmnist
from .experiments import run_avmnist
from .results import read_results

logger = logging.getLogger(__name__)


def calibrate(
    *,
    snr_values: list[float],
    pca_energies: list[float],
    seeds: list[int],
    epochs: int,
    results_dir: str = "results/avmnist/calibration",
    data_dir: str | None = None,
) -> None:
    """Train audio-only at each SNR and image-only at each PCA energy, for each seed.

    Runs whose results file exists are skipped, so an interrupted calibration resumes.
    """
    jobs = [("audio_only", {"snr_db": snr}) for snr in snr_values]
    jobs += [("image_only", {"pca_energy": energy}) for energy in pca_energies]
    for model, setting in jobs:
        config = AVMNISTConfig(**setting)
        dataset = load_avmnist(data_dir, config)
        for seed in seeds:
            name = f"{model}-" + "-".join(f"{k}{v:g}" for k, v in setting.items()) + f"-seed{seed}"
            if (Path(results_dir) / f"{name}.json").exists():
                logger.info("skipping %s: result exists", name)
                continue
            run_avmnist(model=model, seed=seed, epochs=epochs, results_dir=results_dir, run_name=name,
                        dataset=dataset, data_dir=data_dir, progress=False,
                        **{"snr_db": config.snr_db, "pca_energy": config.pca_energy})


def calibration_table(results_dir: str | Path = "results/avmnist/calibration"):
    """Return a DataFrame of test accuracy (mean, std, count) per model and setting."""
    import pandas as pd

    rows = [
        {
            "model": r["model"],
            "snr_db": r["parameters"]["snr_db"],
            "pca_energy": r["parameters"]["pca_energy"],
            "epochs": r["parameters"]["epochs"],
            "test_accuracy": r["metrics"]["test_accuracy"],
        }
        for r in read_results(results_dir)
    ]
    frame = pd.DataFrame(rows)
    return frame.groupby(["model", "snr_db", "pca_energy", "epochs"])["test_accuracy"].agg(["mean", "std", "count"])
