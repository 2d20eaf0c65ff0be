import json

import pytest
import torch

from hfcore import training
from hfcore.experiments import run_avmnist, split_tensors
from hfcore.models import build_model
from hfcore.results import ResultExistsError
from hfcore.training import TrainConfig, classification_metrics, train


def test_classification_metrics_worked_example():
    # Labels 0,0,1,2 with predictions 0,1,1,1: 2 of 4 right; class 0 1/2, class 1 1/1, class 2 0/1.
    logits = torch.tensor([[2.0, 0, 0], [0, 2.0, 0], [0, 2.0, 0], [0, 2.0, 0]])
    labels = torch.tensor([0, 0, 1, 2])
    metrics = classification_metrics(logits, labels, num_classes=4)
    assert metrics["accuracy"] == 0.5
    assert metrics["per_class_accuracy"] == [0.5, 1.0, 0.0, None]
    expected_loss = torch.nn.functional.cross_entropy(logits, labels).item()
    assert metrics["loss"] == pytest.approx(expected_loss)


def fit(dataset, seed, epochs=2, checkpoint=None, model="hyperfuse"):
    torch.manual_seed(seed)
    network = build_model(model, **({"hidden_dim": 8} if model == "hyperfuse" else {}))
    config = TrainConfig(epochs=epochs, batch_size=32, seed=seed)
    data = [split_tensors(dataset[name], network.modalities) for name in ("train", "val")]
    outcome = train(network, *data, config, checkpoint_path=checkpoint, run_key="test", progress=False)
    return network, outcome


def test_same_seed_gives_same_history_and_weights(fixture_dataset):
    first, first_outcome = fit(fixture_dataset, seed=1)
    second, second_outcome = fit(fixture_dataset, seed=1)
    assert first_outcome.history == second_outcome.history
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name


def test_other_seed_gives_other_weights(fixture_dataset):
    first, _ = fit(fixture_dataset, seed=1, epochs=1)
    second, _ = fit(fixture_dataset, seed=2, epochs=1)
    assert not torch.equal(first.head[0].weight, second.head[0].weight)


