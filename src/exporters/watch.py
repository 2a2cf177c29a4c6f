"""How the refresh thread sleeps: until the results directory changes, a wake-up, or a timeout.

On Linux the directory is watched with inotify (``inotify_simple``, a thin ctypes wrapper): a
create, delete, rename, write or attribute change of a name in it, or of the directory itself,
ends the sleep, and between changes the thread does not wake at all (each wake costs ~0.25 ms
of CPU on a busy 2-core machine: every 2 s, most of an idle exporter's budget). Without inotify
(another OS, no watch descriptor left, a directory that does not exist yet) the caller sleeps
``--refresh-interval`` and polls, as before.
"""

from __future__ import annotations

import logging
import os
import select
from pathlib import Path
from typing import Any, Optional

logger = logging.getLogger("exporters")

try:
    from inotify_simple import INotify, flags  # type: ignore[import-untyped]
except ImportError:  # not installed, or not Linux: polling
    INotify = None  # type: ignore[assignment,misc]

__all__ = ["Sleeper"]


class Sleeper:
    """Blocks the refresh thread until ``wake()``, a change in ``directory`` or a timeout."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._notify: Optional[Any] = None
        self._watch: Optional[int] = None
        if INotify is not None:
            try:
                self._notify = INotify(nonblocking=True)
            except OSError as exc:  # no inotify instance left (fs.inotify.max_user_instances)
                logger.warning("not watching %s (%s): polling it", directory, exc)

    def watching(self) -> bool:
        """True while the directory is watched (a watch is added when it can be)."""
        if self._notify is not None and self._watch is None:
            mask = (flags.CREATE | flags.DELETE | flags.MOVED_FROM | flags.MOVED_TO
                    | flags.MODIFY | flags.CLOSE_WRITE | flags.ATTRIB | flags.DELETE_SELF
                    | flags.MOVE_SELF)
            try:
                self._watch = self._notify.add_watch(self.directory, mask)
            except OSError:  # missing, not a directory, no permission, no watch left: poll
                return False
        return self._watch is not None

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
                if event.mask & flags.MOVE_SELF and self._watch is not None:
                    try:  # the watch would follow the directory to its new name
                        self._notify.rm_watch(self._watch)
                    except OSError:
                        pass
                    self._watch = None
                if event.mask & flags.IGNORED:  # the directory went away: watch it again
                    self._watch = None
        return bool(ready) and not woken

    def close(self) -> None:
        """Release the pipe and the inotify descriptor."""
        for fd in (self._read, self._write):
            os.close(fd)
        if self._notify is not None:
            self._notify.close()
