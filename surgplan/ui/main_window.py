"""SurgPlan's main window: the composition of panels, views, menus and controllers.

The window observes a :class:`~surgplan.ui.session.Session` and hands each kind of
work to a controller that holds its state:

- :class:`~surgplan.ui.open_controller.OpenController` — open by menu, drop or
  command line, File ▸ Recent, the demo case, the series browser;
- :class:`~surgplan.ui.view_controller.ViewController` — what the views show,
  crosshair, window/level, layout, teaching/projector, screenshots;
- :class:`~surgplan.ui.segmentation_controller.SegmentationController` —
  segmentation, Rename/Merge/Split, paint and erase;
- :class:`~surgplan.ui.plan_controller.PlanController` — propose, drag, risk
  panel, entry risk map, views along the tool;
- :class:`~surgplan.ui.measure_controller.MeasureController` — distances and angles;
- :class:`~surgplan.ui.case_controller.CaseController` — ``.surgplan`` files and
  the recovery of unsaved work;
- :class:`~surgplan.ui.report_controller.ReportController` — File ▸ Plan report
  (PDF), with the measurements;
- :class:`~surgplan.ui.jobs.JobRunner` — every long job runs in a worker with the
  progress bar and Cancel in the status bar, one at a time, and only replaces the
  session's content when it succeeded.

The window itself builds the menus, toolbar, docks and status bar, wires signals
to the controllers, persists settings and keeps the actions' enabled state.
"""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
)

from surgplan.ui.case_controller import CaseController
from surgplan.ui.dialogs import show_error
from surgplan.ui.jobs import JobRunner
from surgplan.ui.measure_controller import MeasureController
from surgplan.ui.report_controller import ReportController
from surgplan.ui.open_controller import OpenController
from surgplan.ui.panels import StructurePanel, StudyPanel
from surgplan.ui.plan_controller import ALONG_TOOL_TIP, PlanController
from surgplan.ui.plan_panel import PlanPanel
from surgplan.ui.segmentation_controller import SegmentationController
from surgplan.ui.session import Session
from surgplan.ui.view_controller import ViewController
from surgplan.ui.views import SliceView, View3D, ViewGrid


def _from(view, slot):
    """A slot receiving the emitting ``view`` first, then the signal's arguments."""
    return lambda *args: slot(view, *args)


