"""Results files: one JSON file per run, written atomically, with provenance.

Every record carries the code version (git commit, and whether the work tree had
uncommitted changes), the versions of the packages that produce the numbers, the Python
version and platform, the UTC time and the wall time. An existing file is never replaced
unless the caller asks for it.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from .atomic import atomic_path

logger = logging.getLogger(__name__)

TRACKED_PACKAGES = ("torch", "numpy", "scipy", "scikit-learn", "papermill", "hfcore")
REPO_ROOT = Path(__file__).resolve().parents[1]


class ResultExistsError(FileExistsError):
    """Raised when a results file exists and overwriting was not requested."""


def code_version(repo: Path = REPO_ROOT) -> dict[str, Any]:
    """Return the git commit of ``repo`` and whether tracked files have uncommitted changes.

    Outside a git checkout the commit is None and the package version is recorded instead.
    """
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "hfcore", "notebooks", "pyproject.toml"],
            cwd=repo, capture_output=True, text=True, check=True, timeout=10,
        ).stdout
        return {"git_commit": commit, "dirty": bool(status.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "dirty": None, "package_version": package_versions(("hfcore",))["hfcore"]}


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str | None]:
    """Return the installed version of each distribution in ``names`` (None when absent)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def provenance() -> dict[str, Any]:
    """Return the code version, package versions, Python version, platform and UTC time."""
    return {
        "code_version": code_version(),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.machine(),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_json_atomic(path: str | Path, record: Any, *, overwrite: bool = False) -> Path:
    """Write ``record`` as JSON to ``path`` through a temporary file and a rename.

    Raises ResultExistsError when ``path`` exists and ``overwrite`` is False, so an earlier
    result is never replaced silently. A failed write leaves any earlier file untouched.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise ResultExistsError(
            f"{path} already exists; delete it, choose another results folder, or pass overwrite=True to replace it"
        )
    with atomic_path(path) as temporary, open(temporary, "w") as stream:
        json.dump(record, stream, indent=2, sort_keys=False)
        stream.write("\n")
        stream.flush()
        os.fsync(stream.fileno())
    logger.info("wrote %s", path)
    return path


def read_results(folder: str | Path, pattern: str = "*.json") -> list[dict]:
    """Read every results file matching ``pattern`` in ``folder`` (not recursive), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"results folder {folder} does not exist; run the experiments first")
    return [json.loads(path.read_text()) for path in sorted(folder.glob(pattern))]
