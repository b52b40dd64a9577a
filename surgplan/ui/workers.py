"""Long work off the GUI thread: a QThread that runs one function with progress and Cancel.

The function gets ``progress`` and ``cancel`` keyword arguments (the
:mod:`surgplan.core.progress` protocol).  Results come back as Qt signals,
delivered in the GUI thread.  The window keeps the previous state until
``finished`` arrives, so a cancelled or failed run changes nothing.
"""

from __future__ import annotations

import traceback
from typing import Callable

from PySide6.QtCore import QThread, Signal

from surgplan.core.errors import OperationCancelled
from surgplan.core.progress import CancelToken
from surgplan.ui.qtcompat import emit  # noqa: E402


class Worker(QThread):
    """Run ``fn(progress=…, cancel=…)`` in a thread.

    Signals
    -------
    progressed(float, str)
        Fraction in [0, 1] and a message.
    succeeded(object)
        The function's return value.
    failed(object, str)
        The exception and its formatted traceback (the error dialog's detail).
    cancelled()
        The user cancelled; nothing was changed.
    """

    progressed = Signal(float, str)
    succeeded = Signal(object)
    failed = Signal(object, str)
    cancelled = Signal()

    def __init__(self, fn: Callable, title: str, parent=None):
        super().__init__(parent)
        self._fn = fn
        self.title = title
        self.token = CancelToken()

    def cancel(self) -> None:
        """Ask the work to stop at its next check (it raises OperationCancelled)."""
        self.token.cancel()

    def _progress(self, fraction: float, message: str) -> None:
        emit(self.progressed, float(fraction), str(message))

    def run(self) -> None:  # runs in the worker thread
        try:
            result = self._fn(progress=self._progress, cancel=self.token)
        except OperationCancelled:
            emit(self.cancelled)
        except BaseException as exc:  # shown to the user in the error dialog, never dropped
            emit(self.failed, exc, traceback.format_exc())
        else:
            if self.token.cancelled:
                emit(self.cancelled)
            else:
                emit(self.succeeded, result)
