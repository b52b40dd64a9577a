"""GUI fixtures: a main window with throw-away settings, and phantom studies on disk.

Run under Xvfb (``xvfb-run -a``); never pytest-xvfb (see DESIGN.md).
"""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")


@pytest.fixture(scope="session")
def phantom_ct_dir(tmp_path_factory, small_phantom):
    """The 1.6 mm phantom written as a DICOM CT series, as a scanner would."""
    from surgplan.imaging.dicom.writer import write_series

    out = tmp_path_factory.mktemp("phantom") / "ct"
    write_series(small_phantom.ct, out, modality="CT")
    return out


@pytest.fixture(scope="session")
def phantom_study_dir(tmp_path_factory, small_phantom):
    """A study folder with the phantom's CT and T2 MR series (same frame of reference)."""
    from surgplan.imaging.dicom.writer import write_series
    from surgplan.imaging.phantom import mr_volume

    out = tmp_path_factory.mktemp("study")
    write_series(small_phantom.ct, out / "ct", modality="CT")
    write_series(mr_volume(small_phantom), out / "mr", modality="MR")
    return out


@pytest.fixture()
def settings(tmp_path):
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "surgplan.ini"), QSettings.Format.IniFormat)


@pytest.fixture()
def window(qtbot, settings):
    """The real main window, shown; closed at the end with no thread or window left."""
    from PySide6.QtWidgets import QApplication

    from surgplan.ui.app import make_app
    from surgplan.ui.main_window import MainWindow

    make_app()
    win = MainWindow(settings=settings, font_scale=1.0)
    win.resize(1366, 768)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    yield win
    worker = win.worker
    win.close()
    assert worker is None or worker.isFinished(), "a worker thread outlived the window"
    assert win.worker is None
    QApplication.processEvents()
    leaked = [w for w in QApplication.topLevelWidgets() if w.isVisible()]
    assert not leaked, f"windows left open: {leaked}"


def open_and_wait(qtbot, win, path, timeout_ms=30_000):
    """Open ``path`` in ``win`` and wait for the job; returns whether it succeeded."""
    with qtbot.waitSignal(win.jobFinished, timeout=timeout_ms) as blocker:
        assert win.open_path(str(path)) is not None
    return blocker.args[1]


def segment_and_wait(qtbot, win, timeout_ms=60_000):
    with qtbot.waitSignal(win.jobFinished, timeout=timeout_ms) as blocker:
        assert win.segment() is not None
    return blocker.args[1]
