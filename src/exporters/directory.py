"""The results directory as a refresh sees it: the newest usable results file and a signature
that changes whenever its content may have (docs/exporters.md §7).

A name like a results file that cannot be opened as one (a symbolic link to itself or to
nothing, a FIFO, a directory) is passed over, so it never hides the files beside it; the
refresh counts it (``<set>_exporter_skipped_files{reason}``). The signature holds the file's
inode and its change time (ctime) besides its size and mtime: the kernel sets the ctime on every
write and on every ``utime``, so content rewritten in place behind the same size and mtime is
noticed at the next refresh interval.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Optional

from advisor_core.analysis import analysis_path
from advisor_core.results_files import ResultsFileError, results_file_candidates

__all__ = ["ATTEMPTS", "Skipped", "newest_signature"]

#: Looks at the directory for a newest file that vanished (a rotation) before giving up.
ATTEMPTS = 3

#: (path, reason) of a name passed over: ``symlink_loop``, ``dangling_link``, ``not_a_file``.
Skipped = list[tuple[Path, str]]


def _identity(info: os.stat_result) -> tuple:
    return (info.st_mtime_ns, info.st_size, info.st_ino, info.st_ctime_ns)


def _analysis_signature(results_path: Path) -> Optional[tuple]:
    try:
        info = os.stat(analysis_path(results_path))
    except OSError:  # absent, or unreadable: reading it says which, and counts it
        return None
    return _identity(info)


def _scan(directory: Path, skipped: Skipped) -> Optional[tuple]:
    """The signature of the newest usable file, () when there is none, None when a name
    vanished between listing and ``stat`` (list again). Raises OSError or ResultsFileError."""
    for path in results_file_candidates(directory):
        try:
            info = os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                skipped.append((path, "symlink_loop"))
                continue
            if os.path.islink(path):
                # A link to nothing usable (no target, a target name too long, a directory it
                # may not search): this name only, never the directory.
                missing = exc.errno in (errno.ENOENT, errno.ENOTDIR)
                skipped.append((path, "dangling_link" if missing else "unusable_link"))
                continue
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                raise ResultsFileError(f"{path}: cannot stat: {exc.strerror or exc}",
                                       "unreadable") from exc
            return None  # gone since the listing: a rotation
        if not stat.S_ISREG(info.st_mode):
            skipped.append((path, "not_a_file"))
            continue
        return (str(path), *_identity(info), _analysis_signature(path))
    return ()


def newest_signature(directory: Path) -> tuple[tuple, Skipped]:
    """(signature, names passed over) of the newest usable results file of ``directory``.

    The signature is (path, mtime, size, inode, ctime) of the file and the same four of its
    analysis CSV (None when absent); () when no usable results file is there. The names passed
    over are those newer than the file chosen. Raises OSError (listing) or ResultsFileError
    (``vanished``: names keep vanishing; ``unreadable``: a name cannot be looked at).
    """
    for _ in range(ATTEMPTS):
        skipped: Skipped = []
        signature = _scan(directory, skipped)
        if signature is not None:
            return signature, skipped
    raise ResultsFileError(f"{directory}: the newest results file keeps vanishing", "vanished")
