"""EMAP, corruption sensitivity, embedding distances and generated weights, on worked examples."""

import math

import numpy as np
import pytest
import torch

from hfcore.analysis import (
    add_gaussian_noise,
    class_distance_matrix,
    corruption_sensitivity,
    emap,
    emap_gap,
    generated_matrices,
    head_inputs,
    mean_matrix_per_class,
    normalised_distances,
    pair_logits,
    pair_logits_full_model,
    relative_error,
    separation_ratio,
    wrong_auxiliary_index,
)
from hfcore.models import build_model
from hfcore.results import read_results


def inputs(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 28, 28, generator=g), torch.randn(n, 1, 112, 112, generator=g)


def test_emap_worked_example():
    # One logit, f = [[1, 2], [3, 4]] (rows: primary i, columns: auxiliary j); overall mean 2.5.
    # Sample 0: row mean 1.5 + column mean 2.0 - 2.5 = 1.0. Sample 1: 3.5 + 3.0 - 2.5 = 4.0.
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).unsqueeze(-1)
    assert emap(f).squeeze(-1).tolist() == [1.0, 4.0]


def test_emap_reproduces_an_additive_function_exactly():
    u, v = torch.randn(5, 3), torch.randn(5, 3)
    additive = u[:, None, :] + v[None, :, :]
    torch.testing.assert_close(emap(additive).float(), (u + v))


def test_emap_removes_a_pure_interaction():
    # f(i, j) = u_i * v_j with zero-mean u and v: its additive part is zero.
    u = torch.tensor([1.0, -1.0])
    v = torch.tensor([2.0, -2.0])
    f = (u[:, None] * v[None, :]).unsqueeze(-1)
    assert torch.count_nonzero(emap(f)) == 0


def test_emap_rejects_a_non_square_input():
    with pytest.raises(ValueError, match=r"\(n, n, classes\)"):
        emap(torch.zeros(3, 4, 2))


def test_emap_gap_worked_example():
    # Two samples, two classes. Matched logits favour the true class; the additive part does not.
    pair = torch.zeros(2, 2, 2)
    pair[0, 0] = torch.tensor([1.0, 0.0])  # sample 0, label 0: correct
    pair[1, 1] = torch.tensor([0.0, 1.0])  # sample 1, label 1: correct
    pair[0, 1] = torch.tensor([0.0, 3.0])
    pair[1, 0] = torch.tensor([3.0, 0.0])
    # Projection of sample 0: [0.5, 1.5] + [1.5, 0] - [1, 1] = [1, 0.5]: class 0 (correct).
    # Projection of sample 1: [1.5, 0.5] + [0, 2] - [1, 1] = [0.5, 1.5]: class 1 (correct).
    result = emap_gap(pair, torch.tensor([0, 1]))
    assert result == {"model_accuracy": 100.0, "projection_accuracy": 100.0, "gap": 0.0}
    result = emap_gap(pair, torch.tensor([1, 0]))  # swap labels: the model is always wrong
    assert result["model_accuracy"] == 0.0
    assert result["gap"] == 0.0


@pytest.mark.parametrize("name", ["lf", "hyperfuse", "mfas"])
def test_pair_logits_match_full_model(name):
    torch.manual_seed(0)
    model = build_model(name)
    x_p, x_a = inputs(5)
    fast = pair_logits(model, x_p, x_a, batch_size=7)
    torch.testing.assert_close(fast, pair_logits_full_model(model, x_p, x_a), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fast[2, 2], model.eval()(x_p[2:3], x_a[2:3])[0], rtol=1e-4, atol=1e-4)


def test_pair_logits_inside_the_encoder():
    torch.manual_seed(0)
    model = build_model("hyperfuse", fusion_position=2, hidden_dim=8)
    x_p, x_a = inputs(3)
    torch.testing.assert_close(pair_logits(model, x_p, x_a), pair_logits_full_model(model, x_p, x_a),
                               rtol=1e-4, atol=1e-4)


def test_wrong_auxiliary_index_picks_another_class():
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    index = wrong_auxiliary_index(labels, seed=3)
    assert torch.all(labels[index] != labels)
    assert torch.equal(index, wrong_auxiliary_index(labels, seed=3))
    with pytest.raises(ValueError, match="at least two classes"):
        wrong_auxiliary_index(torch.zeros(4, dtype=torch.long))


def test_gaussian_noise_has_the_requested_scale():
    x = torch.zeros(200_000)
    assert torch.equal(add_gaussian_noise(x, 0.0), x)
    assert float(add_gaussian_noise(x, 2.0).std()) == pytest.approx(2.0, rel=0.01)
    with pytest.raises(ValueError, match="got -1"):
        add_gaussian_noise(x, -1)


