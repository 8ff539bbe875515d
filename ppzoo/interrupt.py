"""Ctrl-C as a request that a run honours at its next safe point.

Python raises ``KeyboardInterrupt`` in whatever Python code runs when SIGINT
arrives. During a run that can be a callback of a compiled library (XLA's
garbage-collection callback, a torch hook), where the exception is printed as
"Exception ignored in ..." and lost, and the run goes on. Inside
:func:`deferred_interrupt` the first SIGINT only sets a flag; the driver calls
:func:`check_interrupt` between blocks of steps (and between the stages of
its set-up), which raises ``KeyboardInterrupt`` in the driver's own frame,
where it is handled: the run keeps what it has. A second SIGINT before that
raises at once, as Python's default handler would.

The handler is installed only in the main thread and only over Python's
default handler (a handler of the user's, or of a notebook kernel, is left
alone: its ``KeyboardInterrupt`` is handled where it lands).
"""

from __future__ import annotations

import contextlib
import signal
import threading

__all__ = ["deferred_interrupt", "check_interrupt", "interrupt_requested"]


class _Pending:
    requested = False
    depth = 0


def _handler(signum, frame):
    if _Pending.requested:  # the second Ctrl-C: stop now
        raise KeyboardInterrupt
    _Pending.requested = True


@contextlib.contextmanager
def deferred_interrupt():
    """Within this block, a first SIGINT is deferred to the next :func:`check_interrupt`
    (nested blocks share one handler; the outermost restores the previous one)."""
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
    _Pending.depth = 1
    try:
        yield
    finally:
        _Pending.depth = 0
        signal.signal(signal.SIGINT, previous)
        _Pending.requested = False


def interrupt_requested() -> bool:
    """Whether a deferred SIGINT waits to be honoured."""
    return _Pending.requested


def check_interrupt() -> None:
    """Raise ``KeyboardInterrupt`` here if a SIGINT was deferred (and forget it)."""
    if _Pending.requested:
        _Pending.requested = False
        raise KeyboardInterrupt
