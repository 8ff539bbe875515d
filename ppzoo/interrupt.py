"""Ctrl-C as a request that a run honours at its next safe point, and a second Ctrl-C that stops.

Python raises ``KeyboardInterrupt`` in whatever Python code runs when SIGINT
arrives. During a run that can be a callback of a compiled library (XLA's
garbage-collection callback, a torch hook), where the exception is printed as
"Exception ignored in ..." and lost, and the run goes on. Inside
:func:`deferred_interrupt` the first SIGINT only sets a flag; the driver calls
:func:`check_interrupt` between blocks of steps (and between the stages of
its set-up), which raises ``KeyboardInterrupt`` in the driver's own frame,
where it is handled: the run keeps what it has. The sampler's blocks take
about half a second once the time of a step is known
(:class:`ppzoo.inference.sgmcmc.driver._Pace`).

A second SIGINT before that raises ``KeyboardInterrupt`` at once, as Python's
default handler would, where the main thread runs Python code. Python runs a
signal handler only between bytecodes, so while the main thread is inside one
long compiled call (an XLA computation, its compilation) no handler runs at
all. A watcher thread therefore reads the signals from
:func:`signal.set_wakeup_fd`, which the interpreter writes as they arrive:
when a second SIGINT finds the main thread still inside such a call
:data:`GRACE_SECONDS` later, it writes :data:`HARD_STOP_MESSAGE` on stderr and
ends the process with status 130 (``os._exit``: what the run had in memory is
lost; a checkpoint file keeps what it had written). So a second Ctrl-C ends a
run within about :data:`GRACE_SECONDS` plus the time the watcher waits to run,
well under 2 s, whatever the size of a block.

The handler is installed only in the main thread and only over Python's
default handler (a handler of the user's, or of a notebook kernel, is left
alone: its ``KeyboardInterrupt`` is handled where it lands); the watcher only
where no wakeup fd is set already (an event loop's is left alone).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time

__all__ = ["deferred_interrupt", "check_interrupt", "interrupt_requested"]

#: a second Ctrl-C that no signal handler has answered this long after it came ends the process
GRACE_SECONDS = 0.5
#: what the watcher writes on stderr before it ends the process
HARD_STOP_MESSAGE = (
    "ppzoo: a second Ctrl-C came during a compiled computation: stopped at once (exit status 130); "
    "the results of this run are lost, a checkpoint file keeps what it had written"
)


class _Pending:
    requested = False
    depth = 0
    #: times the handler ran, and when it last did (``time.monotonic``)
    handled = 0
    handled_at = float("-inf")


def _handler(signum, frame):
    _Pending.handled += 1
    _Pending.handled_at = time.monotonic()
    if _Pending.requested:  # the second Ctrl-C: stop now
        raise KeyboardInterrupt
    _Pending.requested = True


class _Watcher:
    """A daemon thread that reads the wakeup fd and ends the process on a second SIGINT that the
    main thread does not answer (see the module docstring). Raises ``OSError`` where a wakeup fd
    is set already."""

    def __init__(self):
        self.reader, self.writer = socket.socketpair()
        self.writer.setblocking(False)
        self.stopped = False
        self.previous = signal.set_wakeup_fd(self.writer.fileno(), warn_on_full_buffer=False)
        if self.previous != -1:  # someone else's (an event loop's): theirs stays
            signal.set_wakeup_fd(self.previous)
            self.reader.close()
            self.writer.close()
            raise OSError("a wakeup fd is set already")
        self.thread = threading.Thread(target=self._watch, name="ppzoo-interrupt", daemon=True)
        self.thread.start()

    def _watch(self):
        unanswered, seen = 0, _Pending.handled
        while True:
            waiting_since = time.monotonic()
            try:
                data = self.reader.recv(64)
            except OSError:
                return
            if not data or self.stopped:
                return
            if signal.SIGINT not in data:
                continue
            if _Pending.handled != seen:  # the handler ran since: it answered the SIGINTs before
                unanswered, seen = 0, _Pending.handled
            unanswered += data.count(signal.SIGINT)
            if unanswered + _Pending.requested < 2:
                continue  # a first Ctrl-C: the handler defers it
            # a second one: the handler raises KeyboardInterrupt, if the main thread runs Python
            deadline = time.monotonic() + GRACE_SECONDS
            while _Pending.handled_at <= waiting_since:
                if self.stopped:
                    return
                if time.monotonic() >= deadline:
                    os.write(2, f"\n{HARD_STOP_MESSAGE}\n".encode())
                    os._exit(130)
                time.sleep(0.01)

    def stop(self):
        """Put back the wakeup fd there was and end the thread (from the main thread)."""
        self.stopped = True
        signal.set_wakeup_fd(self.previous)
        self.writer.close()  # the reader sees the end of the stream
        self.thread.join(timeout=1.0)
        self.reader.close()


def _forget_in_child():
    # a forked child shares the socket: its own Ctrl-C must not count as the parent's
    if _Pending.depth:
        with contextlib.suppress(ValueError, OSError):
            signal.set_wakeup_fd(-1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


@contextlib.contextmanager
def deferred_interrupt():
    """Within this block, a first SIGINT is deferred to the next :func:`check_interrupt`, and a
    second one stops (nested blocks share one handler; the outermost restores the previous one)."""
    if _Pending.depth:
        _Pending.depth += 1
        try:
            yield
        finally:
            _Pending.depth -= 1
        return
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    _Pending.requested = False
    previous = signal.signal(signal.SIGINT, _handler)
    try:
        watcher = _Watcher()
    except (OSError, ValueError):
        watcher = None
    _Pending.depth = 1
    try:
        yield
    finally:
        _Pending.depth = 0
        signal.signal(signal.SIGINT, previous)
        if watcher is not None:
            watcher.stop()
        _Pending.requested = False


def interrupt_requested() -> bool:
    """Whether a deferred SIGINT waits to be honoured."""
    return _Pending.requested


def check_interrupt() -> None:
    """Raise ``KeyboardInterrupt`` here if a SIGINT was deferred (and forget it)."""
    if _Pending.requested:
        _Pending.requested = False
        raise KeyboardInterrupt
