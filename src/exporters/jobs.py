"""Background jobs of the refresh: one worker thread, the newest job of each owner, in order.

A metric set may ask for work too slow for a refresh (the results exporter trains a power model
and bootstraps its predictions). The refresh hands that job to a ``BackgroundJobs``; when the
job reports new results, the owner's callback asks the refresh to re-render that one exporter.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from typing import Callable, Optional

logger = logging.getLogger("exporters")

__all__ = ["BackgroundJobs", "Job"]

#: A job returns True when its owner's families changed (a re-render is due).
Job = Callable[[], bool]


class BackgroundJobs:
    """One daemon thread running queued jobs; a newer job of an owner replaces its waiting one."""

    def __init__(self, on_done: Callable[[Hashable], None], name: str = "exporter-jobs") -> None:
        self._on_done = on_done
        self._name = name
        self._cond = threading.Condition()
        self._pending: dict[Hashable, Job] = {}
        self._busy = False
        self._closed = False
        self._thread: Optional[threading.Thread] = None
        # Held by a running job, and by the refresh while it loads a run (``held``).
        self._running = threading.Lock()

    def submit(self, owner: Hashable, job: Job) -> None:
        """Queue ``job`` for ``owner``, replacing a job of the same owner that has not started."""
        with self._cond:
            if self._closed:
                return
            self._pending.pop(owner, None)  # re-inserted last: owners take turns
            self._pending[owner] = job
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                owner = next(iter(self._pending))
                job: Optional[Job] = self._pending.pop(owner)
                self._busy = True
            changed = False
            try:
                with self._running:
                    changed = bool(job())  # type: ignore[misc]
            except Exception:  # a job's bug must never end the worker (or the exporter)
                logger.exception("background job of %s failed", owner)
            finally:
                job = None  # a job holds copies of a run's scenarios: not kept while idle
            if changed:
                try:
                    self._on_done(owner)
                except Exception:
                    logger.exception("re-render request of %s failed", owner)
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    @contextmanager
    def held(self) -> Iterator[None]:
        """No job runs inside this block: entering waits for the running one to end, and a
        queued one starts only after the block.

        A job (training on a whole run) and a refresh (parsing the next one) each need a run's
        worth of memory for a moment: one at a time, the peak is the larger of the two, not
        their sum (docs/exporters.md §9).
        """
        with self._running:
            yield

    def wait_idle(self, timeout: float) -> bool:
        """Block until no job is queued or running (seconds); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy,
                                       timeout=timeout)

    def close(self) -> None:
        """Drop queued jobs and end the thread (waits up to 5 s for a running job)."""
        with self._cond:
            self._closed = True
            self._pending.clear()
            thread = self._thread
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
