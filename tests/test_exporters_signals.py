"""StopSignals: SIGTERM/SIGINT end an exporter's main wait without the handler taking a lock."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from exporters.runtime import StopSignals

# Runs in a child process (a deadlocked main thread cannot be recovered in-process): raises
# SIGTERM at the k-th bytecode of one wait(), for every k up to the bytecodes that wait runs
# before it blocks, so the handler also runs wherever the waiter holds a lock. A watchdog turns a
# deadlock into exit status 1 with every thread's traceback on stderr.
INJECTION_HARNESS = r"""
import faulthandler, signal, sys, threading, time
from exporters.runtime import StopSignals

class EventWaiter:
    '''The wait the exporters used before: a handler that sets a threading.Event.'''
    def __enter__(self):
        self.stop = threading.Event()
        self.previous = signal.signal(signal.SIGTERM, lambda signum, frame: self.stop.set())
        return self
    def __exit__(self, *exc):
        signal.signal(signal.SIGTERM, self.previous)
    def wait(self, timeout=None):
        deadline = time.monotonic() + timeout
        while not self.stop.wait(0.01):
            if time.monotonic() >= deadline:
                return None
        return signal.SIGTERM

waiter_class = {"StopSignals": StopSignals, "EventWaiter": EventWaiter}[sys.argv[1]]
faulthandler.dump_traceback_later(float(sys.argv[2]), exit=True)

def wait_injecting_at(k, timeout):
    seen, raised_after = 0, None
    def tracer(frame, event, arg):
        nonlocal seen, raised_after
        frame.f_trace_opcodes = True
        if event == "opcode":
            seen += 1
            if seen == k:
                raised_after = time.monotonic() - started
                signal.raise_signal(signal.SIGTERM)
        return tracer
    with waiter_class() as waiter:
        started = time.monotonic()
        sys.settrace(tracer)
        try:
            result = waiter.wait(timeout=timeout)
        finally:
            sys.settrace(None)
    return seen, raised_after, result

opcodes, _, result = wait_injecting_at(0, 0.0)  # k = 0: count the bytecodes, inject nothing
assert result is None and opcodes > 5, (opcodes, result)
timeout = 0.3
for k in range(1, opcodes + 1):
    seen, raised_after, result = wait_injecting_at(k, timeout)
    # Raised before the timeout ran out, the signal must end the wait; raised on the way out of
    # a timed-out wait (the last few bytecodes), it may not.
    assert result == signal.SIGTERM or raised_after >= timeout, (k, raised_after, result)
print(opcodes)
"""


def run_harness(waiter: str, watchdog: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", INJECTION_HARNESS, waiter, str(watchdog)],
                          capture_output=True, text=True, timeout=watchdog + 60)


def test_signal_at_any_bytecode_of_the_wait_ends_it() -> None:
    done = run_harness("StopSignals", watchdog=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 5


def test_injection_harness_catches_a_handler_that_deadlocks() -> None:
    """Control: the old Event-based wait deadlocks in the same harness."""
    done = run_harness("EventWaiter", watchdog=3)
    assert done.returncode != 0
    assert "Timeout" in done.stderr and "in set" in done.stderr, done.stderr


def test_signal_from_another_thread_ends_the_wait() -> None:
    with StopSignals() as stop_signals:
        timer = threading.Timer(0.05, signal.raise_signal, (signal.SIGINT,))
        timer.start()
        started = time.monotonic()
        assert stop_signals.wait(timeout=10) == signal.SIGINT
        timer.join()
    assert time.monotonic() - started < 5


def test_signal_before_the_wait_is_kept() -> None:
    with StopSignals() as stop_signals:
        signal.raise_signal(signal.SIGTERM)
        assert stop_signals.wait(timeout=0) == signal.SIGTERM
        assert stop_signals.wait(timeout=0) is None  # consumed once


@pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="POSIX signal")
def test_other_signals_keep_their_handlers_and_do_not_end_the_wait() -> None:
    calls = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: calls.append(signum))
    try:
        with StopSignals() as stop_signals:
            signal.raise_signal(signal.SIGALRM)
            assert stop_signals.wait(timeout=0.2) is None
        assert calls == [signal.SIGALRM]
    finally:
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signal")
def test_hup_and_usr_signals_are_ignored_while_serving_and_restored_after() -> None:
    calls = []
    previous = {s: signal.signal(s, lambda signum, frame: calls.append(signum))
                for s in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)}
    try:
        with StopSignals() as stop_signals:
            for signum in previous:
                assert signal.getsignal(signum) is signal.SIG_IGN
                signal.raise_signal(signum)  # the default action would end the process
            assert stop_signals.wait(timeout=0.2) is None
        assert calls == []
        signal.raise_signal(signal.SIGHUP)
        assert calls == [signal.SIGHUP]  # the previous handler is back
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def test_exit_restores_previous_handlers_and_wakeup_fd() -> None:
    def mine(signum, frame):
        pass

    reader, writer = socket.socketpair()
    writer.setblocking(False)
    previous_fd = signal.set_wakeup_fd(writer.fileno())
    previous = {s: signal.signal(s, mine) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with StopSignals():
            assert signal.getsignal(signal.SIGTERM) is not mine
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGINT) is mine
        assert signal.set_wakeup_fd(previous_fd) == writer.fileno()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(previous_fd)
        reader.close()
        writer.close()


def test_wait_outside_the_with_block_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="outside"):
        StopSignals().wait(timeout=0)
