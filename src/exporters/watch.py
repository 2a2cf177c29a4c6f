"""How the refresh thread sleeps: until the results directory changes, a wake-up, or a timeout.

On Linux the directory is watched with inotify (``inotify_simple``, a thin ctypes wrapper): a
create, delete, rename, write or attribute change of a name in it, or of the directory itself,
ends the sleep, and between changes the thread does not wake at all (each wake costs ~0.25 ms
of CPU on a busy 2-core machine: every 2 s, most of an idle exporter's budget). The directory
watched is the one its path resolves to (``os.path.realpath``); when the path's last component
is a symbolic link, the link's own directory is watched too, so a link retargeted (``ln -sfn``)
ends the sleep and the caller watches the new target (``target_moved``). Without inotify
(another OS, no instance or watch left, a directory that does not exist yet) and on a network
filesystem (NFS, CIFS/SMB, FUSE, 9p, Ceph, GlusterFS...: no event for a write made by another
host) the caller sleeps ``--refresh-interval`` and polls, as before.
"""

from __future__ import annotations

import logging
import os
import select
import time
from pathlib import Path
from typing import Any, Optional

logger = logging.getLogger("exporters")

try:
    from inotify_simple import INotify, flags  # type: ignore[import-untyped]
except ImportError:  # not installed, or not Linux: polling
    INotify = None  # type: ignore[assignment,misc]

__all__ = ["Sleeper", "filesystem_type", "is_remote"]

#: Filesystem types on which inotify sees only this host's changes (``fuse.*`` too).
REMOTE_TYPES = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs",
                          "lustre", "gpfs", "afs", "ncpfs", "fuse", "fuseblk", "davfs",
                          "virtiofs", "beegfs", "orangefs", "ocfs2", "gfs2"})
#: A failed inotify instance is created again at most this often (seconds).
RETRY_NOTIFY_SECONDS = 60.0
_DIR_MASK_NAMES = ("CREATE", "DELETE", "MOVED_FROM", "MOVED_TO", "MODIFY", "CLOSE_WRITE",
                   "ATTRIB", "DELETE_SELF", "MOVE_SELF")
_LINK_MASK_NAMES = ("CREATE", "DELETE", "MOVED_FROM", "MOVED_TO")


def _unescape(field: str) -> str:
    """A path of /proc/self/mountinfo: space, tab, newline and backslash are octal escapes."""
    return (field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")
            .replace("\\134", "\\"))


def filesystem_type(path: str, mountinfo: str = "/proc/self/mountinfo") -> Optional[str]:
    """The type of the filesystem holding ``path`` (a resolved path), or None when unknown."""
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as lines:
            best, found = -1, None
            for line in lines:
                fields = line.split()
                if " - " not in line or len(fields) < 5:
                    continue
                point = _unescape(fields[4])
                inside = path == point or path.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= best:  # the last of equal mount points is on top
                    best, found = len(point), line.split(" - ", 1)[1].split()[0]
            return found
    except OSError:
        return None


def is_remote(fstype: Optional[str]) -> bool:
    """True for a filesystem type whose other hosts' writes inotify does not report."""
    return fstype is not None and (fstype in REMOTE_TYPES or fstype.startswith("fuse."))


class Sleeper:
    """Blocks the refresh thread until ``wake()``, a change in ``directory`` or a timeout."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        #: The directory watched: where ``directory`` resolved to when this was made.
        self.target = os.path.realpath(directory)
        #: The target is on a network filesystem: polled, never watched.
        self.remote = is_remote(filesystem_type(self.target))
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._notify: Optional[Any] = None
        self._watch: Optional[int] = None
        self._link_watch: Optional[int] = None
        self._notify_at = -RETRY_NOTIFY_SECONDS  # monotonic time of the last try to make one
        self._warned = False
        if self.remote:
            logger.info("%s is on a network filesystem: polling it", self.target)

    def _make_notify(self) -> None:
        """Create the inotify instance, again at most every RETRY_NOTIFY_SECONDS."""
        now = time.monotonic()
        if INotify is None or self.remote or now - self._notify_at < RETRY_NOTIFY_SECONDS:
            return
        self._notify_at = now
        try:
            self._notify = INotify(nonblocking=True)
        except OSError as exc:  # no inotify instance left (fs.inotify.max_user_instances)
            if not self._warned:
                logger.warning("not watching %s (%s): polling it", self.directory, exc)
                self._warned = True

    def target_moved(self) -> bool:
        """True when ``directory`` now resolves elsewhere (a retargeted link): make a new one."""
        return os.path.realpath(self.directory) != self.target

    def watching(self) -> bool:
        """True while the directory is watched (a watch is added when it can be)."""
        if self._notify is None:
            self._make_notify()
        if self._notify is not None and self._watch is None:
            mask = 0
            for name in _DIR_MASK_NAMES:
                mask |= getattr(flags, name)
            try:
                self._watch = self._notify.add_watch(self.target, mask)
            except OSError:  # missing, not a directory, no permission, no watch left: poll
                return False
            self._watch_link(self._notify)
        return self._watch is not None

    def _watch_link(self, notify: Any) -> None:
        """Watch the directory holding ``directory`` when that is a symbolic link."""
        path = os.path.abspath(self.directory)
        if self._link_watch is not None or not os.path.islink(path):
            return
        mask = 0
        for name in _LINK_MASK_NAMES:
            mask |= getattr(flags, name)
        try:
            self._link_watch = notify.add_watch(os.path.dirname(path), mask)
        except OSError:  # the 60 s look (``target_moved``) still finds a retarget
            pass

    def wake(self) -> None:
        """End the current (or next) sleep at once; any thread."""
        try:
            os.write(self._write, b"!")
        except (BlockingIOError, OSError):  # the pipe is full: a wake-up is pending anyway
            pass

    def sleep(self, timeout: float, *, changes: bool = True) -> bool:
        """Block up to ``timeout`` seconds, until ``wake()`` or (``changes``) a change in the
        directory; True when only a change in the directory ended it."""
        sources = [self._read]
        if changes and self._notify is not None and self._watch is not None:
            sources.append(self._notify.fileno())
        ready, _, _ = select.select(sources, [], [], max(0.0, timeout))
        woken = self._read in ready
        if woken:
            try:
                while os.read(self._read, 4096):
                    pass
            except BlockingIOError:
                pass
        if self._notify is not None and self._notify.fileno() in ready:
            for event in self._notify.read(timeout=0):
                if event.wd != self._watch or self._watch is None:
                    continue  # the link's directory: any event only wakes
                if event.mask & flags.MOVE_SELF:
                    try:  # the watch would follow the directory to its new name
                        self._notify.rm_watch(self._watch)
                    except OSError:
                        pass
                    self._watch = None
                elif event.mask & flags.IGNORED:  # the directory went away: watch it again
                    self._watch = None
        return bool(ready) and not woken

    def close(self) -> None:
        """Release the pipe and the inotify descriptor."""
        for fd in (self._read, self._write):
            os.close(fd)
        if self._notify is not None:
            self._notify.close()
