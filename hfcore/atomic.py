"""Atomic file writes: write to a temporary file in the target's folder, then rename.

A reader never sees a half-written file, and a failed or interrupted write leaves any earlier
file at the path untouched. A write that fails because the folder is read-only or the disk is
full raises an OSError whose message gives the cause and the path.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import Iterator


# Errors of the storage rather than of the caller: what each means, and what to do.
STORAGE_ERRORS = {
    errno.EROFS: ("the folder is on a read-only file system", "choose a writable folder"),
    errno.EACCES: ("no permission to write in the folder", "fix its permissions or choose another folder"),
    errno.EPERM: ("no permission to write in the folder", "fix its permissions or choose another folder"),
    errno.ENOSPC: ("the disk is full", "free space or choose a folder on another disk"),
    errno.EDQUOT: ("the disk quota is exceeded", "free space or choose a folder on another disk"),
}


def _is_storage_error(error: BaseException, own_files: tuple[str, ...]) -> bool:
    # Only errors about this write: one that names another file came from the caller's own code.
    return (isinstance(error, OSError) and error.errno in STORAGE_ERRORS
            and (error.filename is None or str(error.filename) in own_files))


def _storage_error(error: OSError, path: Path) -> OSError:
    reason, advice = STORAGE_ERRORS[error.errno]
    return OSError(error.errno, f"could not write {path}: {reason} ({error.strerror}); {advice}. "
                                "Any earlier file at that path is unchanged", str(path))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it to ``path``.

    The file gets the permissions a newly created file would get (0666 less the umask), not
    the 0600 of ``tempfile.mkstemp``. On an exception the temporary file is removed.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        if _is_storage_error(error, (str(path), str(path.parent))):
            raise _storage_error(error, path) from error
        raise
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if _is_storage_error(error, (str(path), str(path.parent), temporary)):
            raise _storage_error(error, path) from error
        raise
