import pytest

from hfcore.__main__ import main


def test_missing_data_folder_prints_error_without_traceback(tmp_path, capsys):
    status = main(["main", "--profile", "smoke", "--data-dir", str(tmp_path / "missing"),
                   "--results-dir", str(tmp_path / "results")])
    error = capsys.readouterr().err
    assert status == 2
    assert error.startswith("error: no data folder")
    assert "--data-dir DIR" in error
    assert "Traceback" not in error


def test_unknown_profile_is_rejected_by_argument_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["main", "--profile", "huge"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'huge'" in capsys.readouterr().err


def test_calibrate_accepts_empty_setting_lists(monkeypatch):
    from hfcore import calibration

    received = {}
    monkeypatch.setattr(calibration, "calibrate", lambda **kwargs: received.update(kwargs))
    monkeypatch.setattr(calibration, "calibration_table", lambda: "table")
    assert main(["calibrate", "--snr-db", "-8", "-12", "--pca-energy", "--seeds", "0"]) == 0
    assert received["snr_values"] == [-8.0, -12.0]
    assert received["pca_energies"] == []
    assert received["seeds"] == [0]


@pytest.mark.parametrize(
    "options, message",
    [
        (["--model", "mfm", "--block", "II"], "model 'mfm' does not use --block; leave it out"),
        (["--model", "lmf", "--rank", "2"], "model 'lmf' does not use --rank"),
        (["--model", "lf", "--hidden-dim", "32", "--num-blocks", "2"], "does not use --hidden-dim, --num-blocks; leave them"),
        (["--model", "hyperfuse", "--block", "V"], "block must be one of"),
        (["--model", "hyperfuse", "--weight-decay", "-0.1"], "--weight-decay must be 0 or positive, got -0.1"),
        (["--model", "hyperfuse", "--lr", "0"], "--lr must be positive, got 0.0"),
        (["--model", "fusionnet"], "unknown model 'fusionnet'; valid names: audio_only, dynamic_mlp_c"),
    ],
)
def test_train_rejects_bad_options_before_loading_data(tmp_path, capsys, options, message):
    status = main(["train", *options, "--data-dir", str(tmp_path / "missing"), "--results-dir", str(tmp_path)])
    assert status == 2
    assert message in capsys.readouterr().err


def test_train_passes_every_option_to_the_run(monkeypatch, tmp_path):
    from hfcore import experiments

    received = {}
    monkeypatch.setattr(experiments, "run_avmnist", lambda **kwargs: received.update(kwargs) or {
        "run_name": "r", "metrics": {"test_accuracy": 0.5, "best_epoch": 1}})
    argv = ["train", "--model", "hyperfuse", "--lr", "0.002", "--weight-decay", "0.01", "--num-blocks", "2",
            "--fusion-position", "3", "--primary", "audio", "--generator", "factorized", "--rank", "4",
            "--precision", "bfloat16"]
    assert main(argv) == 0
    assert {k: received[k] for k in ("lr", "weight_decay", "num_blocks", "fusion_position", "primary", "generator",
                                     "rank", "precision")} == {
        "lr": 0.002, "weight_decay": 0.01, "num_blocks": 2, "fusion_position": 3, "primary": "audio",
        "generator": "factorized", "rank": 4, "precision": "bfloat16"}
    # Options not given are left to run_avmnist's defaults.
    assert "block" not in received
    assert "hidden_dim" not in received


def test_train_points_to_overwrite_on_the_command_line(tmp_path, capsys, monkeypatch):
    from hfcore import experiments
    from hfcore.results import ResultExistsError

    def reject(**kwargs):
        raise ResultExistsError("results/x.json already exists; pass overwrite=True")

    monkeypatch.setattr(experiments, "run_avmnist", reject)
    assert main(["train", "--model", "lf"]) == 2
    assert "(on the command line: --overwrite)" in capsys.readouterr().err
