"""The results directory as a refresh sees it: the newest usable results file and a signature
that changes whenever its content may have (docs/exporters.md §7).

A name like a results file that cannot be opened as one (a symbolic link to itself or to
nothing, a FIFO, a directory) is passed over, so it never hides the files beside it; the
refresh counts it (``<set>_exporter_skipped_files{reason}``). The signature holds the file's
inode and its change time (ctime) besides its size and mtime: the kernel sets the ctime on every
write and on every ``utime``, so content rewritten in place behind the same size and mtime is
noticed at the next refresh interval.

Between changes a refresh looks only at the directory's own stat and the chosen file's (and its
analysis CSV's): the names are listed again when the directory's mtime or ctime moves
(``Listing``), which every create, delete and rename of a name does.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from pathlib import Path
from typing import Optional

from advisor_core.data.analysis import analysis_path
from advisor_core.data.results_files import ResultsFileError, results_file_candidates

__all__ = ["ATTEMPTS", "Listing", "Skipped", "newest_signature"]

#: Looks at the directory for a newest file that vanished (a rotation) before giving up.
ATTEMPTS = 3

#: (path, reason) of a name passed over: ``symlink_loop``, ``dangling_link``, ``not_a_file``.
Skipped = list[tuple[Path, str]]


#: A listing is reused only once the directory's mtime is older than this (ns): a name added in
#: the same tick of the filesystem's clock as the listing leaves the mtime unchanged.
_SETTLE_NS = 2_000_000_000


class Listing:
    """The results-file names of one directory, listed again only when its stat changes."""

    def __init__(self) -> None:
        self._key: Optional[tuple] = None
        self._names: list[Path] = []

    def forget(self) -> None:
        """List again at the next look (a name vanished, or a periodic full look is due)."""
        self._key = None

    def candidates(self, directory: Path) -> list[Path]:
        """``results_file_candidates`` of ``directory``, reused while its stat is unchanged.

        Raises OSError when the directory cannot be looked at or listed.
        """
        info = os.stat(directory)
        key = (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_ctime_ns)
        if key != self._key:
            self._names = results_file_candidates(directory)
            settled = time.time_ns() - info.st_mtime_ns > _SETTLE_NS
            self._key = key if settled else None
        return self._names


def _identity(info: os.stat_result) -> tuple:
    return (info.st_mtime_ns, info.st_size, info.st_ino, info.st_ctime_ns)


def _analysis_signature(results_path: Path) -> Optional[tuple]:
    try:
        info = os.stat(analysis_path(results_path))
    except OSError:  # absent, or unreadable: reading it says which, and counts it
        return None
    return _identity(info)


def _scan(directory: Path, skipped: Skipped, listing: Listing) -> Optional[tuple]:
    """The signature of the newest usable file, () when there is none, None when a name
    vanished between listing and ``stat`` (list again). Raises OSError or ResultsFileError."""
    for path in listing.candidates(directory):
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


def newest_signature(directory: Path,
                     listing: Optional[Listing] = None) -> tuple[tuple, Skipped]:
    """(signature, names passed over) of the newest usable results file of ``directory``.

    The signature is (path, mtime, size, inode, ctime) of the file and the same four of its
    analysis CSV (None when absent); () when no usable results file is there. The names passed
    over are those newer than the file chosen. Raises OSError (listing) or ResultsFileError
    (``vanished``: names keep vanishing; ``unreadable``: a name cannot be looked at).
    ``listing``: the names of the last look, reused while the directory's stat is unchanged.
    """
    listing = Listing() if listing is None else listing
    for _ in range(ATTEMPTS):
        skipped: Skipped = []
        signature = _scan(directory, skipped, listing)
        if signature is not None:
            return signature, skipped
        listing.forget()
    raise ResultsFileError(f"{directory}: the newest results file keeps vanishing", "vanished")