def test_corruption_unimodal_model_unaffected():
    torch.manual_seed(0)
    model = build_model("image_only")
    x_p, x_a = inputs(20)
    labels = torch.arange(20) % 10
    result = corruption_sensitivity(model, x_p, x_a, labels, noise_stds=(1.0,))
    assert set(result) == {"clean", "wrong_auxiliary", "noise_1", "drop_wrong_auxiliary", "drop_noise_1"}
    assert result["drop_wrong_auxiliary"] == 0.0
    assert result["drop_noise_1"] == 0.0


def test_corruption_changes_a_fusion_model():
    torch.manual_seed(0)
    model = build_model("lf")
    for layer in (model.head[0], model.head[2]):  # spread the untrained model's predictions over classes
        torch.nn.init.normal_(layer.weight, std=3.0)
    x_p, x_a = inputs(40)
    labels = model.eval()(x_p, x_a).argmax(1)  # labels the clean model gets all right
    result = corruption_sensitivity(model, x_p, x_a, labels, noise_stds=(3.0,))
    assert result["clean"] == 100.0
    assert result["drop_noise_3"] > 0


def test_class_distance_matrix_worked_example():
    # 1-D embeddings: class 0 at 0 and 2, class 1 at 10 and 14.
    embeddings = torch.tensor([[0.0], [2.0], [10.0], [14.0]])
    matrix = class_distance_matrix(embeddings, torch.tensor([0, 0, 1, 1]))
    # Within class 0: |0 - 2| = 2; within class 1: 4; between: (10 + 14 + 8 + 12) / 4 = 11.
    assert matrix.tolist() == [[2.0, 11.0], [11.0, 4.0]]
    assert separation_ratio(matrix) == pytest.approx(11 / 3)
    torch.testing.assert_close(normalised_distances(matrix), torch.tensor([[2 / 3, 11 / 3], [11 / 3, 4 / 3]], dtype=torch.float64))


def test_separation_ratio_is_scale_free():
    torch.manual_seed(0)
    embeddings, labels = torch.randn(30, 4), torch.arange(30) % 3
    matrix = class_distance_matrix(embeddings, labels)
    scaled = class_distance_matrix(7.5 * embeddings, labels)
    assert separation_ratio(scaled) == pytest.approx(separation_ratio(matrix))
    torch.testing.assert_close(normalised_distances(scaled), normalised_distances(matrix))


def test_class_distance_matrix_leaves_single_sample_classes_undefined():
    matrix = class_distance_matrix(torch.tensor([[0.0], [3.0]]), torch.tensor([0, 1]))
    assert math.isnan(matrix[0, 0])
    assert matrix[0, 1] == 3.0


def test_relative_error_worked_example():
    assert relative_error([90.0, 80.0, 95.0]).tolist() == [2.0, 4.0, 1.0]
    with pytest.raises(ValueError, match="below 100%"):
        relative_error([100.0, 90.0])


def test_head_inputs_are_what_the_head_receives():
    torch.manual_seed(0)
    model = build_model("hyperfuse", hidden_dim=8).eval()
    x_p, x_a = inputs(6)
    embedding = head_inputs(model, x_p, x_a, batch_size=4)
    torch.testing.assert_close(model.head(embedding), model(x_p, x_a))
    assert embedding.shape == (6, 48)


def test_generated_matrices_and_their_class_means():
    torch.manual_seed(0)
    model = build_model("hyperfuse", hidden_dim=4)
    _, x_a = inputs(6)
    matrices = generated_matrices(model, x_a)
    assert matrices.shape == (6, 4, 4)
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    means = mean_matrix_per_class(matrices, labels)
    torch.testing.assert_close(means[1], matrices[[1, 3, 5]].mean(0))
    with pytest.raises(ValueError, match="HyperFuse model"):
        generated_matrices(build_model("lf"), x_a)
    assert np.isfinite(means.numpy()).all()


