"""The main window driven like a user: open the phantom's DICOM series, look, segment, edit.

Pixels are read back from VTK (``SliceView.pixels``), not ``QWidget.grab``.
"""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from surgplan.imaging.structures import colour_of
from tests.ui.conftest import open_and_wait, segment_and_wait

pytestmark = pytest.mark.gui


def _device_pixel(view, p_lps):
    """Row/column in ``view.pixels()`` of an LPS point, and the matching Qt position."""
    x, y = view.scene.lps_to_display(p_lps)
    h = view.GetRenderWindow().GetSize()[1]
    dpr = view.devicePixelRatioF()
    return (int(round(h - 1 - y)), int(round(x))), QPoint(int(round(x / dpr)),
                                                          int(round((h - 1 - y) / dpr)))


def _inside(anatomy, name) -> np.ndarray:
    """A voxel centre of ``name`` in its body (the centroid of a ring-shaped vertebra can
    fall in the canal): the mask voxel nearest to a point 12 mm anterior of the centroid."""
    k, j, i = np.nonzero(anatomy.mask(name))
    lps = np.stack([i, j, k], 1) @ anatomy.ijk_to_lps[:3, :3].T + anatomy.ijk_to_lps[:3, 3]
    aim = anatomy.centroid_lps(name) + np.array([0.0, -12.0, 0.0])
    return lps[np.argmin(np.linalg.norm(lps - aim, axis=1))]


def _qt_pos(view, p_lps) -> QPoint:
    return _device_pixel(view, p_lps)[1]


