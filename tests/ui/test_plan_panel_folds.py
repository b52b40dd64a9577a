"""The Plan panel's sections stay folded or open as the user left them, from one session to
the next (on a small screen the user folds them to see the risk table), and its tools read as
what they are: a pedicle screw as its implant."""

from __future__ import annotations

import pytest

from surgplan.ui.plan_panel import FOLD_KEYS, PlanPanel

pytestmark = pytest.mark.gui


def _panel(qtbot, settings) -> PlanPanel:
    panel = PlanPanel(settings=settings)
    qtbot.addWidget(panel)
    panel.resize(360, 700)
    panel.show()
    qtbot.waitExposed(panel)
    return panel


def test_folds_the_user_made_are_there_next_session(qtbot, settings):
    panel = _panel(qtbot, settings)
    assert panel.choice_section.expanded() and panel.trajectory_section.expanded()
    panel.trajectory_section.header.click()
    panel.choice_section.header.click()
    assert not panel.trajectory_section.expanded() and not panel.propose_button.isVisible()
    panel.close()

    again = _panel(qtbot, settings)
    assert not again.choice_section.expanded() and not again.trajectory_section.expanded()
    assert not again.trajectories.isVisible() and not again.propose_button.isVisible()
    # Folded, the title still says what is chosen.
    assert again.choice_section.header.text().startswith("Procedure: teld")
    again.trajectory_section.header.click()  # opened again: opened next time
    again.close()
    third = _panel(qtbot, settings)
    assert third.trajectory_section.expanded() and third.trajectories.isVisible()
    assert not third.choice_section.expanded()


def test_the_automatic_fold_is_not_kept_and_a_user_opening_is(qtbot, settings):
    panel = _panel(qtbot, settings)
    panel.table.setRowCount(12)
    # A table too short for its rows folds the choice section, once, by itself...
    assert panel.make_room_for_the_table(min_rows=1000)
    assert not panel.choice_section.expanded()
    # ... which is the screen's doing, not the user's: not remembered.
    assert not settings.contains(FOLD_KEYS["choiceSection"])
    panel.close()
    fresh = _panel(qtbot, settings)
    assert fresh.choice_section.expanded()
    fresh.table.setRowCount(12)
    fresh.choice_section.header.click()  # the user folds ...
    fresh.choice_section.header.click()  # ... and opens it: they want it open
    fresh.close()
    again = _panel(qtbot, settings)
    again.table.setRowCount(12)
    assert again.choice_section.expanded()
    assert not again.make_room_for_the_table(min_rows=1000)  # not folded unasked
    assert again.choice_section.expanded()


def test_a_panel_without_settings_keeps_nothing(qtbot, settings):
    panel = _panel(qtbot, None)
    panel.trajectory_section.header.click()
    assert not panel.trajectory_section.expanded()
    assert settings.allKeys() == []


def test_screws_read_as_their_implant_in_the_tool_box(qtbot):
    panel = _panel(qtbot, None)
    panel.procedure.setCurrentIndex(panel.procedure.findData("pedicle-screw"))
    texts = [panel.tool.itemText(i) for i in range(panel.tool.count())]
    assert "pedicle screw 7.5 × 50 mm" in texts
    assert all(t.startswith("pedicle screw ") and "150" not in t for t in texts)
    panel.procedure.setCurrentIndex(panel.procedure.findData("teld"))
    assert panel.tool.itemText(0) == "working cannula, Ø 7 mm, working length 175 mm"
    # The plan's list: the sizes after the trajectory's name, all of it in the tooltip.
    from surgplan.planning import CaseReference, Plan, Trajectory
    from surgplan.planning.procedures import PROCEDURES

    screw = Trajectory("pedicle-screw", "L4", "right",
                       PROCEDURES["pedicle-screw"].tool("screw-7.5x50"),
                       (-40.0, 80.0, 60.0), (-10.0, -5.0, 62.0))
    panel.show_plan(Plan(CaseReference("1.2.3", "1.2.3.4", "P1"), (screw,)), 0)
    item = panel.trajectories.item(0)
    assert item.text() == "pedicle-screw L4 right — screw 7.5 × 50 mm"
    assert item.toolTip().endswith("screw-7.5x50: pedicle screw 7.5 × 50 mm, driver reach 150 mm")


def test_the_window_keeps_the_fold_in_its_settings(qtbot, settings):
    from surgplan.ui.app import make_app
    from surgplan.ui.main_window import MainWindow

    make_app()
    win = MainWindow(settings=settings, font_scale=1.0)
    qtbot.addWidget(win)
    win.show()
    win.plan_panel.trajectory_section.header.click()
    win.close()
    assert settings.value(FOLD_KEYS["trajectorySection"], type=bool) is False
    again = MainWindow(settings=settings, font_scale=1.0)
    qtbot.addWidget(again)
    assert not again.plan_panel.trajectory_section.expanded()
    assert again.plan_panel.choice_section.expanded()
    again.close()
