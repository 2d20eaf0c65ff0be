"""Tables and figures of the M3A experiments (paper Tables 4, 6, 12 and 13b, Figure 11a).

Model selection uses the validation split only. For M3ANet + HyperFuse, ``select_hyperfuse``
picks, per task and horizon, the block design and hidden size with the lowest validation loss
on seed 0 (validation MSE for volatility, binary cross-entropy for movement); ties go to the
smaller hidden size. The 5-seed comparison then runs that configuration. The baselines run
with the release's settings and no search, as the paper took them from Sawhney et al.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..ablations import markdown_table
from ..results import read_results
from .data import HORIZONS

# Paper Table 4 / Table 6: volatility MSE for tau = 3, 7, 15, then movement F1 and MCC.
PAPER_TABLE4 = {
    "mdrm": {"mse": (0.78, 0.58, 0.46), "f1": (0.59, 0.58, 0.46), "mcc": (0.19, 0.19, 0.11)},
    "transformer_concat": {"mse": (0.80, 0.61, 0.48), "f1": (0.09, 0.16, 0.06), "mcc": (0.00, 0.01, 0.01)},
    "transformer_att": {"mse": (0.76, 0.58, 0.47), "f1": (0.57, 0.61, 0.55), "mcc": (0.16, 0.18, 0.12)},
    "m3anet": {"mse": (0.77, 0.57, 0.46), "f1": (0.59, 0.58, 0.50), "mcc": (0.18, 0.17, 0.13)},
    "m3anet_hyperfuse": {"mse": (0.75, 0.53, 0.44), "f1": (0.51, 0.63, 0.58), "mcc": (0.16, 0.20, 0.16)},
}
# Paper Table 12: volatility MSE per HyperFuse block design.
PAPER_TABLE12 = {"base": (0.707, 0.546, 0.437), "II": (0.742, 0.565, 0.438), "III": (0.769, 0.609, 0.467),
                 "IV": (0.779, 0.548, 0.443)}
# Paper Table 13b: MSE_7 (std) by fusion position and primary modality; "unimodal" is the primary alone.
PAPER_TABLE13B = {("text", 0): (0.53, 0.04), ("text", 1): (0.57, 0.01), ("audio", 0): (0.58, 0.01),
                  ("audio", 1): (0.58, 0.02), ("text", "unimodal"): (0.62, 0.03), ("audio", "unimodal"): (0.61, 0.01)}
LABELS = {
    "mdrm": "MDRM (T+A)",
    "transformer_concat": "Transformer (T+A: concat)",
    "transformer_att": "Transformer (T+A: att. fusion)",
    "m3anet": "M3ANet",
    "m3anet_hyperfuse": "M3ANet + HyperFuse",
    "text_only": "Text only",
    "audio_only": "Audio only",
}
ORDER = tuple(PAPER_TABLE4)
TASK_METRICS = {"volatility": ("mse",), "movement": ("f1", "mcc")}
VALIDATION_KEY = {"volatility": "val_mse", "movement": "val_bce"}


def m3a_frame(folder: str | Path) -> pd.DataFrame:
    """One row per M3A results file in ``folder``: parameters, validation and test metrics."""
    records = [r for r in read_results(folder) if r.get("experiment") == "m3a"]
    if not records:
        raise FileNotFoundError(f"no M3A results files in {folder}; run an M3A experiment spec first")
    rows = []
    for r in records:
        p = r["parameters"]
        metrics = {k: v for k, v in r["metrics"].items() if k.startswith(("val_", "test_"))}
        rows.append({"model": r["model"], "task": r["task"], "horizon": r["horizon"], "seed": r["seed"],
                     "lr": p["lr"], "block": p["block"], "hidden_dim": p["hidden_dim"],
                     "fusion_position": p["fusion_position"], "primary": p["primary"],
                     "best_epoch": r["metrics"]["best_epoch"], "parameter_count": r["parameter_count"],
                     "wall_seconds": r["wall_seconds"], "run_name": r["run_name"], **metrics,
                     **{f"trivial_{k}": v for k, v in r["trivial_baseline"].items()}})
    return pd.DataFrame(rows)


def _hyperfuse_runs(frame: pd.DataFrame, primary: str = "text", position: int = 0) -> pd.DataFrame:
    runs = frame[frame["model"] == "m3anet_hyperfuse"]
    return runs[(runs["primary"] == primary) & (runs["fusion_position"] == position)]


def select_hyperfuse(frame: pd.DataFrame, task: str) -> dict[int, tuple[str, int]]:
    """Return ``{horizon: (block, hidden_dim)}`` with the lowest seed-0 validation loss."""
    runs = _hyperfuse_runs(frame)
    runs = runs[(runs["task"] == task) & (runs["seed"] == 0)]
    key = VALIDATION_KEY[task]
    selection = {}
    for horizon, group in runs.groupby("horizon"):
        best = group.sort_values([key, "hidden_dim"]).iloc[0]
        selection[int(horizon)] = (str(best["block"]), int(best["hidden_dim"]))
    return selection


def hyperfuse_seed_grids(frame: pd.DataFrame, task: str,
                         seeds: tuple[int, ...] = (1, 2, 3, 4)) -> list[dict[str, list]]:
    """Return the spec ``grids`` entries that run ``seeds`` at each horizon's selected configuration.

    One entry per seed and horizon, seed-major, so that a grid cut short stays balanced. The
    task and learning rate are the spec's shared parameters, so the entries leave them out.
    """
    entries = []
    for seed in seeds:
        for horizon, (block, hidden) in sorted(select_hyperfuse(frame, task).items()):
            entries.append({"model": ["m3anet_hyperfuse"], "horizon": [horizon], "block": [block],
                            "hidden_dim": [hidden], "seed": [seed]})
    return entries


def comparison_runs(frame: pd.DataFrame, task: str) -> pd.DataFrame:
    """The runs of the Table 4 comparison for ``task``: the baselines, and HyperFuse at its selection."""
    runs = frame[(frame["task"] == task) & frame["model"].isin(ORDER)]
    selection = select_hyperfuse(frame, task)
    keep = runs["model"] != "m3anet_hyperfuse"
    for horizon, (block, hidden) in selection.items():
        keep |= ((runs["model"] == "m3anet_hyperfuse") & (runs["horizon"] == horizon) & (runs["block"] == block)
                 & (runs["hidden_dim"] == hidden) & (runs["primary"] == "text") & (runs["fusion_position"] == 0))
    return runs[keep]


def _cell(values: pd.Series, digits: int) -> str:
    if values.empty:
        return ""
    if len(values) == 1:
        return f"{values.mean():.{digits}f} (1 seed)"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def comparison_table(frame: pd.DataFrame, task: str) -> pd.DataFrame:
    """Mean ± std over seeds per model and horizon beside the paper's Table 4, with the trivial predictor."""
    runs = comparison_runs(frame, task)
    columns = [(metric, h) for metric in TASK_METRICS[task] for h in HORIZONS]
    rows = []
    for model in ORDER:
        model_runs = runs[runs["model"] == model]
        if model_runs.empty:
            continue
        row = {"model": LABELS[model], "seeds": int(model_runs.groupby("horizon")["seed"].nunique().min())}
        for metric, h in columns:
            ours = model_runs[model_runs["horizon"] == h][f"test_{metric}"]
            paper = PAPER_TABLE4[model][metric][HORIZONS.index(h)]
            row[f"{metric.upper()}_{h}"] = _cell(ours, 3)
            row[f"paper {metric.upper()}_{h}"] = f"{paper:.2f}"
        rows.append(row)
    trivial = {"model": "training mean" if task == "volatility" else "always the training majority", "seeds": ""}
    task_runs = frame[frame["task"] == task]
    for metric, h in columns:
        values = task_runs[task_runs["horizon"] == h][f"trivial_test_{metric}"]
        trivial[f"{metric.upper()}_{h}"] = f"{values.iloc[0]:.3f}" if len(values) else ""
        trivial[f"paper {metric.upper()}_{h}"] = ""
    rows.append(trivial)
    return pd.DataFrame(rows)


