"""The one error dialog of the application, and small dialogs."""

from __future__ import annotations

import traceback
from typing import Optional

from PySide6.QtWidgets import QMessageBox, QWidget

from surgplan.core.errors import SurgplanError


def error_text(exc: BaseException) -> str:
    """The message a user reads: SurgPlan's own errors say what to do; others are named."""
    if isinstance(exc, SurgplanError):
        return str(exc)
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return f"{exc.strerror or exc}: {exc.filename or ''}".strip()
    return f"{type(exc).__name__}: {exc}"


def show_error(parent: Optional[QWidget], what: str, exc: BaseException, detail: str = "") -> QMessageBox:
    """Show ``what`` failed, why, and the technical detail behind a button.

    Non-modal (``open()``), so work in other windows continues and tests can
    find and close it; everything already loaded or planned is untouched.
    Returns the dialog (object name ``errorDialog``).
    """
    box = QMessageBox(parent)
    box.setObjectName("errorDialog")
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("SurgPlan — " + what)
    box.setText(f"<b>{what}</b>")
    box.setInformativeText(error_text(exc) + "\n\nNothing that was already open has changed.")
    box.setDetailedText(detail or "".join(traceback.format_exception(exc)))
    box.setStandardButtons(QMessageBox.StandardButton.Close)
    box.open()
    return box
