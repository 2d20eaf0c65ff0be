"""Analyses of trained models: EMAP, corruption sensitivity, embedding distances, generated weights.

Every function takes a trained ``MultimodalModel`` (or its outputs) and returns numbers;
the notebooks in ``notebooks/`` draw the figures. Nothing here trains a model.

- EMAP (Hessel and Lee, "Does my multimodal model learn cross-modal interactions? It's
  harder to tell than you might think!", EMNLP 2020): the best additive approximation of a
  model's logits. The gap between the model's accuracy and its projection's accuracy
  measures how much the model relies on cross-modal interactions.
- Corruption sensitivity (HyperFuse paper, appendix E.2): the accuracy lost when the
  auxiliary input comes from a sample of another class, or carries Gaussian noise.
- Embedding distances (HyperFuse paper, figures 4 and 10): the mean distance between the
  embeddings of each pair of classes, with scale-free versions beside it.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

logger = logging.getLogger(__name__)


def emap(pair_logits: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Return the additive projection of ``pair_logits`` on the matched pairs.

    ``pair_logits[i, j]`` are the logits ``f(primary_i, auxiliary_j)``, shape ``(n, n, classes)``.
    The projection of sample ``i`` is, per logit,
    ``mean_j f(p_i, a_j) + mean_j f(p_j, a_i) - mean_{j,k} f(p_j, a_k)``; shape ``(n, classes)``.
    """
    f = torch.as_tensor(pair_logits, dtype=torch.float64)
    if f.dim() != 3 or f.shape[0] != f.shape[1]:
        raise ValueError(f"pair_logits must have shape (n, n, classes), got {tuple(f.shape)}")
    return f.mean(dim=1) + f.mean(dim=0) - f.mean(dim=(0, 1))


def _take(features, index: torch.Tensor):
    # Encoded features are a tensor, or a list of tensors for models that tap several layers.
    if features is None:
        return None
    if isinstance(features, (list, tuple)):
        return [f[index] for f in features]
    return features[index]


