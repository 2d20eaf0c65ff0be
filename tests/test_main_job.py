import pytest

from hfcore.experiments import default_run_name, run_identity
from hfcore.grid import expand, load_spec
from hfcore.main_job import PROFILES, run_profile


def test_default_profile_covers_four_models_over_three_seeds():
    points = expand(load_spec(PROFILES["default"]))
    assert len(points) == 12
    assert {p.parameters["model"] for p in points} == {"image_only", "audio_only", "lf", "hyperfuse"}
    assert {p.parameters["seed"] for p in points} == {0, 1, 2}
    assert all(p.parameters["epochs"] == 12 for p in points)


def test_paper_profile_has_five_seeds():
    points = expand(load_spec(PROFILES["paper"]))
    assert {p.parameters["seed"] for p in points} == {0, 1, 2, 3, 4}


def test_run_identity_ignores_seed_and_paths():
    base = {"model": "lf", "seed": 0, "epochs": 12, "results_dir": "a"}
    assert run_identity(base) == run_identity({**base, "seed": 3, "results_dir": "b"})
    assert run_identity(base) != run_identity({**base, "epochs": 13})
    assert default_run_name(base) == f"lf-{run_identity(base)}-seed0"


def test_unknown_profile_lists_valid_ones():
    with pytest.raises(ValueError, match="default, paper, smoke"):
        run_profile("huge")


def test_missing_data_fails_before_any_run(tmp_path):
    from hfcore.data.paths import DataNotFoundError

    with pytest.raises(DataNotFoundError, match="Searched"):
        run_profile("smoke", results_root=tmp_path / "results", data_dir=str(tmp_path / "missing"))
    assert not (tmp_path / "results").exists()
