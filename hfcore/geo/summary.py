"""The Table 2 comparison: our top-1 and top-5 accuracy beside the paper's.

The paper's baseline rows come from the literature (its appendix D), and its HyperFuse row
is the mean of two runs, all with a ResNet-50. ``comparison_table`` gives our mean ± std over
seeds per model, with the paper's values beside ResNet-50 rows only.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from ..results import read_results

logger = logging.getLogger(__name__)

# Paper Table 2 (ResNet-50): top-1, top-5 per dataset; None where the paper has N/A.
PAPER_TABLE2 = {
    "yfcc_mini": {"image_only": (32.6, 52.2), "dynamic_mlp_c": (40.2, 60.2), "concat": (38.4, 58.9),
                  "hyperfuse": (40.6, 60.9)},
    "yfcc": {"image_only": (47.6, 77.9), "geonet_modulation": (49.1, 80.2), "dynamic_mlp_c": (53.2, 83.2),
             "concat": (48.7, 79.8), "ensemble": (50.8, 81.9), "hyperfuse": (53.2, 84.8)},
    "inat": {"image_only": (64.5, 85.4), "geonet_modulation": (75.1, 91.2), "dynamic_mlp_c": (78.1, 93.1),
             "concat": (77.3, 92.7), "ensemble": (73.7, 89.9), "hyperfuse": (79.3, 93.5)},
}
LABELS = {"image_only": "Image only", "concat": "Concat", "dynamic_mlp_c": "Dynamic MLP-C",
          "geonet_modulation": "GeoNet (modulation)", "geonet_prior": "GeoNet (prior)", "ensemble": "EnsembNet",
          "hyperfuse": "ResNet + HyperFuse"}


def paper_key(dataset: str) -> str:
    """The Table 2 column of one of our datasets (the paper does not say which iNaturalist year it used)."""
    return "yfcc" if dataset == "yfcc" else "inat"


def geo_frame(folder: str | Path, settings: dict | None = None) -> pd.DataFrame:
    """One row per geo results file in ``folder``: dataset, model, backbone, seed, top-1 and top-5 (%).

    With ``settings`` (parameter name to value), only runs made with those values are kept. A
    run that recorded None for a setting (an option its model ignores) matches any value.
    Runs of other settings are left out with a log line, so a table never mixes them.
    """
    records = [r for r in read_results(folder) if r.get("experiment") == "geo"]
    if not records:
        raise FileNotFoundError(f"no geo results files in {folder}; run notebooks/geo_comparison.ipynb first")
    if settings:
        kept = [r for r in records
                if all(r["parameters"].get(k) in (None, v) for k, v in settings.items())]
        if len(kept) < len(records):
            logger.info("left out %d of %d runs in %s made with other settings than %s", len(records) - len(kept),
                        len(records), folder, settings)
        if not kept:
            raise FileNotFoundError(f"no geo results in {folder} match {settings}")
        records = kept
    return pd.DataFrame([{"dataset": r["dataset"], "model": r["model"], "backbone": r["backbone"], "seed": r["seed"],
                          "top1": 100 * r["metrics"]["eval_top1"], "top5": 100 * r["metrics"]["eval_top5"],
                          "parameters": r["parameter_count"]} for r in records])


def _mean_std(values: pd.Series) -> str:
    return f"{values.mean():.1f} ± {values.std(ddof=1):.1f}" if len(values) > 1 else f"{values.mean():.1f}"


def comparison_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds of top-1 and top-5 per dataset, backbone and model, with the paper's values."""
    rows = []
    order = {name: i for i, name in enumerate(LABELS)}
    for (dataset, backbone, model), runs in sorted(frame.groupby(["dataset", "backbone", "model"]),
                                                   key=lambda item: (item[0][0], item[0][1], order[item[0][2]])):
        paper = PAPER_TABLE2[paper_key(dataset)].get(model) if backbone == "resnet50" else None
        rows.append({"dataset": dataset, "backbone": backbone, "model": LABELS[model], "seeds": len(runs),
                     "top-1": _mean_std(runs["top1"]), "top-5": _mean_std(runs["top5"]),
                     "paper top-1 / top-5": " / ".join(f"{v:g}" for v in paper) if paper else "",
                     "parameters": f"{int(runs['parameters'].iloc[0]):,}"})
    return pd.DataFrame(rows)


def plot_comparison(frame: pd.DataFrame):
    """Top-1 per model and seed (dots), their mean (line) and the paper's value (cross), one panel per dataset."""
    import matplotlib.pyplot as plt

    datasets = sorted(frame["dataset"].unique())
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 3.8), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        part = frame[frame["dataset"] == dataset]
        models = sorted(part["model"].unique(), key=list(LABELS).index)
        paper = PAPER_TABLE2[paper_key(dataset)] if set(part["backbone"]) == {"resnet50"} else {}
        labelled = False
        for x, model in enumerate(models):
            values = part[part["model"] == model]["top1"]
            ax.plot([x] * len(values), values, "o", color=f"C{x}", alpha=0.7)
            ax.hlines(values.mean(), x - 0.3, x + 0.3, color=f"C{x}")
            if model in paper:
                ax.plot(x, paper[model][0], "kx", markersize=8, label=None if labelled else "paper (ResNet-50)")
                labelled = True
        ax.set_xticks(range(len(models)), [LABELS[m] for m in models], rotation=25, ha="right")
        ax.set_ylabel("top-1 accuracy (%)")
        ax.set_title(dataset)
        if labelled:
            ax.legend(frameon=False)
    fig.tight_layout()
    return fig
