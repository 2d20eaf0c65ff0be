"""pyproject.toml, environment.yml and the Dockerfile must install the same dependencies."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def pyproject_requirements() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])


def environment_requirements() -> set[str]:
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_lists = [item["pip"] for item in environment["dependencies"] if isinstance(item, dict)]
    return {line for line in pip_lists[0] if not line.startswith("-e")}


def dockerfile_requirements() -> set[str]:
    text = (ROOT / "Dockerfile").read_text()
    install = re.search(r'RUN pip install --no-cache-dir \\\n(.*?)\n\n', text, re.S).group(1)
    return set(re.findall(r'"([^"]+)"', install))


def test_environment_yml_matches_pyproject():
    assert environment_requirements() == pyproject_requirements()


def test_dockerfile_matches_pyproject():
    assert dockerfile_requirements() == pyproject_requirements()


def test_python_versions_agree():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda_python = next(d for d in environment["dependencies"] if isinstance(d, str) and d.startswith("python="))
    docker_python = re.search(r"FROM python:(\d+\.\d+)", (ROOT / "Dockerfile").read_text()).group(1)
    assert conda_python == f"python={docker_python}"


def test_dockerfile_passes_hadolint():
    import shutil
    import subprocess
    import sys

    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
