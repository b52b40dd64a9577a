"""Measurements travel with the case: saved in the ``.surgplan`` file and reopened,
while case files written before they existed still open (with none)."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from PySide6.QtCore import Qt

from surgplan.core.errors import PlanFileError
from surgplan.planning.case_files import load_case, read_measurements, save_case
from surgplan.planning.measurements import Measurement


def _measurements():
    return [Measurement("distance", ((10.0, -20.5, 30.0), (50.0, -20.5, 30.0))),
            Measurement("angle", ((0.0, 0.0, 0.0), (10.0, 0.0, 0.0), (10.0, 10.0, 0.0)))]


def test_measurement_values_are_validated():
    d, a = _measurements()
    assert d.value == pytest.approx(40.0) and a.value == pytest.approx(90.0)
    kind, pts = d  # unpacks as the views draw it
    assert kind == "distance" and np.allclose(pts[1] - pts[0], (40.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="distance needs 2"):
        Measurement("distance", ((0.0, 0.0, 0.0),))
    with pytest.raises(ValueError, match="kind"):
        Measurement("area", ((0.0, 0.0, 0.0), (1.0, 0.0, 0.0)))
    with pytest.raises(ValueError, match="finite"):
        Measurement("distance", ((0.0, 0.0, float("nan")), (1.0, 0.0, 0.0)))


def test_case_file_keeps_measurements_and_old_files_still_open(small_phantom, tmp_path):
    vol = small_phantom.ct
    path = save_case(tmp_path / "case.surgplan", None, None, vol, measurements=_measurements())
    assert read_measurements(path) == _measurements()
    # A file written before measurements were saved: the same archive without the member.
    old = tmp_path / "old.surgplan"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(old, "w") as dst:
        for name in src.namelist():
            if name != "measurements.json":
                dst.writestr(name, src.read(name))
    assert read_measurements(old) == []
    manifest, plan, anatomy = load_case(old, vol)
    assert manifest["version"] == 1 and plan is None and anatomy is None
    # A damaged member is refused with the file's name, not half read.
    bad = tmp_path / "bad.surgplan"
    with zipfile.ZipFile(old) as src, zipfile.ZipFile(bad, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
        data = {"format": "surgplan-measurements", "version": 1,
                "measurements": [{"kind": "distance", "points_lps": [[0, 0, 0]]}]}
        dst.writestr("measurements.json", json.dumps(data))
    with pytest.raises(PlanFileError, match="bad.surgplan.*measurement 1"):
        read_measurements(bad)


@pytest.mark.gui
def test_measurements_are_saved_with_the_plan_and_reopened(qtbot, window, small_phantom,
                                                           tmp_path):
    from tests.ui.test_workflow import _qt_pos
    from surgplan.ui.session import Case

    win = window
    win.session.set_case(Case("phantom", [], {"ct": small_phantom.ct}, "ct"))
    axial = win.views[0]
    c = axial.scene.cursor_lps
    win.act_distance.trigger()
    qtbot.mousePress(axial, Qt.MouseButton.LeftButton, pos=_qt_pos(axial, c + [-20.0, 0, 0]))
    qtbot.mouseMove(axial, _qt_pos(axial, c + [20.0, 0, 0]))
    qtbot.mouseRelease(axial, Qt.MouseButton.LeftButton, pos=_qt_pos(axial, c + [20.0, 0, 0]))
    assert len(win.measurements) == 1
    assert win.act_save_plan.isEnabled()  # measurements alone are worth saving
    drawn = list(win.measurements)
    path = tmp_path / "measured.surgplan"
    with qtbot.waitSignal(win.jobFinished, timeout=30_000) as blocker:
        win.save_case_file(path)
    assert blocker.args == ["Saving the plan", True]
    win.clear_measurements()
    assert win.measurements == []
    with qtbot.waitSignal(win.jobFinished, timeout=30_000) as blocker:
        win.open_case_file(path)
    assert blocker.args == ["Opening the plan", True]
    assert win.measurements == drawn
    # Drawn again in the slices, labelled with their length.
    assert len(axial.scene._measurements) == 1
    # Another study does not inherit them (they are points of this one).
    win.session.set_case(Case("phantom again", [], {"ct": small_phantom.ct}, "ct"))
    assert win.measurements == [] and axial.scene._measurements == []