def test_interrupted_run_resumes_to_same_result(fixture_dataset, tmp_path, monkeypatch):
    uninterrupted, reference = fit(fixture_dataset, seed=4, epochs=3)

    calls = {"count": 0}
    real_evaluate = training.evaluate

    def evaluate_then_crash(*args, **kwargs):
        calls["count"] += 1
        if calls["count"] == 3:
            raise KeyboardInterrupt  # dies during epoch 3, after epoch 2's checkpoint
        return real_evaluate(*args, **kwargs)

    checkpoint = tmp_path / "run.pt"
    monkeypatch.setattr(training, "evaluate", evaluate_then_crash)
    with pytest.raises(KeyboardInterrupt):
        fit(fixture_dataset, seed=4, epochs=3, checkpoint=checkpoint)
    monkeypatch.setattr(training, "evaluate", real_evaluate)
    assert torch.load(checkpoint, weights_only=False)["epoch"] == 2

    resumed, outcome = fit(fixture_dataset, seed=4, epochs=3, checkpoint=checkpoint)
    assert outcome.resumed_from_epoch == 3
    assert outcome.history == reference.history
    for (name, a), (_, b) in zip(uninterrupted.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name


def test_best_validation_epoch_weights_are_loaded(fixture_dataset):
    network, outcome = fit(fixture_dataset, seed=0, epochs=3, model="image_only")
    best = max(outcome.history, key=lambda row: row["val_accuracy"])
    assert outcome.best_epoch == best["epoch"]
    val = training.evaluate(network, split_tensors(fixture_dataset["val"], network.modalities))
    assert val["accuracy"] == pytest.approx(best["val_accuracy"])


def test_nan_loss_stops_with_epoch_and_step(fixture_dataset):
    torch.manual_seed(0)
    network = build_model("image_only")
    with torch.no_grad():
        network.head[2].bias.fill_(float("nan"))
    data = [split_tensors(fixture_dataset[name], network.modalities) for name in ("train", "val")]
    with pytest.raises(FloatingPointError, match="epoch 1, step 1"):
        train(network, *data, TrainConfig(epochs=1), progress=False)


def test_early_stopping_ends_after_patience(fixture_dataset):
    torch.manual_seed(0)
    network = build_model("image_only")
    data = [split_tensors(fixture_dataset[name], network.modalities) for name in ("train", "val")]
    outcome = train(network, *data, TrainConfig(epochs=30, patience=1, lr=1e-6), progress=False)
    assert outcome.stopped_early
    assert len(outcome.history) == outcome.best_epoch + 1


@pytest.mark.parametrize(
    "field,value", [("epochs", 0), ("batch_size", -1), ("lr", 0.0), ("optimizer", "lbfgs"), ("precision", "fp8")]
)
def test_train_config_rejects_invalid_values(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_run_writes_complete_results_file(fixture_data, fixture_dataset, tmp_path):
    record = run_avmnist(model="lf", epochs=1, data_dir=str(fixture_data), results_dir=str(tmp_path),
                         checkpoint_dir=str(tmp_path / "ckpt"), run_name="lf-test", progress=False,
                         dataset=fixture_dataset)
    saved = json.loads((tmp_path / "lf-test.json").read_text())
    assert saved == json.loads(json.dumps(record))
    assert 0.0 <= saved["metrics"]["test_accuracy"] <= 1.0
    assert len(saved["metrics"]["test_per_class_accuracy"]) == 10
    assert saved["parameters"]["seed"] == 0
    assert saved["parameter_count"] > 0
    assert saved["wall_seconds"] > 0
    assert {"code_version", "packages", "python"} <= set(saved["provenance"])
    assert saved["provenance"]["packages"]["torch"].startswith("2.")
    assert (tmp_path / "ckpt" / "lf-test.best.pt").is_file()
    assert not (tmp_path / "ckpt" / "lf-test.pt").exists()
    with pytest.raises(ResultExistsError, match="already exists"):
        run_avmnist(model="lf", epochs=1, results_dir=str(tmp_path), run_name="lf-test", dataset=fixture_dataset)


@pytest.mark.parametrize(
    "params,message",
    [
        ({"model": "transformer"}, "valid names"),
        ({"epochs": 0}, "epochs"),
        ({"hidden_dim": "8"}, "hidden_dim"),
        ({"train_fraction": 1.5}, "train_fraction"),
        ({"primary": "text"}, "primary"),
        ({"model": "hyperfuse", "generator": "lowrank"}, "generator must be one of"),
        ({"model": "hyperfuse", "rank": 4}, "rank=4 needs generator='factorized'"),
        ({"model": "hyperfuse", "generator": "factorized", "rank": -1}, "rank must be a positive integer"),
        ({"precision": "half"}, "precision must be one of"),
        ({"lr": "abc"}, r"lr must be a number, got 'abc' \(str\); under papermill pass it without quotes"),
        ({"lr": 0}, "lr must be positive"),
        ({"weight_decay": -1e-4}, "weight_decay must be 0 or positive"),
        ({"weight_decay": "1e-4"}, "weight_decay must be a number"),
        ({"patience": 0}, "patience must be a positive integer or None"),
        ({"fusion_position": "2"}, "fusion_position must be a non-negative integer"),
        ({"aux_mlp": "False"}, "aux_mlp must be True or False"),
        ({"pca_energy": "0.25"}, "pca_energy must be a number"),
        ({"weight_decay": float("nan")}, "weight_decay must be 0 or positive, got nan"),
    ],
)
def test_run_rejects_invalid_parameters_before_loading_data(params, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        run_avmnist(**{"model": "lf", **params}, data_dir=str(tmp_path / "no-data"), results_dir=str(tmp_path))


def test_bfloat16_training_is_seeded_and_close_to_float32(fixture_dataset):
    def run(precision):
        torch.manual_seed(0)
        network = build_model("lf")
        config = TrainConfig(epochs=1, batch_size=32, seed=0, precision=precision)
        data = [split_tensors(fixture_dataset[name], network.modalities) for name in ("train", "val")]
        outcome = train(network, *data, config, progress=False)
        return network, outcome

    network, first = run("bfloat16")
    _, second = run("bfloat16")
    _, reference = run("float32")
    assert first.history == second.history
    # bfloat16 keeps 8 significant bits: one epoch's loss moves, but only in the second digit.
    assert first.history[0]["train_loss"] == pytest.approx(reference.history[0]["train_loss"], rel=0.05)
    val = split_tensors(fixture_dataset["val"], network.modalities)
    logits = training.predict_logits(network, val, precision="bfloat16")
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, training.predict_logits(network, val), atol=0.1, rtol=0.05)


def test_factorized_hyperfuse_run_records_its_generator(fixture_dataset, tmp_path):
    record = run_avmnist(model="hyperfuse", hidden_dim=16, generator="factorized", rank=4, epochs=1,
                         results_dir=str(tmp_path), checkpoint_dir=str(tmp_path / "ckpt"), progress=False,
                         dataset=fixture_dataset)
    assert record["model_options"]["generator"] == "factorized"
    assert record["model_options"]["rank"] == 4
    full = run_avmnist(model="hyperfuse", hidden_dim=16, epochs=1, results_dir=str(tmp_path),
                       checkpoint_dir=str(tmp_path / "ckpt"), progress=False, dataset=fixture_dataset)
    # Generator parameters: 16*4 + 4 gains and 2*16*4 for U, V, against 16*256 + 256 in full.
    assert full["parameter_count"] - record["parameter_count"] == (16 * 256 + 256) - (16 * 4 + 4 + 2 * 16 * 4)


RUN_SCRIPT = """
import os, sys, time, torch
from hfcore.experiments import run_avmnist
if os.environ.get("SLOW_STEPS"):
    step = torch.optim.Adam.step
    def slow_step(self, *args, **kwargs):
        time.sleep(float(os.environ["SLOW_STEPS"]))
        return step(self, *args, **kwargs)
    torch.optim.Adam.step = slow_step
data, cache, results, checkpoints = sys.argv[1:5]
run_avmnist(model="hyperfuse", hidden_dim=8, epochs=3, seed=3, data_dir=data, cache_dir=cache, results_dir=results,
            checkpoint_dir=checkpoints, run_name="r", progress=False)
"""


def test_run_avmnist_sigkill_mid_epoch_resumes(fixture_data, tmp_path):
    import os
    import subprocess
    import sys
    import time

    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def start(results, checkpoints, slow=None):
        arguments = [sys.executable, "-c", RUN_SCRIPT, str(fixture_data), str(tmp_path / "cache"), str(results),
                     str(checkpoints)]
        return subprocess.Popen(arguments, env={**env, **({"SLOW_STEPS": slow} if slow else {})},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    reference = start(tmp_path / "reference", tmp_path / "reference-checkpoints")
    assert reference.wait(timeout=300) == 0, reference.stderr.read()[-2000:]

    killed = start(tmp_path / "resumed", tmp_path / "checkpoints", slow="0.3")
    checkpoint = tmp_path / "checkpoints" / "r.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # inside epoch 2: each of its steps now sleeps 0.3 s
    killed.kill()
    killed.wait()
    assert torch.load(checkpoint, weights_only=False)["epoch"] == 1
    assert not (tmp_path / "resumed" / "r.json").exists()

    resumed = start(tmp_path / "resumed", tmp_path / "checkpoints")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()[-2000:]
    ours = json.loads((tmp_path / "resumed" / "r.json").read_text())
    theirs = json.loads((tmp_path / "reference" / "r.json").read_text())
    assert ours["resumed_from_epoch"] == 2
    assert ours["metrics"]["history"] == theirs["metrics"]["history"]
    assert ours["metrics"]["test_accuracy"] == theirs["metrics"]["test_accuracy"]
    best_ours = torch.load(tmp_path / "checkpoints" / "r.best.pt")
    best_theirs = torch.load(tmp_path / "reference-checkpoints" / "r.best.pt")
    assert all(torch.equal(best_ours[name], best_theirs[name]) for name in best_theirs)


def test_train_nan_keeps_last_good_checkpoint(fixture_dataset, tmp_path, monkeypatch):
    torch.manual_seed(0)
    network = build_model("image_only")
    data = [split_tensors(fixture_dataset[name], network.modalities) for name in ("train", "val")]
    real_save = training._atomic_torch_save

    def save_then_diverge(*args, **kwargs):
        real_save(*args, **kwargs)
        with torch.no_grad():
            network.head[2].bias.fill_(float("nan"))  # the next step's loss is NaN

    monkeypatch.setattr(training, "_atomic_torch_save", save_then_diverge)
    checkpoint = tmp_path / "run.pt"
    with pytest.raises(FloatingPointError, match="epoch 2, step 1") as error:
        train(network, *data, TrainConfig(epochs=3), checkpoint_path=checkpoint, progress=False)
    assert "checkpoint of epoch 1 is kept" in str(error.value)
    saved = torch.load(checkpoint, weights_only=False)
    assert saved["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in saved["model"].values() if v.is_floating_point())


def test_a_second_run_with_the_same_name_fails_while_the_first_runs(fixture_dataset, tmp_path):
    from hfcore.locks import BusyError, exclusive_lock

    with exclusive_lock(tmp_path / "same.json"):  # the first run holds the results file's lock
        with pytest.raises(BusyError, match=r"same\.json is being computed by pid \d+"):
            run_avmnist(model="lf", epochs=1, results_dir=str(tmp_path), checkpoint_dir=str(tmp_path / "ckpt"),
                        run_name="same", progress=False, dataset=fixture_dataset)
    assert not (tmp_path / "same.json").exists()
    assert not (tmp_path / "ckpt" / "same.pt").exists()  # the holder's checkpoint was not touched either


def test_options_a_model_ignores_are_listed_in_the_record(fixture_dataset, tmp_path, caplog):
    record = run_avmnist(model="lmf", hidden_dim=16, generator="factorized", rank=4, epochs=1,
                         results_dir=str(tmp_path), checkpoint_dir=str(tmp_path / "ckpt"), progress=False,
                         dataset=fixture_dataset)
    # LMF's builder takes a rank of its own, but run_avmnist passes rank to HyperFuse only.
    assert {"generator", "rank", "block"} <= set(record["ignored_parameters"])
    assert "rank" not in record["model_options"]
    assert "does not use rank=4" in caplog.text
    hyperfuse = run_avmnist(model="hyperfuse", hidden_dim=8, block="II", epochs=1, results_dir=str(tmp_path),
                            checkpoint_dir=str(tmp_path / "ckpt"), progress=False, dataset=fixture_dataset)
    assert not {"hidden_dim", "block"} & set(hyperfuse["ignored_parameters"])
    assert hyperfuse["run_name"].startswith("hyperfuse-blockII-")


def test_same_run_name_in_two_results_folders_cannot_share_a_checkpoint(fixture_dataset, tmp_path):
    from hfcore.locks import BusyError, exclusive_lock

    with exclusive_lock(tmp_path / "ckpt" / "twin.pt"):  # a run of this name writes this checkpoint
        with pytest.raises(BusyError, match=r"twin\.pt is being computed"):
            run_avmnist(model="lf", epochs=1, results_dir=str(tmp_path / "other"),
                        checkpoint_dir=str(tmp_path / "ckpt"), run_name="twin", progress=False,
                        dataset=fixture_dataset)
