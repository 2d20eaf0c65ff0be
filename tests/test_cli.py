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