def test_whole_workflow_open_segment_edit_plan_save_reopen(qtbot, window, phantom_ct_dir, tmp_path):
    win = window
    assert open_and_wait(qtbot, win, phantom_ct_dir)
    vol = win.session.case.volume
    assert vol is not None and vol.modality == "CT"
    # Series browser: one CT series with its thumbnail and facts.
    assert win.study.list.count() == 1
    assert not win.study.list.item(0).icon().isNull()
    assert "CT" in win.study.list.item(0).text()
    assert "Patient" in win.study.details.text()
    # The slices show the CT: not blank, and the crosshair is linked.
    axial, sagittal, coronal = win.views
    px = axial.pixels()
    assert px.std() > 20
    # Segment in the background; the structure list fills with provenance.
    assert segment_and_wait(qtbot, win)
    anatomy = win.session.state.anatomy
    names = win.structures.names()
    assert len(anatomy.vertebra_names) >= 5
    assert set(anatomy.vertebra_names) <= set(names)
    vert = anatomy.vertebra_names[len(anatomy.vertebra_names) // 2]
    assert win.structures.provenance_of(vert).startswith("segmented")
    # The overlay in the vertebra's colour in its body (opacity 1 via the slider).
    c = _inside(anatomy, vert)
    win.set_cursor(c)
    win.structures.opacity.setValue(100)
    (row, col), _ = _device_pixel(axial, c)
    got = axial.pixels()[row, col].astype(int)
    assert np.abs(got - colour_of(vert)).max() <= 4, (got, colour_of(vert))
    # Hide it: the grey CT shows there again.
    win.structures.set_visible(vert, False)
    grey = axial.pixels()[row, col].astype(int)
    assert grey.max() - grey.min() <= 4
    win.structures.set_visible(vert, True)
    # 3D: surfaces per vertebra, coloured and named.
    assert vert in win.view3d.scene.surface_actors and vert in win.view3d.scene.label_actors
    img3d = win.view3d.pixels().reshape(-1, 3).astype(int)
    target = np.array(colour_of(vert))
    cos = img3d @ target / (np.linalg.norm(img3d, axis=1) * np.linalg.norm(target) + 1e-9)
    assert (cos > 0.99).sum() > 50  # lit pixels of that vertebra's hue
    # Rename (transitional anatomy), then undo and redo.
    free = next(n for n in ("L6", "T11", "T10") if n not in anatomy.names)
    win.rename(vert, free)
    assert free in win.structures.names() and vert not in win.structures.names()
    assert win.structures.provenance_of(free).startswith("edited")
    assert win.act_undo.isEnabled()
    win.act_undo.trigger()
    assert vert in win.structures.names()
    win.act_redo.trigger()
    assert free in win.structures.names()
    win.act_undo.trigger()
    _plan_drag_undo_save_reopen(qtbot, win, tmp_path)


def _plan_drag_undo_save_reopen(qtbot, win, tmp_path):
    """Propose teld L4-L5 left, drag the entry in a slice, undo, save, reopen."""
    from surgplan.render.glyphs import TARGET_RGB

    win.plan_panel.choose("teld", "L4-L5", "left")
    with qtbot.waitSignal(win.jobFinished, timeout=60_000) as blocker:
        qtbot.mouseClick(win.plan_panel.propose_button, Qt.MouseButton.LeftButton)
    assert blocker.args == ["Proposing", True]
    plan = win.session.state.plan
    (traj,) = plan.trajectories
    assert (traj.procedure, traj.level, traj.side) == ("teld", "L4-L5", "left")
    assert win.plan_panel.trajectories.count() == 1
    assert win.plan_panel.category.text().split()[0].lower() in (
        "low", "moderate", "high", "infeasible")
    rows = win.plan_panel.table.rowCount()
    assert rows > 3
    # The tool is drawn: the target handle (orange) at the target in the axial view.
    axial = win.views[0]
    (row, col), _ = _device_pixel(axial, np.asarray(traj.target_lps))
    px = axial.pixels()
    got = px[row, col].astype(int)
    assert np.abs(got - TARGET_RGB).max() < 40, got
    # Drag the entry 25 px in the axial view: the risk panel follows while dragging.
    before = win.plan_panel.summary.text()
    start = _qt_pos(axial, np.asarray(traj.entry_lps))
    qtbot.mousePress(axial, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(axial, start + QPoint(-25, 20))
    assert win.plan_panel.summary.text() != before  # live, before the release
    assert win.session.state.plan is plan  # not an edit yet
    qtbot.mouseRelease(axial, Qt.MouseButton.LeftButton, pos=start + QPoint(-25, 20))
    moved = win.session.state.plan.trajectories[0]
    assert moved.target_lps == traj.target_lps
    shift = np.subtract(moved.entry_lps, traj.entry_lps)
    assert np.linalg.norm(shift) > 5 and abs(shift[2]) < 1e-6  # in the axial plane
    assert win.session.undo_text.startswith("move entry")
    win.act_undo.trigger()
    assert win.session.state.plan is plan
    win.act_redo.trigger()
    # The entry risk map on the skin: green where entering is safe, red where not.
    with qtbot.waitSignal(win.jobFinished, timeout=60_000) as blocker:
        win.plan_panel.risk_map.setChecked(True)
    assert blocker.args == ["Entry risk map", True]
    actor = win.view3d.scene._scalar_actor
    assert actor is not None
    values = actor.GetMapper().GetInput().GetPointData().GetScalars()
    lo, hi = values.GetRange()
    assert 0.0 <= lo < hi <= 1.0
    # Moving the target makes the map stale: it is computed again for the new target.
    import dataclasses

    cur = win.session.state.plan
    t0 = cur.trajectories[0]
    far = dataclasses.replace(t0, target_lps=tuple(np.add(t0.target_lps, (0.0, 0.0, 12.0))))
    with qtbot.waitSignal(win.jobFinished, timeout=60_000) as blocker:
        win.session.apply("move target", plan=cur.with_trajectory(far))
    assert blocker.args == ["Entry risk map", True]
    new_values = win.view3d.scene._scalar_actor.GetMapper().GetInput().GetPointData().GetScalars()
    from vtkmodules.util.numpy_support import vtk_to_numpy

    assert not np.allclose(vtk_to_numpy(new_values), vtk_to_numpy(values))
    with qtbot.waitSignal(win.jobFinished, timeout=60_000) as blocker:
        win.act_undo.trigger()  # back to the first target: its map again
    assert blocker.args == ["Entry risk map", True]
    win.plan_panel.risk_map.setChecked(False)
    assert win.view3d.scene._scalar_actor is None
    # Save, change, reopen: the same plan and anatomy come back.
    path = tmp_path / "case.surgplan"
    with qtbot.waitSignal(win.jobFinished, timeout=30_000) as blocker:
        win.save_case_file(path)
    assert blocker.args[1] and path.is_file()
    saved_plan, saved_anatomy = win.session.state.plan, win.session.state.anatomy
    win.remove_trajectory(0)
    assert win.session.state.plan.trajectories == ()
    with qtbot.waitSignal(win.jobFinished, timeout=30_000) as blocker:
        win.open_case_file(path)
    assert blocker.args == ["Opening the plan", True]
    assert win.session.state.plan == saved_plan
    reopened = win.session.state.anatomy
    assert reopened.names == saved_anatomy.names
    assert np.array_equal(reopened.vertebrae, saved_anatomy.vertebrae)
    assert win.plan_panel.trajectories.count() == 1


def test_navigation_window_level_and_paint_by_mouse(qtbot, window, phantom_ct_dir):
    win = window
    assert open_and_wait(qtbot, win, phantom_ct_dir)
    axial, sagittal, coronal = win.views
    # Left click in the axial view moves the crosshair in every view.
    p = axial.scene.cursor_lps + np.array([20.0, 15.0, 0.0])
    qtbot.mouseClick(axial, Qt.MouseButton.LeftButton, pos=_qt_pos(axial, p))
    for v in win.views:
        assert np.allclose(v.scene.cursor_lps[:2], p[:2], atol=1.5)
    # Wheel scrolls the axial slice by a voxel.
    z0 = axial.scene.cursor_lps[2]
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    pos = QPointF(axial.width() / 2, axial.height() / 2)
    ev = QWheelEvent(pos, axial.mapToGlobal(pos), QPoint(0, 0), QPoint(0, 120),
                     Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                     Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(axial, ev)
    assert abs(axial.scene.cursor_lps[2] - z0) == pytest.approx(1.6, abs=0.01)
    assert sagittal.scene.cursor_lps[2] == pytest.approx(axial.scene.cursor_lps[2])
    # Presets and a right drag change the window.
    win.apply_preset("bone")
    assert axial.scene.window == (2000.0, 400.0)
    centre = QPoint(axial.width() // 2, axial.height() // 2)
    qtbot.mousePress(axial, Qt.MouseButton.RightButton, pos=centre)
    qtbot.mouseMove(axial, centre + QPoint(80, 0))
    qtbot.mouseRelease(axial, Qt.MouseButton.RightButton, pos=centre + QPoint(80, 0))
    assert axial.scene.window[0] > 2000.0 and sagittal.scene.window == axial.scene.window
    # Teaching mode hides the patient text; the layout switches to one large view.
    win.act_teaching.trigger()
    assert not axial.scene.corners.actors["upper left"].GetVisibility()
    win.act_layout.trigger()
    qtbot.waitUntil(lambda: axial.width() > 2 * sagittal.width())


def test_paint_and_erase_on_a_slice(qtbot, window, small_phantom, small_phantom_truth):
    from surgplan.ui.session import Case

    win = window
    win.session.set_case(Case("phantom", [], {"ct": small_phantom.ct}, "ct"))
    # An anatomy arriving whole (opened, restored): its surfaces are built in the
    # background while the slices are already usable (the paint below does not wait).
    win.session.apply("segmentation", anatomy=small_phantom_truth)
    qtbot.waitUntil(lambda: win.worker is not None)
    assert win.worker.title == "Building surfaces" and win.progress.isVisible()
    anatomy = win.session.state.anatomy
    vert = anatomy.vertebra_names[2]
    axial = win.views[0]
    c = _inside(anatomy, vert)
    win.set_cursor(c)
    win.structures.select(vert)
    before = int(anatomy.mask(vert).sum())
    # Paint a dab just in front of the body: the vertebra grows, as one undo step.
    win.set_mode("paint")
    target = c + np.array([0.0, -30.0, 0.0])
    qtbot.mousePress(axial, Qt.MouseButton.LeftButton, pos=_qt_pos(axial, target))
    qtbot.mouseMove(axial, _qt_pos(axial, target + [4.0, 0, 0]))
    qtbot.mouseRelease(axial, Qt.MouseButton.LeftButton, pos=_qt_pos(axial, target + [4.0, 0, 0]))
    edited = win.session.state.anatomy
    assert edited is not anatomy
    assert int(edited.mask(vert).sum()) > before
    assert edited.structure(vert).provenance == "edited"
    assert win.session.undo_text == f"paint {vert}"
    win.set_mode("erase")
    qtbot.mouseClick(axial, Qt.MouseButton.LeftButton, pos=_qt_pos(axial, target))
    assert int(win.session.state.anatomy.mask(vert).sum()) < int(edited.mask(vert).sum())
    win.act_undo.trigger()
    win.act_undo.trigger()
    assert win.session.state.anatomy is anatomy


def test_bad_input_gives_the_error_dialog_and_the_window_stays_usable(
        qtbot, window, tmp_path, phantom_ct_dir):
    win = window
    assert open_and_wait(qtbot, win, phantom_ct_dir)
    loaded = win.session.case.volume
    bad = tmp_path / "notes"
    bad.mkdir()
    for n in range(3):
        (bad / f"note{n}.txt").write_text("not an image\n" * 20)
    assert not open_and_wait(qtbot, win, bad)
    box = win.last_error
    assert box is not None and box.isVisible() and box.objectName() == "errorDialog"
    assert str(bad) in box.informativeText() and "note0.txt" in box.informativeText()
    assert box.detailedText()
    box.close()
    # Nothing that was open is lost; the window still works.
    assert win.session.case.volume is loaded
    assert win.act_segment.isEnabled()
    assert open_and_wait(qtbot, win, phantom_ct_dir)


def test_cancel_segmentation_leaves_the_state(qtbot, window, phantom_ct_dir):
    win = window
    assert open_and_wait(qtbot, win, phantom_ct_dir)
    with qtbot.waitSignal(win.jobFinished, timeout=30_000) as blocker:
        win.segment()
        assert win.cancel_button.isVisible() and win.progress.isVisible()
        qtbot.mouseClick(win.cancel_button, Qt.MouseButton.LeftButton)
    assert blocker.args == ["Segmenting", False]
    assert win.session.state.anatomy is None
    assert "cancelled" in win.status_text.text()
    assert not win.cancel_button.isVisible()


def test_layout_and_recent_files_persist(qtbot, settings, phantom_ct_dir):
    from surgplan.ui.main_window import MainWindow

    win = MainWindow(settings=settings, font_scale=1.0)
    qtbot.addWidget(win)
    win.show()
    assert open_and_wait(qtbot, win, phantom_ct_dir)
    win.act_layout.trigger()
    win.close()
    again = MainWindow(settings=settings, font_scale=1.0)
    qtbot.addWidget(again)
    assert again.grid.layout_name == "one large"
    assert again.recent_files()[0] == str(phantom_ct_dir)
    assert [a.text() for a in again.recent_menu.actions()] == [str(phantom_ct_dir)]
    again.close()


def test_views_follow_the_tool_with_roll(qtbot, window, small_phantom, small_phantom_truth):
    """With a trajectory, the sagittal view reslices along the tool and the coronal view
    looks down it at the tip; the roll turns both about the axis."""
    from surgplan.planning import PROCEDURES, Trajectory
    from surgplan.ui.session import Case

    win = window
    win.session.set_case(Case("phantom", [], {"ct": small_phantom.ct}, "ct"))
    # No anatomy needed: the views follow the plan alone (no surfaces or fields to build).
    c = small_phantom_truth.centroid_lps("disc L4-L5")
    t = Trajectory("teld", "L4-L5", "left", PROCEDURES["teld"].tool(), tuple(c + [80, 60, 10]),
                   tuple(c + [8, 5, 0]))
    win._add_trajectory(t, "add")
    win.plan_panel.follow.setChecked(True)
    along, probe = win.views[1].scene, win.views[2].scene
    d = np.asarray(t.target_lps) - t.entry_lps
    d /= np.linalg.norm(d)
    assert abs(along.n @ d) < 1e-9 and np.allclose(along.v, -d)  # the axis lies in the view
    assert np.allclose(probe.n, d)  # looking down the tool
    assert np.allclose(probe.cursor_lps, t.target_lps)  # at the tip
    u0 = probe.u.copy()
    win.plan_panel.roll.setValue(90)
    assert abs(probe.u @ u0) < 1e-9 and np.allclose(probe.n, d)
    # The tool band runs vertically through the along view: the tip handle at the target.
    from surgplan.render.glyphs import TARGET_RGB

    view = win.views[1]
    x, y = along.lps_to_display(t.target_lps)
    px = view.pixels()
    got = px[px.shape[0] - 1 - int(round(y)), int(round(x))].astype(int)
    assert np.abs(got - TARGET_RGB).max() < 40
    win.plan_panel.follow.setChecked(False)
    assert np.allclose(along.n, [-1, 0, 0]) or np.allclose(np.abs(along.n), [1, 0, 0])


def test_drag_the_entry_in_3d(qtbot, window, small_phantom):
    """A left drag on the entry sphere moves the entry in the plane facing the camera;
    elsewhere the same drag rotates the camera."""
    from surgplan.planning import PROCEDURES, Trajectory
    from surgplan.ui.session import Case

    win = window
    win.session.set_case(Case("phantom", [], {"ct": small_phantom.ct}, "ct"))
    c = small_phantom.ct.index_to_lps(np.array(small_phantom.ct.shape_ijk) / 2.0)
    t = Trajectory("teld", "L4-L5", "left", PROCEDURES["teld"].tool(), tuple(c + [60, 60, 0]),
                   tuple(c))
    win._add_trajectory(t, "add")
    view = win.view3d
    view.scene.reset_camera("posterior")
    view.render()
    h = view.GetRenderWindow().GetSize()[1]
    dpr = view.devicePixelRatioF()
    x, y = view.scene.world_to_display(t.entry_lps)
    start = QPoint(int(round(x / dpr)), int(round((h - 1 - y) / dpr)))
    cam = view.scene.renderer.GetActiveCamera()
    direction = np.array(cam.GetDirectionOfProjection())
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(view, start + QPoint(0, -30))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=start + QPoint(0, -30))
    moved = win.session.state.plan.trajectories[0]
    shift = np.subtract(moved.entry_lps, t.entry_lps)
    assert moved.target_lps == t.target_lps
    assert np.linalg.norm(shift) > 5 and abs(shift @ direction) < 1e-3
    assert shift[2] > 0  # dragged up the screen: toward the head seen from behind
    assert np.allclose(cam.GetDirectionOfProjection(), direction)  # the camera stayed


def test_measure_distance_and_angle_on_a_slice(qtbot, window, small_phantom):
    from surgplan.ui.session import Case

    win = window
    win.session.set_case(Case("phantom", [], {"ct": small_phantom.ct}, "ct"))
    axial = win.views[0]
    c = axial.scene.cursor_lps
    a, b = c + [-20.0, 0, 0], c + [20.0, 0, 0]
    win.act_distance.trigger()
    qtbot.mousePress(axial, Qt.MouseButton.LeftButton, pos=_qt_pos(axial, a))
    qtbot.mouseMove(axial, _qt_pos(axial, b))
    qtbot.mouseRelease(axial, Qt.MouseButton.LeftButton, pos=_qt_pos(axial, b))
    ((kind, pts),) = win.measurements
    length = np.linalg.norm(pts[1] - pts[0])
    mmpp = axial.scene.scale_bar.mm_per_pixel()
    assert kind == "distance" and length == pytest.approx(40.0, abs=2 * mmpp + 0.1)
    assert "mm" in win.status_text.text()
    # A right angle: first arm from the vertex along x, then the second arm along y.
    win.act_angle.trigger()
    arm2 = c + [0, -30.0, 0]
    qtbot.mousePress(axial, Qt.MouseButton.LeftButton, pos=_qt_pos(axial, c))
    qtbot.mouseMove(axial, _qt_pos(axial, b))
    qtbot.mouseRelease(axial, Qt.MouseButton.LeftButton, pos=_qt_pos(axial, b))
    assert len(win.measurements) == 1  # waiting for the second arm
    qtbot.mouseClick(axial, Qt.MouseButton.LeftButton, pos=_qt_pos(axial, arm2))
    kind, pts = win.measurements[-1]
    from surgplan.render.slice_scene import measurement_text

    assert kind == "angle" and measurement_text(kind, pts).startswith(("89.", "90.", "91."))
    win.clear_measurements()
    assert win.measurements == []


def test_a_broken_plan_file_gives_the_error_dialog(qtbot, window, small_phantom, tmp_path):
    from surgplan.ui.session import Case

    win = window
    win.session.set_case(Case("phantom", [], {"ct": small_phantom.ct}, "ct"))
    bad = tmp_path / "broken.surgplan"
    bad.write_bytes(b"PK\x03\x04 this is not a complete zip")
    assert win.open_case_file(bad) is None
    box = win.last_error
    assert box.isVisible() and str(bad) in box.informativeText()
    assert "not a SurgPlan case file" in box.informativeText()
    box.close()
    assert win.session.case.volume is small_phantom.ct


def test_projector_text_is_larger_and_persists(qtbot, window, settings, small_phantom):
    from PySide6.QtWidgets import QApplication

    from surgplan.ui.session import Case

    win = window
    win.session.set_case(Case("phantom", [], {"ct": small_phantom.ct}, "ct"))
    letter = win.views[0].scene.letters.actors["right"].GetTextProperty()
    before_vtk, before_qt = letter.GetFontSize(), QApplication.font().pointSizeF()
    win.act_projector.trigger()
    assert letter.GetFontSize() >= 1.4 * before_vtk
    assert QApplication.font().pointSizeF() > before_qt
    assert settings.value("view/projector", type=bool) is True
    win.act_projector.trigger()
    assert letter.GetFontSize() == before_vtk


def test_dropping_a_folder_opens_it(qtbot, window, phantom_ct_dir):
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent
    from PySide6.QtWidgets import QApplication

    win = window
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(phantom_ct_dir))])
    # As a desktop drag does: enter (the window accepts files), then drop.
    # Qt declares the enter event on an integer QPoint and the drop on a QPointF.
    enter = QDragEnterEvent(QPoint(200, 200), Qt.DropAction.CopyAction, mime,
                            Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(win, enter)
    assert enter.isAccepted()
    ev = QDropEvent(QPointF(200, 200), Qt.DropAction.CopyAction, mime,
                    Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(win.jobFinished, timeout=30_000) as blocker:
        QApplication.sendEvent(win, ev)
    assert blocker.args[1]
    assert win.session.case.source == str(phantom_ct_dir)
    assert win.windowTitle().endswith(phantom_ct_dir.name)


def test_series_browser_switches_between_ct_and_mr(qtbot, window, phantom_study_dir):
    from surgplan.ui.qtcompat import emit

    win = window
    assert open_and_wait(qtbot, win, phantom_study_dir)
    lst = win.study.list
    assert lst.count() == 2
    texts = [lst.item(i).text() for i in range(2)]
    assert texts[0].startswith("CT") and texts[1].startswith("MR")  # CT is the default
    assert all(not lst.item(i).icon().isNull() for i in range(2))  # both have thumbnails
    assert win.session.case.volume.modality == "CT"
    mr_item = lst.item(1)
    emit(lst.itemClicked, mr_item)
    vol = win.session.case.volume
    assert vol.modality == "MR"
    axial = win.views[0]
    # MR gets the automatic window (percentiles), not a HU preset.
    assert win.preset_box.currentText() == "auto"
    assert axial.scene.window != (1200.0, 250.0)
    assert axial.pixels().std() > 10
    assert "MR" in win.study.details.text()


def test_unsaved_work_is_kept_on_close_and_recovered(qtbot, settings, phantom_ct_dir,
                                                     small_phantom_truth):
    from surgplan.ui.main_window import MainWindow

    win = MainWindow(settings=settings, font_scale=1.0)
    qtbot.addWidget(win)
    win.show()
    assert open_and_wait(qtbot, win, phantom_ct_dir)
    vol = win.session.case.volume
    assert np.allclose(vol.ijk_to_lps, small_phantom_truth.ijk_to_lps, atol=1e-3)
    win.session.apply("segmentation", anatomy=small_phantom_truth.rename("L5", "L6"))
    win._queue.clear()
    if win.worker is not None:
        win.worker.cancel()
    qtbot.waitUntil(lambda: win.worker is None, timeout=30_000)
    win.close()
    assert win.autosave_path().is_file()
    again = MainWindow(settings=settings, font_scale=1.0)
    qtbot.addWidget(again)
    again.show()
    assert again.act_recover.isEnabled()
    # The study is opened from the path the file names, then the work on it.
    with qtbot.waitSignal(again.jobFinished, timeout=30_000):
        again.recover()
    qtbot.waitUntil(lambda: again.session.state.anatomy is not None, timeout=30_000)
    assert "L6" in again.session.state.anatomy.names
    again._queue.clear()
    if again.worker is not None:
        again.worker.cancel()
    qtbot.waitUntil(lambda: again.worker is None, timeout=30_000)
    again.session.dirty = False
    again.close()
