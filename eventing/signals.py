"""SIGTERM and SIGINT turned into a stop Event, without a lock inside a signal handler.

A Python signal handler runs in the main thread between two bytecodes, whatever that
thread holds: calling `Event.set()` there deadlocks when the signal lands while the main
thread is itself inside `Event.set()` or `wait()` (the Event's lock is not re-entrant). A
second SIGTERM (a supervisor's, then the kernel's parent-death signal) did exactly that and
left processes running for ever. So the handler does nothing but let the C-level handler
write the signal number to a pipe (`signal.set_wakeup_fd`), and a thread of its own reads
it and sets the Event.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["exit_on_sigterm", "stop_on_signals"]

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def stop_on_signals(stop: threading.Event, on_signal: Callable[[str], None] | None = None) -> None:
    """From now on SIGTERM/SIGINT set `stop` (after calling `on_signal` with the signal's
    name). Call from the main thread."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    for sig in _SIGNALS:
        signal.signal(sig, _ignore_here)

    def watch() -> None:
        while True:
            try:
                data = os.read(read_end, 64)
            except OSError:
                return
            for number in data:
                if number in _SIGNALS:
                    if on_signal is not None:
                        on_signal(signal.Signals(number).name)
                    stop.set()

    threading.Thread(target=watch, name="signals", daemon=True).start()


def _ignore_here(_signum: int, _frame: object) -> None:
    """The work is done by the watcher thread (see the module docstring)."""


@contextmanager
def exit_on_sigterm() -> Iterator[None]:
    """For a command with no stop Event (`saga bench`, `saga demo`): SIGTERM ends it through
    its `finally` blocks, as Ctrl-C does, instead of on the spot, which left the services it
    started running. The command is ending anyway, so unwinding from wherever the signal
    lands is what is wanted here, unlike in a service (see above)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
