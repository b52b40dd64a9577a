"""Start the desktop application: ``surgplan gui [PATH] [--screenshot FILE]``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

#: Base application font (points): readable from across a room on a projector too.
FONT_PT = 11


def make_app(argv=None):
    """The QApplication (created once), with SurgPlan's names and a readable font."""
    from PySide6.QtGui import QFont
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        app = QApplication(list(argv or ["surgplan"]))
    app.setOrganizationName("SurgPlan")
    app.setApplicationName("SurgPlan")
    from PySide6.QtCore import QSettings

    projector = QSettings("SurgPlan", "SurgPlan").value("view/projector", False, type=bool)
    f = QFont(app.font())
    f.setPointSizeF(FONT_PT * (1.35 if projector else 1.0))
    app.setFont(f)
    return app


class ScreenshotRun:
    """Drive a window through open → segment → (plan) → screenshot → quit.

    Each step starts when the previous job finished; a failure ends the run
    with its error printed and a non-zero status.
    """

    def __init__(self, window, out: Path):
        self.window = window
        self.out = Path(out)
        self.status = 1
        self.error = ""
        window.jobFinished.connect(self._step)

    def _step(self, title: str, ok: bool) -> None:
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication

        w = self.window
        if not ok:
            self.error = f"{title} did not finish: {w.status_text.text()}"
            if w.last_error is not None:
                self.error += "\n" + w.last_error.informativeText()
            QApplication.instance().exit(1)
            return
        if not (title.startswith("Opening") or title in ("Segmenting", "Proposing")):
            return  # derived work (surfaces, distance fields): not a step of this run
        if title.startswith("Opening") and w.session.case.volume is not None \
                and w.session.case.volume.modality in ("CT", "MR"):
            w.segment()
            return
        if title == "Segmenting" and hasattr(w, "propose_default_plan"):
            if w.propose_default_plan():
                return
        QTimer.singleShot(300, self._shoot)

    def _shoot(self) -> None:
        from PySide6.QtWidgets import QApplication

        try:
            self.window.render_all()
            self.window.save_screenshot(self.out)
            self.status = 0
        except OSError as exc:
            self.error = str(exc)
        QApplication.instance().exit(self.status)


def run(path: Optional[str] = None, screenshot: Optional[str] = None, settings=None) -> int:
    """Open the main window on ``path`` (or the demo case) and run until it closes.

    With ``screenshot``: load, segment, propose a default plan when planning is
    available, write the whole window to that PNG file and exit (status 0 on success).
    """
    from surgplan.ui.main_window import MainWindow

    app = make_app(sys.argv[:1])
    win = MainWindow(settings=settings)
    shot = ScreenshotRun(win, Path(screenshot)) if screenshot else None
    if shot is not None:
        win.resize(1900, 1040)
    win.show()
    if path:
        win.open_path(path)
    else:
        win.open_demo()
    status = app.exec()
    if shot is not None:
        if shot.error:
            print(f"surgplan: {shot.error}", file=sys.stderr)
        else:
            print(f"screenshot written to {shot.out}")
        win.session.dirty = False  # a scripted run leaves nothing to recover
        win.close()
        return shot.status
    return int(status)