@torch.no_grad()
def pair_logits(model: nn.Module, x_p: torch.Tensor, x_a: torch.Tensor, *, batch_size: int = 4096) -> torch.Tensor:
    """Return ``f(primary_i, auxiliary_j)`` for every pair, shape ``(n, n, classes)``.

    Each modality is encoded once (``model.encode``), and only the fusion and the head
    (``model.fuse``) run on the ``n^2`` pairs, ``batch_size`` pairs at a time. This is exact
    because the encoders see one modality each and are in evaluation mode.
    """
    model.eval()
    n = len(x_p)
    if len(x_a) != n:
        raise ValueError(f"x_p and x_a must hold the same number of samples, got {n} and {len(x_a)}")
    h_p, z_a = model.encode(x_p, x_a)
    rows = []
    for start in range(0, n * n, batch_size):
        flat = torch.arange(start, min(start + batch_size, n * n))
        rows.append(model.fuse(_take(h_p, flat // n), _take(z_a, flat % n)).float())
    return torch.cat(rows).view(n, n, -1)


@torch.no_grad()
def pair_logits_full_model(model: nn.Module, x_p: torch.Tensor, x_a: torch.Tensor, *, batch_size: int = 500):
    """Return the same as ``pair_logits`` by running the whole model on every pair (slow; a reference)."""
    model.eval()
    n = len(x_p)
    rows = []
    for start in range(0, n * n, batch_size):
        flat = torch.arange(start, min(start + batch_size, n * n))
        rows.append(model(x_p[flat // n], x_a[flat % n]).float())
    return torch.cat(rows).view(n, n, -1)


def emap_gap(pair: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Return the model's accuracy on the matched pairs, its projection's accuracy and the gap (%)."""
    labels = torch.as_tensor(labels)
    index = torch.arange(len(labels))
    model_accuracy = 100 * float((pair[index, index].argmax(1) == labels).float().mean())
    projection_accuracy = 100 * float((emap(pair).argmax(1) == labels).float().mean())
    return {"model_accuracy": model_accuracy, "projection_accuracy": projection_accuracy,
            "gap": model_accuracy - projection_accuracy}


def wrong_auxiliary_index(labels: Sequence[int] | torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Return, for each sample, the index of a random sample of another class.

    Raises ValueError when every sample has the same class (no wrong partner exists).
    """
    labels = torch.as_tensor(labels)
    if len(torch.unique(labels)) < 2:
        raise ValueError("wrong_auxiliary_index needs at least two classes in labels")
    generator = torch.Generator().manual_seed(seed)
    index = torch.empty(len(labels), dtype=torch.long)
    for value in torch.unique(labels):
        own = torch.nonzero(labels == value).squeeze(1)
        others = torch.nonzero(labels != value).squeeze(1)
        index[own] = others[torch.randint(len(others), (len(own),), generator=generator)]
    return index


def add_gaussian_noise(x: torch.Tensor, std: float, seed: int = 0) -> torch.Tensor:
    """Return ``x`` plus Gaussian noise of standard deviation ``std`` (inputs are standardised,
    so ``std`` is relative to the input's own scale)."""
    if std < 0:
        raise ValueError(f"std must be 0 or positive, got {std}")
    generator = torch.Generator().manual_seed(seed)
    return x + std * torch.randn(x.shape, generator=generator, dtype=x.dtype)


@torch.no_grad()
def _accuracy(model: nn.Module, x_p: torch.Tensor, x_a: torch.Tensor, labels: torch.Tensor, batch_size: int) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(labels), batch_size):
        stop = start + batch_size
        logits = model(x_p[start:stop], x_a[start:stop])
        correct += int((logits.argmax(1) == labels[start:stop]).sum())
    return 100 * correct / len(labels)


def corruption_sensitivity(
    model: nn.Module,
    x_p: torch.Tensor,
    x_a: torch.Tensor,
    labels: torch.Tensor,
    *,
    noise_stds: Sequence[float] = (0.5, 1.0, 2.0),
    seed: int = 0,
    batch_size: int = 500,
) -> dict[str, float]:
    """Return test accuracy (%) clean, with the auxiliary input of another class, and with
    Gaussian noise of each standard deviation in ``noise_stds`` on the auxiliary input.

    Keys: ``clean``, ``wrong_auxiliary``, ``noise_<std>``; and ``drop_<key>`` = clean minus each.
    """
    labels = torch.as_tensor(labels)
    results = {"clean": _accuracy(model, x_p, x_a, labels, batch_size)}
    wrong = wrong_auxiliary_index(labels, seed)
    results["wrong_auxiliary"] = _accuracy(model, x_p, x_a[wrong], labels, batch_size)
    for std in noise_stds:
        results[f"noise_{std:g}"] = _accuracy(model, x_p, add_gaussian_noise(x_a, std, seed), labels, batch_size)
    for key in [k for k in results if k != "clean"]:
        results[f"drop_{key}"] = results["clean"] - results[key]
    return results


@torch.no_grad()
def head_inputs(model: nn.Module, x_p: torch.Tensor, x_a: torch.Tensor | None, *, batch_size: int = 500) -> torch.Tensor:
    """Return the fused embedding that the model's head receives, for every sample, as ``(n, width)``."""
    model.eval()
    outputs = []
    for start in range(0, len(x_p), batch_size):
        stop = start + batch_size
        features = model.encode(x_p[start:stop], None if x_a is None else x_a[start:stop])
        # A fusion that returns several tokens (MBT's class tokens) gives one concatenated embedding.
        outputs.append(_head_input(model, *features).float().flatten(1))
    return torch.cat(outputs)


def _head_input(model: nn.Module, h_p, z_a) -> torch.Tensor:
    # MultimodalModel.fuse without its last step, the head.
    position = getattr(model, "fusion_position", None)
    if isinstance(h_p, (list, tuple)) or position is None:
        return model.fusion(h_p, z_a)
    fused = model.fusion(h_p.flatten(1), z_a).view_as(h_p)
    return model.primary_encoder(fused, position, None)


def class_distance_matrix(embeddings: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None):
    """Return the ``(classes, classes)`` mean Euclidean distance between embeddings of two classes.

    The diagonal is the mean distance between distinct samples of the same class.
    """
    embeddings = torch.as_tensor(embeddings, dtype=torch.float64)
    labels = torch.as_tensor(labels)
    num_classes = num_classes or int(labels.max()) + 1
    distances = torch.cdist(embeddings, embeddings)
    matrix = torch.full((num_classes, num_classes), float("nan"), dtype=torch.float64)
    for a in range(num_classes):
        for b in range(num_classes):
            block = distances[labels == a][:, labels == b]
            if a == b:
                n = block.shape[0]
                if n > 1:
                    matrix[a, b] = block.sum() / (n * (n - 1))  # the zero self-distances left out
            elif block.numel():
                matrix[a, b] = block.mean()
    return matrix


def separation_ratio(matrix: torch.Tensor) -> float:
    """Return the mean between-class distance over the mean within-class distance.

    It does not change when the embeddings are scaled, so models of different scales compare
    fairly. Above 1, the classes lie further from each other than their samples do from one
    another.
    """
    matrix = torch.as_tensor(matrix)
    off = ~torch.eye(len(matrix), dtype=torch.bool)
    return float(matrix[off].nanmean() / torch.diagonal(matrix).nanmean())


def normalised_distances(matrix: torch.Tensor) -> torch.Tensor:
    """Return ``matrix`` divided by its mean within-class distance (scale-free heatmap)."""
    matrix = torch.as_tensor(matrix)
    return matrix / torch.diagonal(matrix).nanmean()


def relative_error(accuracies: Sequence[float]) -> np.ndarray:
    """Return each setting's error over the smallest error among them (1 is the best setting).

    This is the normalisation of the HyperFuse paper's figure 11, with accuracies in %.
    """
    errors = 100 - np.asarray(accuracies, dtype=float)
    if np.any(errors <= 0):
        raise ValueError("relative_error needs accuracies below 100%")
    return errors / errors.min()


@torch.no_grad()
def generated_matrices(model: nn.Module, x_a: torch.Tensor, *, block: int = 0) -> torch.Tensor:
    """Return the ``(n, h, h)`` matrices that HyperFuse block ``block`` generates for ``x_a``."""
    fusion = model.fusion
    if not hasattr(fusion, "blocks") or not hasattr(fusion.blocks[block], "generate_weights"):
        raise ValueError("generated_matrices needs a HyperFuse model with the base block")
    model.eval()
    z_a = model.auxiliary_encoder(x_a)
    return fusion.blocks[block].generate_weights(z_a)


def mean_matrix_per_class(matrices: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None):
    """Return the mean generated matrix of each class, shape ``(classes, h, h)``."""
    labels = torch.as_tensor(labels)
    num_classes = num_classes or int(labels.max()) + 1
    return torch.stack([matrices[labels == c].mean(0) for c in range(num_classes)])


# ----------------------------------------------------------------------------- trained runs


def load_trained_model(record: dict, checkpoint_dir: str | Path | None = None) -> nn.Module:
    """Rebuild the model of a results ``record`` and load its selected weights (``<run_name>.best.pt``)."""
    from .data.paths import REPO_ROOT
    from .models import build_model

    path = Path(checkpoint_dir or REPO_ROOT / "checkpoints") / f"{record['run_name']}.best.pt"
    if not path.is_file():
        raise FileNotFoundError(
            f"no weights for run {record['run_name']} at {path}; the training run writes them there. "
            "Rerun it (python -m hfcore run SPEC --force) or pass the checkpoint_dir it used"
        )
    model = build_model(record["model"], **record["model_options"])
    model.load_state_dict(torch.load(path, weights_only=True))
    return model.eval()


def split_inputs(split, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Return ``(x_p, x_a, labels)`` of a dataset split as float32 tensors, in the model's modality order."""
    x_p = torch.as_tensor(getattr(split, model.primary_modality)).float()
    aux = getattr(model, "auxiliary_modality", None)
    x_a = None if aux is None else torch.as_tensor(getattr(split, aux)).float()
    return x_p, x_a, torch.as_tensor(split.label).long()


def evenly_spaced(n_total: int, n: int) -> torch.Tensor:
    """Return ``n`` evenly spaced indices into ``range(n_total)`` (all of them when ``n >= n_total``)."""
    if n >= n_total:
        return torch.arange(n_total)
    return torch.linspace(0, n_total - 1, n).round().long()


def analyse_run(
    record: dict,
    model: nn.Module,
    split,
    *,
    pair_samples: int = 500,
    noise_stds: Sequence[float] = (0.5, 1.0, 2.0),
    seed: int = 0,
) -> dict:
    """Return the EMAP gap, corruption sensitivity and class distances of one trained model.

    EMAP uses ``pair_samples`` evenly spaced samples of ``split`` (``pair_samples^2`` pairs);
    the other analyses use the whole split.
    """
    from .comparison import config_name

    started = time.perf_counter()
    x_p, x_a, labels = split_inputs(split, model)
    result = {
        "run_name": record["run_name"],
        "config": config_name(record["model"], record["parameters"].get("block")),
        "model": record["model"],
        "seed": record["seed"],
        "test_accuracy": 100 * record["metrics"]["test_accuracy"],
        "parameters": {"pair_samples": pair_samples, "noise_stds": list(noise_stds), "seed": seed},
    }
    if x_a is not None:
        index = evenly_spaced(len(labels), pair_samples)
        result["emap"] = emap_gap(pair_logits(model, x_p[index], x_a[index]), labels[index])
        result["corruption"] = corruption_sensitivity(model, x_p, x_a, labels, noise_stds=noise_stds, seed=seed)
    matrix = class_distance_matrix(head_inputs(model, x_p, x_a), labels)
    result["class_distances"] = matrix.tolist()
    result["separation_ratio"] = separation_ratio(matrix)
    result["wall_seconds"] = round(time.perf_counter() - started, 2)
    return result


def analysis_frame(records: list[dict]) -> pd.DataFrame:
    """Return one row per analysed run: EMAP accuracies and gap, corruption drops, separation."""
    rows = []
    for record in records:
        row = {"config": record["config"], "seed": record["seed"], "test_accuracy": record["test_accuracy"],
               "separation_ratio": record["separation_ratio"]}
        for name, value in record.get("emap", {}).items():
            row[f"emap_{name}"] = value
        for name, value in record.get("corruption", {}).items():
            row[name] = value
        rows.append(row)
    return pd.DataFrame(rows)


def emap_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Return per configuration the mean and std over seeds of the EMAP accuracies and gap (%)."""
    columns = ["emap_model_accuracy", "emap_projection_accuracy", "emap_gap"]
    table = frame.groupby("config")[columns].agg(["mean", "std"])
    table.columns = [f"{name}_{stat}" for name, stat in table.columns]
    return table.assign(seeds=frame.groupby("config")["seed"].nunique())


def plot_corruption(frame: pd.DataFrame, configs: Sequence[str] | None = None, labels: dict | None = None):
    """Bar chart of the accuracy drop under each corruption, mean over seeds with std error bars.

    A configuration with a single seed has no error bar, and its tick label ends in "(1 seed)".
    """
    import matplotlib.pyplot as plt

    configs = list(configs or sorted(frame["config"].unique()))
    kinds = [c for c in frame.columns if c.startswith("drop_")]
    fig, ax = plt.subplots(figsize=(min(16, max(6, 0.3 * len(configs) * len(kinds))), 3.8))
    width = 0.8 / len(kinds)
    for k, kind in enumerate(kinds):
        stats_ = frame[frame["config"].isin(configs)].groupby("config")[kind].agg(["mean", "std"]).reindex(configs)
        positions = np.arange(len(configs)) + (k - (len(kinds) - 1) / 2) * width
        name = "auxiliary from another class" if kind == "drop_wrong_auxiliary" else \
            f"Gaussian noise, std {kind.removeprefix('drop_noise_')}"
        # A NaN std (one seed) draws no error bar, where 0 would look like no spread.
        ax.bar(positions, stats_["mean"], width, yerr=stats_["std"], capsize=2, label=name)
    seeds = frame[frame["config"].isin(configs)].groupby("config")["seed"].nunique().reindex(configs)
    names = [(labels or {}).get(c, c) + ("\n(1 seed)" if seeds[c] == 1 else "") for c in configs]
    ax.set_xticks(range(len(configs)), names, rotation=30, ha="right")
    ax.set_ylabel("accuracy drop (points)")
    ax.set_title("Sensitivity to a corrupted auxiliary input (test set)")
    ax.legend(frameon=False, fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_distance_heatmaps(records: list[dict], configs: Sequence[str], labels: dict | None = None):
    """Heatmaps of the class distance matrix per configuration (mean over seeds): raw distances on
    the top row, distances over the mean within-class distance on the bottom row, with the
    separation ratio in each title."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(configs), figsize=(3.3 * len(configs), 6.2), squeeze=False)
    for column, config in enumerate(configs):
        matrices = [torch.tensor(r["class_distances"]) for r in records if r["config"] == config]
        if not matrices:
            raise ValueError(f"no analysed runs of {config!r}; analysed: {sorted({r['config'] for r in records})}")
        matrix = torch.stack(matrices).mean(0)
        ratio = np.mean([r["separation_ratio"] for r in records if r["config"] == config])
        name = (labels or {}).get(config, config)
        for row, (values, what) in enumerate(((matrix, "distance"), (normalised_distances(matrix), "relative"))):
            ax = axes[row, column]
            image = ax.imshow(values.numpy(), cmap="viridis")
            ax.set_title(f"{name}: {what}" + (f"\nseparation {ratio:.2f}" if row == 0 else ""), fontsize=9)
            ax.set_xticks(range(len(values)))
            ax.set_yticks(range(len(values)))
            ax.tick_params(labelsize=7)
            fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def analyse_runs(
    runs_dir: str | Path,
    output_dir: str | Path,
    dataset,
    *,
    configs: Sequence[str] | None = None,
    checkpoint_dir: str | Path | None = None,
    split: str = "test",
    pair_samples: int = 500,
    noise_stds: Sequence[float] = (0.5, 1.0, 2.0),
    progress: bool = True,
    skip_missing_weights: bool = False,
) -> list[dict]:
    """Analyse every run of ``runs_dir`` at its configuration's chosen learning rate.

    The learning rate is chosen as in ``hfcore.comparison`` (validation accuracy on seed 0).
    ``configs`` limits the configurations (names as in ``hfcore.comparison``, such as ``lf`` or
    ``hyperfuse/II``). Each analysis is written to ``output_dir/<run_name>.json`` with its
    provenance; a run analysed before with the same parameters is read back instead of redone.
    A run whose weights file is missing raises FileNotFoundError, or with
    ``skip_missing_weights`` is left out with a warning (results files are committed, weights
    are not, so another machine may hold only some of them). Returns the analysis records.
    """
    from tqdm.auto import tqdm

    from .comparison import comparison_frame, select_learning_rates
    from .results import provenance, read_results, write_json_atomic

    runs = read_results(runs_dir)
    frame = comparison_frame(runs_dir)
    selection = select_learning_rates(frame)
    unknown = sorted(set(configs or []) - set(selection))
    if unknown:
        raise ValueError(f"configurations {unknown} have no runs in {runs_dir}; it has {sorted(selection)}")
    from .comparison import config_name

    chosen = [
        r for r in runs
        if (config := config_name(r["model"], r["parameters"].get("block"))) in selection
        and r["parameters"]["lr"] == selection[config] and (configs is None or config in configs)
    ]
    parameters = {"split": split, "pair_samples": pair_samples, "noise_stds": list(noise_stds), "seed": 0}
    results = []
    for record in tqdm(chosen, desc="analysing runs", disable=not progress):
        path = Path(output_dir) / f"{record['run_name']}.json"
        if path.is_file():
            saved = json.loads(path.read_text())
            if saved.get("analysis_parameters") == parameters:
                results.append(saved)
                continue
            logger.info("re-analysing %s: its saved analysis used other parameters", record["run_name"])
        try:
            model = load_trained_model(record, checkpoint_dir)
        except FileNotFoundError as error:
            if not skip_missing_weights:
                raise
            logger.warning("skipping %s: %s", record["run_name"], error)
            continue
        result = analyse_run(record, model, dataset[split], pair_samples=pair_samples, noise_stds=noise_stds)
        result.update(analysis_parameters=parameters, provenance=provenance())
        write_json_atomic(path, result, overwrite=path.is_file())
        results.append(result)
    return results


def explained_by_class(matrices: torch.Tensor, labels: torch.Tensor) -> float:
    """Return the fraction of the generated matrices' variance that the class explains.

    The between-class sum of squares over the total sum of squares, pooled over all entries
    (the R^2 of predicting each matrix by its class mean). 0 means that the generated weights
    do not depend on the class of the auxiliary input; 1 means that they depend on nothing else.
    """
    matrices = torch.as_tensor(matrices, dtype=torch.float64).flatten(1)
    labels = torch.as_tensor(labels)
    centred = matrices - matrices.mean(0)
    total = float((centred**2).sum())
    if total == 0:
        raise ValueError("the generated matrices are all equal: their variance is zero")
    between = 0.0
    for value in torch.unique(labels):
        members = centred[labels == value]
        between += len(members) * float((members.mean(0) ** 2).sum())
    return between / total


def plot_class_matrices(means: torch.Tensor, *, title: str = "Generated matrix W by spoken digit"):
    """Draw the mean generated matrix over all classes, then each class's mean minus it.

    The shared part of W (the generator's bias and what all inputs have in common) is usually
    much larger than what differs between classes, so the class panels show the differences, on
    their own symmetric colour scale.
    """
    import matplotlib.pyplot as plt

    means = torch.as_tensor(means)
    overall = means.mean(0)
    deviations = means - overall
    panels = [("mean over all digits", overall)] + [(f"digit {i} minus the mean", d) for i, d in enumerate(deviations)]
    columns = 6
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.3 * columns, 2.4 * rows + 0.6), squeeze=False)
    overall_limit = float(overall.abs().max())
    deviation_limit = float(deviations.abs().max())
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index >= len(panels):
            continue
        name, matrix = panels[index]
        limit = overall_limit if index == 0 else deviation_limit
        image = ax.imshow(matrix.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(name, fontsize=8)
        if index in (0, 1):
            fig.colorbar(image, ax=ax, fraction=0.046)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
