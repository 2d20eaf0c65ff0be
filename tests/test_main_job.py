import pytest

from hfcore.experiments import default_run_name, run_identity
from hfcore.main_job import PROFILES, profile_runs, run_profile


def test_default_profile_covers_four_models_over_three_seeds():
    runs = profile_runs(PROFILES["default"])
    assert len(runs) == 12
    assert {r["model"] for r in runs} == {"image_only", "audio_only", "lf", "hyperfuse"}
    assert {r["seed"] for r in runs} == {0, 1, 2}


def test_paper_profile_has_five_seeds():
    assert PROFILES["paper"].seeds == (0, 1, 2, 3, 4)


def test_run_identity_ignores_seed_and_paths_but_not_settings():
    base = {"model": "lf", "seed": 0, "epochs": 12, "results_dir": "a"}
    assert run_identity(base) == run_identity({**base, "seed": 3, "results_dir": "b"})
    assert run_identity(base) != run_identity({**base, "epochs": 13})
    assert default_run_name(base) == f"lf-{run_identity(base)}-seed0"


def test_job_run_name_matches_recorded_identity(fixture_dataset, tmp_path):
    from hfcore.experiments import resolve_params, run_avmnist

    params = {"model": "image_only", "seed": 1, "epochs": 1, "results_dir": str(tmp_path), "progress": False}
    name = default_run_name(resolve_params(params))
    record = run_avmnist(**params, checkpoint_dir=str(tmp_path / "ckpt"), dataset=fixture_dataset)
    assert record["run_name"] == name
    assert name == f"image_only-{record['run_identity']}-seed1"


def test_resolve_params_rejects_unknown_names():
    from hfcore.experiments import resolve_params

    with pytest.raises(ValueError, match="hiden_dim"):
        resolve_params({"model": "lf", "hiden_dim": 3})


def test_unknown_profile_lists_valid_ones():
    with pytest.raises(ValueError, match="default, paper, smoke"):
        run_profile("huge")


def test_missing_data_fails_before_any_run(tmp_path):
    from hfcore.data.paths import DataNotFoundError

    with pytest.raises(DataNotFoundError, match="Searched"):
        run_profile("smoke", results_root=tmp_path / "results", data_dir=str(tmp_path / "missing"))
    assert not (tmp_path / "results").exists()
