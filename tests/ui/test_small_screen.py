"""The window at 1366 × 768 (a common laptop and theatre-cart screen): the risk table
must be readable without scrolling through it two rows at a time."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gui


def _visible_rows(table) -> int:
    return table.viewport().height() // table.rowHeight(0)


def test_risk_table_shows_many_rows_at_1366_by_768(qtbot, window, small_phantom,
                                                   small_phantom_truth):
    from surgplan.ui.session import Case

    win = window
    assert (win.width(), win.height()) == (1366, 768)
    win.session.set_case(Case("phantom", [], {"ct": small_phantom.ct}, "ct"))
    win.session.apply("segmentation", anatomy=small_phantom_truth)
    qtbot.waitUntil(lambda: win.act_propose.isEnabled(), timeout=30_000)
    panel = win.plan_panel
    assert panel.choice_section.expanded()  # choosing comes first
    with qtbot.waitSignal(win.jobFinished, timeout=60_000) as blocker:
        assert win.propose_default_plan()
    assert blocker.args == ["Proposing", True]
    qtbot.waitUntil(lambda: panel.table.rowCount() > 8, timeout=30_000)
    # The choice folds to its title line, which still says what was chosen.
    qtbot.waitUntil(lambda: not panel.choice_section.expanded(), timeout=5_000)
    assert "teld L4-L5 left" in panel.choice_section.header.text()
    qtbot.waitUntil(lambda: _visible_rows(panel.table) >= 8, timeout=5_000)
    assert panel.category.isVisible() and panel.reasons.isVisible()
    # Unfolded by the user, it stays open (the table keeps its minimum of rows).
    panel.choice_section.header.click()
    assert panel.choice_section.expanded() and panel.propose_button.isVisible()
    win.planner.show_plan()
    qtbot.wait(50)
    assert panel.choice_section.expanded()
    assert _visible_rows(panel.table) >= 4
    win._queue.clear()
    if win.worker is not None:
        win.worker.cancel()
    qtbot.waitUntil(lambda: win.worker is None, timeout=30_000)
