"""Single keys from the terminal for live views (`flow top`): `q` quits, the terminal is
put back as it was on the way out, whatever ends the view; SIGTERM and SIGHUP end a live
view (`flow top`, `flow topic echo|hz|info`) as Ctrl-C does."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

QUIT_KEYS = frozenset(b"qQ")


class QuitKeys:
    """While entered, stdin (when it is a terminal) is in cbreak mode: keys arrive one by one
    and unechoed, and Ctrl-C still raises KeyboardInterrupt (signals stay on)."""

    def __init__(self) -> None:
        self._fd: int | None = None
        self._saved: list[Any] | None = None
        self._signals = contextlib.ExitStack()

    def __enter__(self) -> QuitKeys:
        import termios
        import tty

        try:
            fd = sys.stdin.fileno()
        except (AttributeError, ValueError, OSError):
            return self  # no stdin at all: only Ctrl-C (or a kill) ends the view
        if os.isatty(fd):
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)
        self._fd = fd
        # SIGTERM and SIGHUP end the view as Ctrl-C does: the terminal's mode and the cursor
        # are put back on the way out
        self._signals.enter_context(signals_end_the_view())
        return self

    def __exit__(self, *exc: object) -> None:
        import termios

        self._signals.close()
        if self._fd is not None and self._saved is not None:
            with contextlib.suppress(termios.error, OSError):  # a terminal that hung up
                termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)

    def wait(self, seconds: float) -> bool:
        """Wait up to `seconds` for a quit key; True once one was pressed."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self._fd is None:
                time.sleep(left)
                return False
            ready, _, _ = select.select([self._fd], [], [], left)
            if not ready:
                return False
            data = os.read(self._fd, 64)
            if not data:
                self._fd = None  # stdin ended (closed, /dev/null): stop reading it
            elif QUIT_KEYS.intersection(data):
                return True
        return False


@contextlib.contextmanager
def signals_end_the_view() -> Iterator[None]:
    """While entered, SIGTERM and SIGHUP leave through every `with` on the way out (an
    observer's socket file and subscription, the terminal's mode): their default would
    leave them as they are."""
    saved = {sig: signal.signal(sig, _leave) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _leave(signum: int, frame: object) -> None:
    """SIGTERM or SIGHUP in a live view: out through its `with` blocks, exit 128 + signal."""
    if signum == signal.SIGHUP:  # the terminal is gone: what is still written goes nowhere
        from cli import render

        render.silence_terminal()
    raise SystemExit(128 + signum)
