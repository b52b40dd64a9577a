"""File ▸ Plan report (PDF): the window's plan goes out with the measurements on screen,
and anonymised when the teaching view hides the patient."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

pytestmark = [pytest.mark.gui,
              pytest.mark.skipif(shutil.which("pdftotext") is None,
                                 reason="poppler-utils (pdftotext) missing")]


def test_report_action_writes_the_windows_measurements(qtbot, window, small_phantom,
                                                       small_phantom_truth, tmp_path):
    from surgplan.planning import CaseReference, Plan, Trajectory, get_procedure
    from surgplan.planning.measurements import Measurement
    from surgplan.ui.session import Case

    win = window
    ct = small_phantom.ct
    win.session.set_case(Case("phantom", [], {"ct": ct}, "ct"))
    assert not win.act_report.isEnabled()  # nothing to report yet
    lm = small_phantom.landmarks
    ped = lm.vertebrae["L4"].pedicles["left"]
    teld = get_procedure("teld")
    target = lm.vertebrae["L4"].inferior_endplate_center_lps + np.array([12.0, 8.0, -4.0])
    plan = Plan(CaseReference.from_volume(ct), (Trajectory(
        "teld", "L4-L5", "left", teld.tool(), tuple(target + [75.0, 75.0, 5.0]),
        tuple(target)),))
    win.session.apply("segmentation", anatomy=small_phantom_truth)
    win.session.apply("plan", plan=plan, selected=0)
    x, y, z = ped.isthmus_center_lps
    items = [Measurement("distance", ((x, y, z - 6.0), (x, y, z - 28.0)), "foraminal height"),
             Measurement("distance", ((x, y - 30, z), (x, y - 10, z)))]
    assert not win.measure.label_last("nothing yet")
    assert "No measurement to name" in win.status_text.text()
    win.measure.replace(items)
    # Ctrl+M names the last measurement (here without its dialog).
    assert win.measure.label_last("  pedicle   to facet ")
    assert win.measurements[-1].label == "pedicle to facet" and win.session.dirty
    qtbot.waitUntil(lambda: not win.busy, timeout=120_000)  # surfaces, planner fields
    assert win.act_report.isEnabled()
    win.act_teaching.setChecked(True)  # a teacher's copy: anonymised
    pdf = tmp_path / "from-window.pdf"
    with qtbot.waitSignal(win.jobFinished, timeout=120_000) as blocker:
        assert win.reports.write_report(pdf) is not None
    assert blocker.args == ["Writing the plan report", True]
    assert win.reports.last_report.pdf == pdf
    msg = win.reports.last_message
    assert str(pdf) in msg and "2 measurements" in msg and "anonymised" in msg
    text = re.sub(r"\s+", " ", subprocess.run(["pdftotext", "-layout", str(pdf), "-"],
                                              capture_output=True, text=True,
                                              check=True).stdout)
    assert re.search(r"1 foraminal height \(distance\) 22\.0 mm L4-L5 left", text)
    assert re.search(r"2 pedicle to facet \(distance\) 20\.0 mm L4", text)
    assert "Anonymised case" in text and ct.metadata.patient_id not in text