def test_analyse_runs_on_trained_fixture_models(fixture_dataset, tmp_path):
    from hfcore.analysis import analyse_runs, analysis_frame, emap_table, plot_corruption, plot_distance_heatmaps
    from hfcore.experiments import run_avmnist

    runs, checkpoints = tmp_path / "runs", tmp_path / "checkpoints"
    for model in ("lf", "hyperfuse"):
        for seed in (0, 1):
            run_avmnist(model=model, seed=seed, epochs=1, hidden_dim=8, dataset=fixture_dataset,
                        results_dir=str(runs), checkpoint_dir=str(checkpoints), progress=False)
    output = tmp_path / "analysis"
    records = analyse_runs(runs, output, fixture_dataset, checkpoint_dir=checkpoints, pair_samples=20,
                           noise_stds=(1.0,), progress=False)
    assert sorted((r["config"], r["seed"]) for r in records) == [("hyperfuse", 0), ("hyperfuse", 1), ("lf", 0), ("lf", 1)]
    first = records[0]
    # EMAP's matched pairs are ordinary predictions: their accuracy is the model's on the same samples.
    from hfcore.analysis import evenly_spaced, load_trained_model, split_inputs

    model = load_trained_model(next(r for r in read_results(runs) if r["run_name"] == first["run_name"]), checkpoints)
    x_p, x_a, labels = split_inputs(fixture_dataset["test"], model)
    index = evenly_spaced(len(labels), 20)
    direct = 100 * float((model(x_p[index], x_a[index]).argmax(1) == labels[index]).float().mean())
    assert first["emap"]["model_accuracy"] == pytest.approx(direct)
    assert first["emap"]["gap"] == pytest.approx(first["emap"]["model_accuracy"] - first["emap"]["projection_accuracy"])
    assert len(first["class_distances"]) == 10
    assert (output / f"{first['run_name']}.json").is_file()
    # A second call reads the saved analyses back instead of recomputing them.
    mtime = (output / f"{first['run_name']}.json").stat().st_mtime_ns
    again = analyse_runs(runs, output, fixture_dataset, checkpoint_dir=checkpoints, pair_samples=20,
                         noise_stds=(1.0,), progress=False)
    assert (output / f"{first['run_name']}.json").stat().st_mtime_ns == mtime
    assert [r["run_name"] for r in again] == [r["run_name"] for r in records]
    frame = analysis_frame(records)
    table = emap_table(frame)
    assert list(table["seeds"]) == [2, 2]
    assert plot_corruption(frame).axes
    assert plot_distance_heatmaps(records, ["hyperfuse", "lf"]).axes
    with pytest.raises(ValueError, match="have no runs"):
        analyse_runs(runs, output, fixture_dataset, configs=["mfm"], checkpoint_dir=checkpoints)
    # Weights of one run gone (results are committed, weights are not): raise, or skip it on request.
    lost = next(r["run_name"] for r in read_results(runs) if r["model"] == "lf" and r["seed"] == 1)
    (checkpoints / f"{lost}.best.pt").unlink()
    with pytest.raises(FileNotFoundError, match=f"no weights for run {lost}"):
        analyse_runs(runs, tmp_path / "fresh", fixture_dataset, checkpoint_dir=checkpoints, pair_samples=20,
                     noise_stds=(1.0,), progress=False)
    kept = analyse_runs(runs, tmp_path / "fresh", fixture_dataset, checkpoint_dir=checkpoints, pair_samples=20,
                        noise_stds=(1.0,), progress=False, skip_missing_weights=True)
    assert sorted((r["config"], r["seed"]) for r in kept) == [("hyperfuse", 0), ("hyperfuse", 1), ("lf", 0)]


def test_load_trained_model_names_the_missing_checkpoint(tmp_path):
    from hfcore.analysis import load_trained_model

    record = {"run_name": "lf-seed0", "model": "lf", "model_options": {}}
    with pytest.raises(FileNotFoundError, match="no weights for run lf-seed0"):
        load_trained_model(record, tmp_path)


def test_explained_by_class_worked_examples():
    from hfcore.analysis import explained_by_class

    labels = torch.tensor([0, 0, 1, 1])
    # Matrices equal to their class mean: the class explains everything.
    pure = torch.tensor([1.0, 1.0, -1.0, -1.0]).view(4, 1, 1)
    assert explained_by_class(pure, labels) == pytest.approx(1.0)
    # Scalars 1, 3 (class 0) and 1, 3 (class 1): equal class means, nothing explained.
    assert explained_by_class(torch.tensor([1.0, 3.0, 1.0, 3.0]).view(4, 1, 1), labels) == pytest.approx(0.0)
    # Scalars 0, 2 | 4, 6: grand mean 3, total SS 9 + 1 + 1 + 9 = 20, between 2 * 4 + 2 * 4 = 16.
    assert explained_by_class(torch.tensor([0.0, 2.0, 4.0, 6.0]).view(4, 1, 1), labels) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="variance is zero"):
        explained_by_class(torch.ones(4, 2, 2), labels)


def test_plot_class_matrices_panels():
    from hfcore.analysis import plot_class_matrices

    means = torch.randn(10, 4, 4)
    fig = plot_class_matrices(means)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 11
    torch.testing.assert_close(torch.as_tensor(panels[0].images[0].get_array().data), means.mean(0))
    torch.testing.assert_close(torch.as_tensor(panels[3].images[0].get_array().data), means[2] - means.mean(0))


def test_corruption_figure_marks_single_seed():
    import pandas as pd

    from hfcore.analysis import plot_corruption

    frame = pd.DataFrame({"config": ["hyperfuse", "hyperfuse", "lf"], "seed": [0, 1, 0],
                          "drop_wrong_auxiliary": [20.0, 22.0, 28.0], "drop_noise_1": [16.0, 18.0, 40.0]})
    ax = plot_corruption(frame, ["hyperfuse", "lf"]).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["hyperfuse", "lf\n(1 seed)"]
    # The first kind's bars hold the means over seeds: (20 + 22) / 2 = 21 and 28.
    from matplotlib.container import BarContainer

    first = next(c for c in ax.containers if isinstance(c, BarContainer))
    assert [bar.get_height() for bar in first] == [21.0, 28.0]
