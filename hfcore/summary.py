"""Tables and figures from AV-MNIST results files.

Every table and figure here is computed from saved results alone, so it can be redrawn
without retraining.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import atomic_path
from .results import read_results

# Test accuracy (%) reported in "HyperFuse: Multimodal Fusion via Hypernetworks": Table 5 (unimodal rows, image and audio columns)
# and Table 1 (LF, LF + HyperFuse); 5 trials each, on the 55,000/5,000/10,000 split.
PAPER_AVMNIST = {"image_only": 66.7, "audio_only": 42.5, "lf": 71.4, "hyperfuse": 72.4}
MODEL_LABELS = {"image_only": "Image only", "audio_only": "Audio only", "lf": "LF", "hyperfuse": "HyperFuse"}
MODEL_ORDER = ("image_only", "audio_only", "lf", "hyperfuse")
# Columns of ``results_frame`` that are outcomes or bookkeeping, not parameters.
RESULT_COLUMNS = ("seed", "run_identity", "test_accuracy", "val_accuracy", "best_epoch", "epochs", "train_size",
                  "parameter_count", "wall_seconds")


# Parameters that never tell two configurations apart: the seed, paths and run bookkeeping.
NOT_A_VARIANT = ("seed", "data_dir", "multibench_dir", "cache_dir", "results_dir", "checkpoint_dir", "run_name",
                 "overwrite", "progress")


def varying_parameters(records: list[dict]) -> dict[str, list[str]]:
    """Return, per model, the parameters whose values differ between its runs (seed and paths aside)."""
    by_model: dict[str, list[dict]] = {}
    for record in records:
        by_model.setdefault(record["model"], []).append(record["parameters"])
    varying = {}
    for model, parameter_sets in by_model.items():
        names = sorted({name for parameters in parameter_sets for name in parameters} - set(NOT_A_VARIANT))
        varying[model] = [
            name for name in names
            if len({json.dumps(parameters.get(name), sort_keys=True) for parameters in parameter_sets}) > 1
        ]
    return varying


def results_frame(folder: str | Path) -> pd.DataFrame:
    """Return one row per run: model, seed, run identity, accuracy (%), epochs, wall time.

    Runs of one model may differ in parameters other than the seed (a grid over ``hidden_dim``,
    say). Each such parameter then gets a column, and the ``variant`` column names the run's
    values, as in ``"generator=full, hidden_dim=32"``. For a model whose runs differ only in
    the seed, ``variant`` is empty.
    """
    records = read_results(folder)
    if not records:
        raise FileNotFoundError(f"no results files in {folder}; run the training notebook first")
    varying = varying_parameters(records)
    rows = []
    for record in records:
        names = varying[record["model"]]
        rows.append(
            {
                **{name: record["parameters"].get(name) for name in names},
                "variant": ", ".join(f"{name}={record['parameters'].get(name)}" for name in names),
                "model": record["model"],
                "seed": record["seed"],
                "run_identity": record["run_identity"],
                "test_accuracy": 100 * record["metrics"]["test_accuracy"],
                "val_accuracy": 100 * record["metrics"]["val_accuracy"],
                "best_epoch": record["metrics"]["best_epoch"],
                "epochs": record["parameters"]["epochs"],
                "train_size": record["dataset"]["train_size_used"],
                "parameter_count": record["parameter_count"],
                "wall_seconds": record["wall_seconds"],
            }
        )
    return pd.DataFrame(rows)


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Return test accuracy mean and sample standard deviation over seeds per model.

    Runs of the same model with different parameters (another ``run_identity``) get their own
    rows. The number that the HyperFuse paper reports (``PAPER_AVMNIST``) is added where one
    exists, on rows without a ``variant``.
    """
    if "variant" not in frame:
        frame = frame.assign(variant="")
    grouped = frame.groupby(["model", "variant", "run_identity"])
    table = grouped.agg(
        seeds=("seed", "nunique"),
        test_mean=("test_accuracy", "mean"),
        test_std=("test_accuracy", "std"),
        val_mean=("val_accuracy", "mean"),
        parameters=("parameter_count", "first"),
        minutes_per_run=("wall_seconds", lambda s: s.mean() / 60),
    ).reset_index()
    # The paper's number belongs to a model's own setting, not to each point of a grid over it.
    table["paper"] = table["model"].map(PAPER_AVMNIST).where(table["variant"] == "")
    order = {name: i for i, name in enumerate(MODEL_ORDER)}
    table = table.assign(_order=[(order.get(m, len(order)), m, _natural_key(v))
                                 for m, v in zip(table["model"], table["variant"])])
    return table.sort_values("_order").drop(columns="_order").reset_index(drop=True)


def _natural_key(text: str) -> tuple:
    # "hidden_dim=32" sorts before "hidden_dim=128": digit runs compare as numbers.
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text))


