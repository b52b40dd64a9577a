"""One action (F4, View ▸ Views along the tool) swaps the views along the tool back to
the sagittal and coronal views, says so, and is remembered between sessions."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui


def test_f4_swaps_back_to_sagittal_and_coronal_and_is_remembered(
        qtbot, window, settings, small_phantom, small_phantom_truth):
    from surgplan.planning import PROCEDURES, Trajectory
    from surgplan.ui.main_window import MainWindow
    from surgplan.ui.session import Case

    win = window
    win.session.set_case(Case("phantom", [], {"ct": small_phantom.ct}, "ct"))
    c = small_phantom_truth.centroid_lps("disc L4-L5")
    t = Trajectory("teld", "L4-L5", "left", PROCEDURES["teld"].tool(), tuple(c + [80, 60, 10]),
                   tuple(c + [8, 5, 0]))
    win._add_trajectory(t, "add")
    sag, cor = win.views[1].scene, win.views[2].scene
    assert np.allclose(np.abs(sag.n), [1, 0, 0])  # the standard views by default
    assert win.act_follow.isCheckable() and "sagittal and coronal" in win.act_follow.toolTip()
    d = np.subtract(t.target_lps, t.entry_lps)
    d /= np.linalg.norm(d)
    win.act_follow.trigger()  # F4
    assert win.plan_panel.follow.isChecked() and win.act_follow.isChecked()
    assert np.allclose(cor.n, d)  # the probe's eye
    assert "F4" in win.status_text.text() and "back" in win.status_text.text()
    assert settings.value("view/alongTool", type=bool) is True
    win.act_follow.trigger()  # F4 again: the standard views are back
    assert not win.plan_panel.follow.isChecked() and not win.act_follow.isChecked()
    assert np.allclose(np.abs(sag.n), [1, 0, 0]) and np.allclose(np.abs(cor.n), [0, 1, 0])
    assert "Sagittal and coronal views are back" in win.status_text.text()
    assert settings.value("view/alongTool", type=bool) is False
    # The check box in the Plan panel is the same switch.
    win.plan_panel.follow.setChecked(True)
    assert win.act_follow.isChecked() and np.allclose(cor.n, d)
    # Remembered: a new window starts with the views along the tool.
    again = MainWindow(settings=settings, font_scale=1.0)
    qtbot.addWidget(again)
    assert again.act_follow.isChecked() and again.plan_panel.follow.isChecked()
    again.close()