def difference_table(frame: pd.DataFrame, task: str, reference: str = "m3anet") -> pd.DataFrame:
    """M3ANet + HyperFuse minus ``reference``, paired by seed, per metric and horizon.

    Each row gives the mean seed-by-seed difference of the test metric with its 95% t interval
    (``hfcore.comparison.paired_difference``) and the paper's difference (Table 4). For MSE a
    negative difference favours HyperFuse; for F1 and MCC a positive one does.
    """
    from ..comparison import paired_difference

    runs = comparison_runs(frame, task)
    rows = []
    for metric in TASK_METRICS[task]:
        for h in HORIZONS:
            at_h = runs[runs["horizon"] == h]
            ours = at_h[at_h["model"] == "m3anet_hyperfuse"].set_index("seed")[f"test_{metric}"]
            theirs = at_h[at_h["model"] == reference].set_index("seed")[f"test_{metric}"]
            difference = paired_difference(ours, theirs)
            paper = PAPER_TABLE4["m3anet_hyperfuse"][metric][HORIZONS.index(h)] - PAPER_TABLE4[reference][metric][
                HORIZONS.index(h)]
            rows.append({"metric": f"{metric.upper()}_{h}", "seeds": difference["n"],
                         "difference": round(difference["mean"], 3), "95% low": round(difference["low"], 3),
                         "95% high": round(difference["high"], 3), "paper difference": round(paper, 2)})
    return pd.DataFrame(rows)