def format_table(table: pd.DataFrame) -> str:
    """Return ``table`` as a Markdown table with accuracy as mean ± std."""
    lines = [
        "| Model | Test accuracy (%) | Seeds | Parameters | Paper (%) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in table.itertuples():
        std = "n/a" if np.isnan(row.test_std) else f"{row.test_std:.1f}"
        paper = "" if pd.isna(row.paper) else f"{row.paper:.1f}"
        label = MODEL_LABELS.get(row.model, row.model) + (f" ({row.variant})" if row.variant else "")
        lines.append(f"| {label} | {row.test_mean:.1f} ± {std} | {row.seeds} | {row.parameters:,} | {paper} |")
    return "\n".join(lines)


def plot_accuracy(frame: pd.DataFrame, *, title: str = "AV-MNIST test accuracy"):
    """Plot each run's test accuracy, the mean over seeds, and ``PAPER_AVMNIST`` per model.

    Runs of one model with different parameters (see ``results_frame``) get a column each,
    labelled with their values. The paper's number is drawn only where a model has one setting.
    """
    import matplotlib.pyplot as plt

    if "variant" not in frame:
        frame = frame.assign(variant="")
    order = {name: i for i, name in enumerate(MODEL_ORDER)}
    groups = sorted({(m, v) for m, v in zip(frame["model"], frame["variant"])},
                    key=lambda g: (order.get(g[0], len(order)), g[0], _natural_key(g[1])))
    fig, ax = plt.subplots(figsize=(max(6.5, 1.3 * len(groups)), 4))
    for position, (model, variant) in enumerate(groups):
        runs = frame[(frame["model"] == model) & (frame["variant"] == variant)].sort_values("seed")
        # Spread the seeds evenly around the model's position, so that redrawing gives the same figure.
        offsets = np.linspace(-0.12, 0.12, len(runs)) if len(runs) > 1 else np.zeros(1)
        ax.scatter(position + offsets, runs["test_accuracy"], color="0.35", s=30, label="one seed", zorder=2)
        ax.scatter(position, runs["test_accuracy"].mean(), marker="_", s=900, color="C0", linewidths=3,
                   label="mean (ours)", zorder=3)
        if model in PAPER_AVMNIST and not variant:
            ax.scatter(position, PAPER_AVMNIST[model], marker="*", s=160, color="C3", label="paper", zorder=4)
    labels = [MODEL_LABELS.get(m, m) + ("\n" + v.replace(", ", "\n") if v else "") for m, v in groups]
    ax.set_xticks(range(len(groups)), labels, fontsize=8 if any(v for _, v in groups) else None)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    handles, names = ax.get_legend_handles_labels()
    unique = dict(zip(names, handles))
    ax.legend(unique.values(), unique.keys(), loc="lower right", frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def save_figure(fig, path: str | Path, *, dpi: int = 150) -> Path:
    """Save ``fig`` to ``path`` atomically (a temporary file in the same folder, then a rename)."""
    path = Path(path)
    with atomic_path(path) as temporary:
        fig.savefig(temporary, format=path.suffix.lstrip(".") or "png", dpi=dpi,
                    metadata={"Software": None} if path.suffix == ".png" else None)
    return path


def write_summary(table: pd.DataFrame, output_dir: str | Path) -> None:
    """Write ``table`` as ``summary.csv`` and ``summary.md`` in ``output_dir``, each atomically."""
    for name, text in (("summary.csv", table.to_csv(index=False)), ("summary.md", format_table(table) + "\n")):
        with atomic_path(Path(output_dir) / name) as temporary:
            temporary.write_text(text)


def plot_history(record: dict):
    """Plot training loss and validation accuracy per epoch of one run, marking the selected epoch."""
    import matplotlib.pyplot as plt

    history = pd.DataFrame(record["metrics"]["history"])
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(8, 3))
    loss_ax.plot(history["epoch"], history["train_loss"], marker="o", label="train")
    loss_ax.plot(history["epoch"], history["val_loss"], marker="o", label="validation")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("cross-entropy")
    loss_ax.legend(frameon=False)
    acc_ax.plot(history["epoch"], 100 * history["val_accuracy"], marker="o", color="C1")
    acc_ax.axvline(record["metrics"]["best_epoch"], color="0.5", linestyle="--", label="selected epoch")
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylabel("validation accuracy (%)")
    acc_ax.legend(frameon=False)
    fig.suptitle(record["run_name"])
    fig.tight_layout()
    return fig


def plot_accuracy_against(frame: pd.DataFrame, parameter: str, *, title: str = "AV-MNIST test accuracy"):
    """Plot test accuracy against one grid ``parameter``: each seed, and the mean per setting.

    Runs that differ in other parameters too (the generator, say) get one line each.
    """
    import matplotlib.pyplot as plt

    if parameter not in frame:
        varying = sorted(set(frame.columns) - set(RESULT_COLUMNS) - {"model", "variant"})
        raise ValueError(f"{parameter!r} does not vary between these runs; the parameters that vary: {varying}")
    others = [c for c in frame.columns if c not in RESULT_COLUMNS and c not in (parameter, "model", "variant")]
    fig, ax = plt.subplots(figsize=(6, 4))
    groups = frame.groupby(["model", *others], sort=True, dropna=False)
    for index, (key, runs) in enumerate(groups):
        key = key if isinstance(key, tuple) else (key,)
        label = MODEL_LABELS.get(key[0], key[0]) + "".join(f", {n}={v}" for n, v in zip(others, key[1:]))
        means = runs.groupby(parameter)["test_accuracy"].mean().sort_index()
        color = f"C{index}"
        ax.plot(means.index, means.values, marker="o", color=color, label=label)
        ax.scatter(runs[parameter], runs["test_accuracy"], color=color, alpha=0.4, s=18)
    values = sorted(frame[parameter].unique())
    if all(isinstance(v, (int, float, np.integer, np.floating)) for v in values) and min(values) > 0 \
            and max(values) / min(values) >= 8:
        ax.set_xscale("log", base=2)
    ax.set_xticks(values, [str(v) for v in values])
    ax.set_xlabel(parameter)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
