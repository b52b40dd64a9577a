"""Progress reporting and cooperative cancellation for long work.

Long functions take ``progress`` (a :data:`ProgressCallback`) and ``cancel`` (a
:class:`CancelToken`).  They call ``progress(fraction, message)`` now and then and
``cancel.raise_if_cancelled()`` between steps.  The GUI runs them in a worker
thread; the CLI draws a terminal bar.  Neither argument is required.
"""

from __future__ import annotations

import threading
from typing import Callable, Optional

from surgplan.core.errors import OperationCancelled

#: ``progress(fraction, message)`` with ``fraction`` in [0, 1].
ProgressCallback = Callable[[float, str], None]


def no_progress(fraction: float, message: str) -> None:
    """A progress callback that ignores everything."""


class CancelToken:
    """A thread-safe flag that long work polls between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the work to stop at its next check."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` has been called."""
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise :class:`OperationCancelled` if cancellation was requested."""
        if self._event.is_set():
            raise OperationCancelled("cancelled by the user; nothing was changed")


class SubProgress:
    """Map a sub-task's [0, 1] onto the slice [start, stop] of a parent callback.

    Parameters
    ----------
    parent : ProgressCallback or None
        The callback of the enclosing task; ``None`` reports nothing.
    start, stop : float
        The parent's fraction range this sub-task covers.
    """

    def __init__(self, parent: Optional[ProgressCallback], start: float, stop: float) -> None:
        self._parent = parent or no_progress
        self._start = float(start)
        self._span = float(stop) - float(start)

    def __call__(self, fraction: float, message: str) -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        self._parent(self._start + self._span * fraction, message)


def check(cancel: Optional[CancelToken]) -> None:
    """Raise if ``cancel`` is set; accept ``None`` for work that cannot be cancelled."""
    if cancel is not None:
        cancel.raise_if_cancelled()