def blocks_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Volatility test MSE per block design at its best hidden size on validation (seed 0), beside Table 12."""
    runs = _hyperfuse_runs(frame)
    runs = runs[(runs["task"] == "volatility") & (runs["seed"] == 0)]
    rows = []
    for block in sorted(runs["block"].unique(), key=lambda name: (name != "base", name)):  # base first
        group = runs[runs["block"] == block]
        row = {"block": block}
        for h in HORIZONS:
            at = group[group["horizon"] == h].sort_values(["val_mse", "hidden_dim"])
            row[f"MSE_{h}"] = f"{at.iloc[0]['test_mse']:.3f} (h={int(at.iloc[0]['hidden_dim'])})" if len(at) else ""
            paper = PAPER_TABLE12.get(block)
            row[f"paper MSE_{h}"] = f"{paper[HORIZONS.index(h)]:.3f}" if paper else ""
        rows.append(row)
    return pd.DataFrame(rows)


def hidden_size_frame(frame: pd.DataFrame, task: str = "volatility") -> pd.DataFrame:
    """Relative error (test loss over the best hidden size's) of the base block per hidden size, seed 0.

    Volatility uses the test MSE, movement the test error rate ``1 - accuracy``.
    """
    runs = _hyperfuse_runs(frame)
    runs = runs[(runs["task"] == task) & (runs["seed"] == 0) & (runs["block"] == "base")].copy()
    runs["error"] = runs["test_mse"] if task == "volatility" else 1.0 - runs["test_accuracy"]
    runs["relative_error"] = runs["error"] / runs.groupby("horizon")["error"].transform("min")
    return runs[["horizon", "hidden_dim", "error", "relative_error"]].sort_values(["horizon", "hidden_dim"])


def positions_table(frame: pd.DataFrame, horizon: int = 7) -> pd.DataFrame:
    """Volatility MSE at ``horizon`` by primary modality and fusion position, and the unimodal models (Table 13b).

    Every HyperFuse cell uses the block design and hidden size selected for ``horizon`` on
    validation (``select_hyperfuse``), so the cells differ only in position and primary modality.
    """
    vol = frame[(frame["task"] == "volatility") & (frame["horizon"] == horizon)]
    selected = select_hyperfuse(frame[frame["task"] == "volatility"], "volatility").get(horizon)
    rows = []
    for position in (0, 1, "unimodal"):
        row = {"fusion position": position}
        for primary in ("text", "audio"):
            if position == "unimodal":
                runs = vol[vol["model"] == f"{primary}_only"]
            elif selected is None:
                runs = vol.iloc[:0]
            else:
                runs = _hyperfuse_runs(vol, primary, position)
                runs = runs[(runs["block"] == selected[0]) & (runs["hidden_dim"] == selected[1])]
            paper = PAPER_TABLE13B[(primary, position)]
            row[f"{primary} primary"] = _cell(runs["test_mse"], 3)
            row[f"paper ({primary})"] = f"{paper[0]:.2f} ({paper[1]:.2f})"
        rows.append(row)
    return pd.DataFrame(rows)


def plot_comparison(frame: pd.DataFrame, task: str):
    """Bars of the test metric per model and horizon (mean, ±1 std, seeds as dots), trivial predictor dashed."""
    import matplotlib.pyplot as plt

    runs = comparison_runs(frame, task)
    metrics = TASK_METRICS[task]
    fig, axes = plt.subplots(1, len(metrics), figsize=(6.5 * len(metrics), 3.8), squeeze=False)
    models = [m for m in ORDER if m in set(runs["model"])]
    width = 0.8 / max(1, len(models))
    for ax, metric in zip(axes[0], metrics):
        for index, model in enumerate(models):
            model_runs = runs[runs["model"] == model]
            for h_index, h in enumerate(HORIZONS):
                values = model_runs[model_runs["horizon"] == h][f"test_{metric}"]
                if values.empty:
                    continue
                x = h_index + (index - (len(models) - 1) / 2) * width
                ax.bar(x, values.mean(), width, yerr=values.std(ddof=1) if len(values) > 1 else None,
                       color=f"C{index}", label=LABELS[model] if h_index == 0 else None, capsize=2)
                ax.plot(np.full(len(values), x), values, "k.", markersize=3)
        for h_index, h in enumerate(HORIZONS):
            values = frame[(frame["task"] == task) & (frame["horizon"] == h)][f"trivial_test_{metric}"]
            if len(values):
                ax.hlines(values.iloc[0], h_index - 0.45, h_index + 0.45, colors="k", linestyles="dashed",
                          label="trivial predictor" if h_index == 0 else None)
        ax.set_xticks(range(len(HORIZONS)), [f"τ = {h} days" for h in HORIZONS])
        ax.set_ylabel(f"test {metric.upper()}" + (" (lower is better)" if metric == "mse" else ""))
        if metric == "mse":
            lows = runs["test_mse"].min() if len(runs) else 0.3
            ax.set_ylim(max(0.0, 0.8 * lows), None)
    axes[0][0].legend(frameon=False, fontsize=8)
    fig.suptitle(f"M3A {task}: models over seeds, on the release's test calls")
    fig.tight_layout()
    return fig


def plot_hidden_size(table: pd.DataFrame, task: str = "volatility"):
    """Plot the relative error against the hidden size h, one line per horizon (paper Figure 11a).

    ``table`` comes from ``hidden_size_frame(frame, task)``. The ``task`` argument only names the
    error on the y axis: MSE for volatility, the error rate for movement.
    """
    import matplotlib.pyplot as plt

    if task not in TASK_METRICS:
        raise ValueError(f"invalid task {task!r}: use one of {sorted(TASK_METRICS)}")
    error = "test MSE" if task == "volatility" else "test error rate"
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    for horizon, rows in table.groupby("horizon"):
        ax.plot(rows["hidden_dim"], rows["relative_error"], marker="o", label=f"τ = {horizon} days")
    ax.set_xscale("log", base=2)
    sizes = sorted(table["hidden_dim"].unique())
    ax.set_xticks(sizes, [f"{h:g}" for h in sizes])
    ax.set_xlabel("hidden size h")
    ax.set_ylabel(f"relative error ({error} / best)")
    ax.set_title(f"M3A {task}: M3ANet + HyperFuse, seed 0")
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


__all__ = ["m3a_frame", "select_hyperfuse", "comparison_runs", "comparison_table", "blocks_table",
           "hidden_size_frame", "hyperfuse_seed_grids", "difference_table", "positions_table", "plot_comparison", "plot_hidden_size", "markdown_table",
           "PAPER_TABLE4", "PAPER_TABLE12", "PAPER_TABLE13B", "LABELS"]
