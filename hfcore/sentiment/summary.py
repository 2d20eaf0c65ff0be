"""The Table 3 comparison: which runs to make, and our numbers beside the paper's.

``comparison_configs`` lists the models of Table 3 that a user's checkpoints allow: for each
of BERT and XLNet, the text-only model, MAG and HyperFuse at the same injection layer.
``comparison_table`` gives mean ± std over seeds of every metric, with the paper's values.
The paper does not say which Acc2 convention it reports; both of ours are shown.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..results import read_results

# Paper Table 3: Acc7, Acc2, MAE, Corr.
PAPER_TABLE3 = {
    "mosi": {"MAG-BERT": (40.2, 83.7, 0.79, 0.80), "MAG-XLNet": (43.1, 85.2, 0.76, 0.82),
             "BERT + HyperFuse": (40.5, 84.2, 1.02, 0.80), "XLNet + HyperFuse": (43.8, 85.3, 0.76, 0.82)},
    "mosei": {"MAG-BERT": (46.9, 83.1, 0.59, 0.76), "MAG-XLNet": (46.7, 83.9, 0.59, 0.77),
              "BERT + HyperFuse": (52.7, 84.8, 0.58, 0.76), "XLNet + HyperFuse": (52.4, 85.3, 0.59, 0.76)},
}
FUSION_LABELS = {"none": "{backbone}", "mag": "MAG-{backbone}", "hyperfuse": "{backbone} + HyperFuse"}
METRICS = ("acc7", "acc2_nonzero", "acc2_nonnegative", "f1_nonzero", "mae", "corr")


def comparison_configs(checkpoints: dict[str, str | None]) -> list[dict]:
    """Return one config per Table 3 model for each backbone with a checkpoint (``{"BERT": path, ...}``)."""
    configs = []
    for backbone, path in checkpoints.items():
        if not path:
            continue
        for fusion, label in FUSION_LABELS.items():
            configs.append({"checkpoint": str(path), "fusion": fusion, "model_label": label.format(backbone=backbone)})
    return configs


def sentiment_frame(folder: str | Path) -> pd.DataFrame:
    """One row per sentiment results file in ``folder``."""
    records = [r for r in read_results(folder) if r.get("experiment") == "sentiment"]
    if not records:
        raise FileNotFoundError(f"no sentiment results files in {folder}; run the comparison notebook first")
    return pd.DataFrame([{"model": r["model_label"], "fusion": r["fusion"], "seed": r["seed"],
                          **{k[len("test_"):]: v for k, v in r["metrics"].items() if k.startswith("test_")}}
                         for r in records])


def comparison_table(frame: pd.DataFrame, dataset: str = "mosi") -> pd.DataFrame:
    """Mean ± std over seeds per model (accuracies in %), with the paper's Table 3 values."""
    paper = PAPER_TABLE3.get(dataset, {})
    rows = []
    for model in _ordered_models(frame):
        runs = frame[frame["model"] == model]
        row = {"model": model, "seeds": len(runs)}
        for metric in METRICS:
            scale = 100 if metric.startswith(("acc", "f1")) else 1
            values = runs[metric] * scale
            digits = 1 if scale == 100 else 3
            row[metric] = (f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}" if len(values) > 1
                           else f"{values.mean():.{digits}f}")
        published = paper.get(model)
        row["paper acc7 / acc2 / mae / corr"] = " / ".join(f"{v:g}" for v in published) if published else ""
        rows.append(row)
    return pd.DataFrame(rows)


def _ordered_models(frame: pd.DataFrame) -> list[str]:
    """Models grouped by backbone, each as text only, MAG, then HyperFuse."""
    order = list(FUSION_LABELS)
    pairs = frame[["model", "fusion"]].drop_duplicates()
    backbone = {row.model: row.model.replace("MAG-", "").split(" + ")[0] for row in pairs.itertuples()}
    return sorted(pairs["model"], key=lambda m: (backbone[m], order.index(pairs.set_index("model").loc[m, "fusion"])))


def plot_comparison(frame: pd.DataFrame, dataset: str = "mosi"):
    """Per-seed test Acc2 (zeros dropped) and MAE per model, with the paper's values as crosses."""
    import matplotlib.pyplot as plt

    models = _ordered_models(frame)
    paper = PAPER_TABLE3.get(dataset, {})
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, metric, scale, index in ((axes[0], "acc2_nonzero", 100, 1), (axes[1], "mae", 1, 2)):
        labelled = False
        for x, model in enumerate(models):
            values = frame[frame["model"] == model][metric] * scale
            ax.plot([x] * len(values), values, "o", color=f"C{x}", alpha=0.7)
            ax.hlines(values.mean(), x - 0.3, x + 0.3, color=f"C{x}")
            if model in paper:
                ax.plot(x, paper[model][index], "kx", markersize=8, label=None if labelled else "paper")
                labelled = True
        ax.set_xticks(range(len(models)), models, rotation=25, ha="right")
        ax.set_ylabel("test Acc2, zeros dropped (%)" if metric == "acc2_nonzero" else "test MAE")
    if any(model in paper for model in models):
        axes[0].legend(frameon=False)
    fig.suptitle(f"{dataset.upper()}: seeds (dots), their mean (line) and the paper (cross)")
    fig.tight_layout()
    return fig