class MainWindow(QMainWindow):
    """The application window.

    Parameters
    ----------
    settings : QSettings, optional
        Where layout, presets and recent files persist (tests pass a temporary
        INI file); default the user's SurgPlan settings.
    font_scale : float, optional
        VTK text size factor; default 1.5 with the "projector" setting, else 1
        (VTK itself scales text with the screen's DPI).

    Signals
    -------
    jobFinished(str, bool)
        A background job's title and whether it succeeded (tests wait on it).
    """

    jobFinished = Signal(str, bool)

    def __init__(self, settings: Optional[QSettings] = None, font_scale: Optional[float] = None):
        super().__init__()
        self.settings = settings or QSettings("SurgPlan", "SurgPlan")
        self.setWindowTitle("SurgPlan")
        self.setAcceptDrops(True)
        self.session = Session()
        self.session.subscribe(self._on_session)
        self.last_error = None
        projector = self.settings.value("view/projector", False, type=bool)
        # No device-pixel-ratio factor: the VTK widget sets its window's DPI from
        # the screen, and VTK text follows it (a 4K screen gets the same look).
        self.font_scale = font_scale or (1.5 if projector else 1.0)

        self.views = [SliceView(o, self.font_scale) for o in ("axial", "sagittal", "coronal")]
        self.view3d = View3D(self.font_scale)
        self.grid = ViewGrid(self.views + [self.view3d])
        self.setCentralWidget(self.grid)

        self.jobs = JobRunner(self)
        self.viewer = ViewController(self)
        self.opener = OpenController(self)
        self.segmentation = SegmentationController(self)
        self.planner = PlanController(self)
        self.measure = MeasureController(self)
        self.cases = CaseController(self)
        self.reports = ReportController(self)

        for v in self.views:
            v.cursorMoved.connect(self.viewer.set_cursor)
            v.windowChanged.connect(self.viewer.set_window)
            v.painted.connect(_from(v, self.segmentation.paint))
            v.strokeFinished.connect(self.segmentation.stroke_finished)
            v.measured.connect(self.measure.measure)
        for v in self.views + [self.view3d]:
            v.handleMoved.connect(_from(v, self.planner.handle_moved))
            v.handleReleased.connect(_from(v, self.planner.handle_released))

        self.study = StudyPanel()
        self.study.seriesChosen.connect(self.opener.choose_series)
        self.structures = StructurePanel()
        self.structures.visibilityChanged.connect(self.viewer.apply_visibility)
        self.structures.colourChanged.connect(self.viewer.apply_colour)
        self.structures.opacityChanged.connect(self.viewer.apply_opacity)
        self.structures.segment_button.clicked.connect(self.segment)
        self.study_dock = self._add_dock("Study", self.study, Qt.DockWidgetArea.LeftDockWidgetArea,
                                         "studyDock")
        self.structures_dock = self._add_dock("Structures", self.structures,
                                              Qt.DockWidgetArea.LeftDockWidgetArea,
                                              "structuresDock")
        self.plan_panel = PlanPanel(settings=self.settings)
        self.plan_panel.proposeRequested.connect(self.propose_plan)
        self.plan_panel.proposalChosen.connect(self.planner.add_proposal)
        self.plan_panel.trajectorySelected.connect(self.planner.select)
        self.plan_panel.removeRequested.connect(self.remove_trajectory)
        self.plan_panel.riskMapToggled.connect(self.planner.show_risk_map)
        self.plan_panel.follow.setToolTip(ALONG_TOOL_TIP)
        self.plan_panel.follow.toggled.connect(self.planner.set_views_along_tool)
        self.plan_panel.roll.valueChanged.connect(
            lambda v: self.planner.update_trajectory_views())
        self.plan_dock = self._add_dock("Plan", self.plan_panel,
                                        Qt.DockWidgetArea.RightDockWidgetArea, "planDock")
        self.segmentation.build_edit_buttons(self.structures.edit_row)
        self._build_status_bar()
        self._build_actions()
        self._restore_settings()
        self.update_actions()

    # --- construction ----------------------------------------------------------------------
    def _add_dock(self, title, widget, area, name):
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(area, dock)
        return dock

    def _build_status_bar(self):
        sb = self.statusBar()
        self.progress = QProgressBar()
        self.progress.setObjectName("progressBar")
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(320)
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel_job)
        self.status_text = QLabel("")
        sb.addWidget(self.status_text, 1)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel_button)

    def _action(self, text, slot, shortcut=None, checkable=False, tip=""):
        a = QAction(text, self)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        a.setCheckable(checkable)
        if tip:
            a.setToolTip(tip)
            a.setStatusTip(tip)
        a.triggered.connect(slot)
        self.addAction(a)
        return a

    def _build_actions(self):
        m = self.menuBar()
        opener, cases, viewer = self.opener, self.cases, self.viewer
        f = m.addMenu("&File")
        self.act_open = self._action("Open folder…", opener.open_folder_dialog, "Ctrl+O",
                                     tip="Open a folder of DICOM files")
        self.act_open_file = self._action("Open file…", opener.open_file_dialog, "Ctrl+Shift+O",
                                          tip="Open a .zip, DICOMDIR, DICOM or NIfTI/NRRD/MHA file")
        self.act_demo = self._action("Demo case", self.open_demo, "Ctrl+D",
                                     tip="Open the built-in synthetic lumbar CT and MR")
        self.act_save_plan = self._action("Save plan…", cases.save_plan_dialog, "Ctrl+S",
                                          tip="Save the plan and the (edited) segmentation")
        self.act_open_plan = self._action("Open plan…", cases.open_plan_dialog, "Ctrl+Shift+L",
                                          tip="Open a .surgplan file (the study must be at hand)")
        self.act_recover = self._action("Recover unsaved work", self.recover,
                                        tip="Reopen the plan and edits that were not saved "
                                        "when SurgPlan last closed")
        self.act_report = self._action("Plan report (PDF)…", self.reports.report_dialog,
                                       "Ctrl+Shift+P", tip="Write the plan report a surgeon "
                                       "prints, with the measurements (anonymised in the "
                                       "teaching view)")
        self.recent_menu = f.addMenu("Recent")
        self.act_screenshot = self._action("Save screenshot…", viewer.screenshot_dialog, "F12")
        self.act_quit = self._action("Quit", self.close, "Ctrl+Q")
        for a in (self.act_open, self.act_open_file, self.act_demo):
            f.addAction(a)
        f.addMenu(self.recent_menu)
        f.addSeparator()
        f.addAction(self.act_open_plan)
        f.addAction(self.act_save_plan)
        f.addAction(self.act_recover)
        f.addAction(self.act_report)
        f.addSeparator()
        f.addAction(self.act_screenshot)
        f.addAction(self.act_quit)

        e = m.addMenu("&Edit")
        self.act_undo = self._action("Undo", self.session_undo, QKeySequence.StandardKey.Undo)
        self.act_redo = self._action("Redo", self.session_redo, QKeySequence.StandardKey.Redo)
        self.act_segment = self._action("Segment", self.segment, "Ctrl+G",
                                        tip="Find and name the vertebrae, discs and canal")
        self.act_cancel = self._action("Cancel", self.cancel_job, "Esc")
        self.act_propose = self._action("Propose trajectories", self.propose_plan, "Ctrl+R",
                                        tip="Propose the lowest-risk trajectories for the choice "
                                        "in the Plan panel")
        group = QActionGroup(self)
        self.act_navigate = self._action("Navigate", lambda: self.set_mode("navigate"), "N", True)
        self.act_paint = self._action("Paint", lambda: self.set_mode("paint"), "P", True,
                                      tip="Paint the selected structure on the slices")
        self.act_erase = self._action("Erase", lambda: self.set_mode("erase"), "E", True,
                                      tip="Erase the selected structure on the slices")
        self.act_distance = self._action("Measure distance", lambda: self.set_mode("distance"),
                                         "M", True, tip="Drag in a slice to measure a distance")
        self.act_angle = self._action("Measure angle", lambda: self.set_mode("angle"), "A", True,
                                      tip="Drag the first arm from the vertex, then click the "
                                      "end of the second arm")
        self.act_clear_measure = self._action("Clear measurements", self.clear_measurements,
                                              "Shift+M")
        self.act_label_measure = self._action(
            "Name the last measurement…", lambda: self.measure.label_last(), "Ctrl+M",
            tip="Say what the last distance or angle measures; the plan report prints it")
        for a in (self.act_navigate, self.act_paint, self.act_erase, self.act_distance,
                  self.act_angle):
            group.addAction(a)
        self.act_navigate.setChecked(True)
        for a in (self.act_undo, self.act_redo, None, self.act_segment, self.act_propose,
                  self.act_cancel, None,
                  self.act_navigate, self.act_paint, self.act_erase, None, self.act_distance,
                  self.act_angle, self.act_label_measure, self.act_clear_measure):
            e.addSeparator() if a is None else e.addAction(a)

        v = m.addMenu("&View")
        self.preset_actions = {}
        for n, (name, key) in enumerate((("bone", "F5"), ("spine", "F6"), ("soft tissue", "F7"))):
            self.preset_actions[name] = self._action(
                f"Window: {name}", lambda checked=False, nm=name: self.apply_preset(nm), key)
            v.addAction(self.preset_actions[name])
        self.act_auto = self._action("Window: automatic", lambda: self.apply_preset("auto"), "F8")
        v.addAction(self.act_auto)
        v.addSeparator()
        self.act_layout = self._action("One large view", viewer.toggle_layout, "F9", True)
        self.act_teaching = self._action("Hide patient details (teaching)", self.set_teaching,
                                         "F10", True)
        self.act_projector = self._action("Large text (projector)", viewer.set_projector,
                                          "Ctrl+Shift+T", True,
                                          tip="Bigger text everywhere, readable across a room")
        self.act_reset = self._action("Reset views", self.reset_views, "Home")
        self.act_follow = self._action(
            "Views along the tool",
            lambda: self.plan_panel.follow.setChecked(self.act_follow.isChecked()),
            "F4", True, tip=ALONG_TOOL_TIP)
        self.act_volume = self._action("Volume rendering in 3D", viewer.toggle_volume_rendering,
                                       "F11", True)
        for a in (self.act_layout, self.act_teaching, self.act_projector, self.act_reset,
                  self.act_follow, self.act_volume):
            v.addAction(a)

        tb = self.addToolBar("Main")
        tb.setObjectName("mainToolbar")
        for a in (self.act_open, self.act_demo, self.act_segment, self.act_propose, self.act_undo,
                  self.act_redo):
            tb.addAction(a)
        tb.addSeparator()
        self.preset_box = QComboBox()
        self.preset_box.setObjectName("presetBox")
        self.preset_box.addItems(["spine", "bone", "soft tissue", "auto"])
        self.preset_box.setToolTip("Window/level preset (F5–F8); right-drag in a slice to adjust")
        self.preset_box.textActivated.connect(self.apply_preset)
        tb.addWidget(QLabel(" Window "))
        tb.addWidget(self.preset_box)
        tb.addSeparator()
        for a in (self.act_navigate, self.act_paint, self.act_erase, self.act_distance,
                  self.act_angle, self.act_layout, self.act_teaching):
            tb.addAction(a)

    # --- settings --------------------------------------------------------------------------
    def _restore_settings(self):
        geo = self.settings.value("window/geometry")
        if geo is not None:
            self.restoreGeometry(geo)
        else:
            self.resize(1360, 740)
        state = self.settings.value("window/state")
        if state is not None:
            self.restoreState(state)
        self._size_docks = state is None  # first start: sized when first shown
        layout = self.settings.value("view/layout", "grid")
        large = int(self.settings.value("view/large", 0))
        self.grid.set_layout(layout if layout in ViewGrid.LAYOUTS else "grid", large)
        self.act_layout.setChecked(self.grid.layout_name == "one large")
        self.act_teaching.setChecked(self.settings.value("view/teaching", False, type=bool))
        self.act_projector.setChecked(self.settings.value("view/projector", False, type=bool))
        along = self.settings.value("view/alongTool", False, type=bool)
        self.act_follow.setChecked(along)
        self.plan_panel.follow.blockSignals(True)  # no message at start; no plan to follow yet
        self.plan_panel.follow.setChecked(along)
        self.plan_panel.follow.blockSignals(False)
        self.opener.rebuild_recent()
        self.cases.offer_recovery()

    def _save_settings(self):
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        s.setValue("view/layout", self.grid.layout_name)
        s.setValue("view/large", self.grid.large)
        s.setValue("view/teaching", self.act_teaching.isChecked())
        s.setValue("view/projector", self.act_projector.isChecked())
        s.sync()

    # --- session → window ----------------------------------------------------------------------
    def _on_session(self, reason: str):
        if reason in ("case", "series"):
            self.viewer.show_volume()
        if reason == "case":
            self.study.show_case(self.session.case)
            self.viewer.mesh_cache = {}
            # Measurements are points of the study they were drawn on: a new study
            # starts without them (a case file then brings its own back).
            self.measure.replace([])
        if reason == "series":
            self.study.show_details(self.session.case)
        if reason in ("case", "anatomy", "series"):
            self.viewer.show_anatomy()
        self.planner.on_session(reason)
        self.update_actions()
        self.render_all()

    def update_actions(self):
        """Enable what the session and the running job allow."""
        s = self.session
        busy = self.busy
        has_vol = s.case.volume is not None
        self.act_segment.setEnabled(has_vol and not busy)
        self.structures.segment_button.setEnabled(has_vol and not busy)
        editing_ok = self.jobs.editing_ok
        self.act_undo.setEnabled(s.can_undo and editing_ok)
        self.act_redo.setEnabled(s.can_redo and editing_ok)
        self.act_undo.setText("Undo " + s.undo_text if s.can_undo else "Undo")
        self.act_redo.setText("Redo " + s.redo_text if s.can_redo else "Redo")
        for a in (self.act_open, self.act_open_file, self.act_demo, self.act_open_plan):
            a.setEnabled(not busy)
        has_anatomy = s.state.anatomy is not None
        self.act_propose.setEnabled(has_anatomy and not busy)
        self.plan_panel.propose_button.setEnabled(has_anatomy and not busy)
        self.act_save_plan.setEnabled(has_vol and not busy and (
            has_anatomy or s.state.plan is not None or bool(self.measure.measurements)))
        self.act_report.setEnabled(not busy and self.reports.can_report())

    def set_mode(self, mode: str):
        """Mouse mode of the slices: navigate, paint, erase, distance or angle."""
        for v in self.views:
            v.mode = mode
        {"navigate": self.act_navigate, "paint": self.act_paint, "erase": self.act_erase,
         "distance": self.act_distance, "angle": self.act_angle}[mode].setChecked(True)
        self.measure.abandon()
        if mode != "navigate" and not self.structures.selected_name():
            self.status_text.setText("Choose the structure to paint in the Structures list.")

    def report_error(self, what: str, exc: BaseException, detail: str = ""):
        """The one error dialog (see :func:`surgplan.ui.dialogs.show_error`)."""
        self.last_error = show_error(self, what, exc, detail)
        return self.last_error

    # --- the window's public operations (menus, tests, the screenshot run) -------------------
    @property
    def worker(self):
        """The running job's :class:`~surgplan.ui.workers.Worker`, or None."""
        return self.jobs.worker

    @property
    def busy(self) -> bool:
        return self.jobs.busy

    @property
    def _queue(self) -> list:
        """Derived jobs waiting for the running one (the same list as ``jobs.queue``)."""
        return self.jobs.queue

    @property
    def measurements(self) -> list:
        """Finished :class:`~surgplan.planning.measurements.Measurement` values (LPS mm)."""
        return self.measure.measurements

    def run_job(self, title, fn, on_done, *, queue_if_busy: bool = False):
        return self.jobs.run(title, fn, on_done, queue_if_busy=queue_if_busy)

    def cancel_job(self):
        self.jobs.cancel()

    def open_path(self, path: str):
        return self.opener.open_path(path)

    def open_demo(self):
        return self.opener.open_demo()

    def recent_files(self) -> list:
        return self.opener.recent_files()

    def segment(self):
        return self.segmentation.segment()

    def rename(self, old: str, new: str):
        self.segmentation.rename(old, new)

    def propose_plan(self):
        return self.planner.propose_plan()

    def propose_default_plan(self) -> bool:
        return self.planner.propose_default_plan()

    def _add_trajectory(self, trajectory, description: str):
        self.planner.add_trajectory(trajectory, description)

    def remove_trajectory(self, index: int):
        self.planner.remove_trajectory(index)

    def selected_trajectory(self):
        return self.planner.selected_trajectory()

    def show_risk_map(self, on: bool = True):
        return self.planner.show_risk_map(on)

    def clear_measurements(self):
        self.measure.clear()

    def save_case_file(self, path):
        return self.cases.save_case_file(path)

    def open_case_file(self, path):
        return self.cases.open_case_file(path)

    def autosave_path(self):
        return self.cases.autosave_path()

    def recover(self):
        return self.cases.recover()

    def session_undo(self):
        self.session.undo()

    def session_redo(self):
        self.session.redo()

    def render_all(self):
        self.viewer.render_all()

    def set_cursor(self, p_lps):
        self.viewer.set_cursor(p_lps)

    def apply_preset(self, name: str):
        self.viewer.apply_preset(name)

    def set_teaching(self, on=None):
        self.viewer.set_teaching(on)

    def reset_views(self):
        self.viewer.reset_views()

    def screenshot(self):
        return self.viewer.screenshot()

    def save_screenshot(self, path):
        return self.viewer.save_screenshot(path)

    # --- Qt events -------------------------------------------------------------------------------
    def dragEnterEvent(self, ev):
        self.opener.drag_enter(ev)

    def dropEvent(self, ev):
        self.opener.drop(ev)

    def showEvent(self, ev):
        super().showEvent(ev)
        if getattr(self, "_size_docks", False):
            # The views get about half the width, the plan panel enough for its
            # table of structure names, even at 1366 × 768.
            self._size_docks = False
            w = self.width()
            self.resizeDocks([self.study_dock, self.plan_dock], [int(w * 0.19), int(w * 0.28)],
                             Qt.Orientation.Horizontal)
            h = self.height()
            self.resizeDocks([self.study_dock, self.structures_dock], [int(h * 0.4), int(h * 0.6)],
                             Qt.Orientation.Vertical)

    def closeEvent(self, ev):
        self.jobs.shutdown()
        self.cases.autosave()
        self._save_settings()
        for v in self.views + [self.view3d]:
            v.close_vtk()
        super().closeEvent(ev)


__all__ = ["MainWindow"]
