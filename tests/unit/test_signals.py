"""A burst of SIGTERMs stops a process that waits on its stop Event, however the signals
land: a handler that set the Event itself deadlocked when one arrived inside Event.set."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

CHILD = textwrap.dedent(
    """
    import threading
    from eventing.signals import stop_on_signals

    stop = threading.Event()
    stop_on_signals(stop)
    print("ready", flush=True)
    while not stop.is_set():
        stop.wait(0.00001)  # holds the Event's lock most of the time
    print("stopped", flush=True)
    """
)


def test_a_burst_of_sigterm_stops_the_process() -> None:
    for _ in range(5):
        with subprocess.Popen(
            [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True, env=os.environ
        ) as child:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
            for _ in range(200):
                child.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            while child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if child.poll() is None:
                child.kill()
                raise AssertionError("the process did not stop after a burst of SIGTERM")
            assert child.stdout.read().strip() == "stopped", "it stopped through its Event"
            # A last SIGTERM may land during interpreter shutdown, where the default applies.
            assert child.returncode in (0, -signal.SIGTERM)


CLEANUP_CHILD = textwrap.dedent(
    """
    import time
    from eventing.signals import exit_on_sigterm

    try:
        with exit_on_sigterm():
            print("ready", flush=True)
            time.sleep(30)
    finally:
        print("cleaned up", flush=True)
    """
)


def test_sigterm_to_a_command_runs_its_cleanup() -> None:
    """`saga bench` or `saga demo` stopped with SIGTERM still stops the services it started
    (they run in their own session, so nothing else would)."""
    with subprocess.Popen(
        [sys.executable, "-c", CLEANUP_CHILD], stdout=subprocess.PIPE, text=True, env=os.environ
    ) as child:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            raise AssertionError("SIGTERM did not end the command") from None
        assert child.stdout.read().strip() == "cleaned up"
        assert child.returncode == 128 + signal.SIGTERM
