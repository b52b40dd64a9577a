"""SurgPlan's main window: open a study, see it in 2D and 3D, segment and edit.

The window observes a :class:`~surgplan.ui.session.Session`; every long job
(indexing and loading, segmentation, surfaces) runs in a
:class:`~surgplan.ui.workers.Worker` with the progress bar and Cancel in the
status bar, one job at a time, and only replaces the session's content when it
succeeded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence, QPainter
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QWidget,
)

from surgplan.core.progress import SubProgress
from surgplan.imaging.structures import VERTEBRA_ORDER
from surgplan.render import WINDOW_PRESETS_HU, auto_window, label_display
from surgplan.ui.dialogs import show_error
from surgplan.render import ToolGlyph
from surgplan.render.glyphs import TOOL_RGB
from surgplan.ui.panels import StructurePanel, StudyPanel
from surgplan.ui.plan_panel import PlanPanel
from surgplan.ui.session import Case, Session
from surgplan.ui.views import SliceView, View3D, ViewGrid
from surgplan.ui.workers import Worker
from surgplan.ui.qtcompat import emit  # noqa: E402

#: Largest total number of voxels loaded up front for the series browser (all
#: series of a small study get a thumbnail; bigger ones load when chosen).
PRELOAD_VOXELS = 150_000_000
MAX_RECENT = 8
#: While a handle is dragged, the views other than the one under the mouse are
#: redrawn at most this often (ms): the risk panel stays live on software OpenGL.
DRAG_REDRAW_MS = 80
#: Background jobs that derive data from the current state; edits may go on meanwhile.
DERIVED_JOBS = ("Building surfaces", "Preparing the planner")
#: Paint brush radius (mm).
BRUSH_MM = 3.0
#: Structures meshed for the 3D view (others are slices-only: skin, body …).
MESH_KINDS = ("vertebra", "disc", "dural sac", "nerve root", "vessel", "ilium", "rib",
              "spinal canal", "organ")


def _kind(name: str) -> str:
    from surgplan.imaging.structures import kind_of

    try:
        return kind_of(name)
    except ValueError:
        return ""


def _load_case(path: str, *, progress=None, cancel=None) -> Case:
    """Index ``path``, load its default series (and the others while small)."""
    from surgplan.imaging.loader import index_input
    from surgplan.imaging.volume import LoadWarning

    with index_input(path, progress=SubProgress(progress, 0.0, 0.2), cancel=cancel) as study:
        entry = study.default_series()
        total = sum(s.rows * s.columns * s.slices for s in study.series)
        todo = [entry] + ([s for s in study.series if s is not entry] if total <= PRELOAD_VOXELS
                          else [])
        volumes = {}
        for n, s in enumerate(todo):
            sub = SubProgress(progress, 0.2 + 0.8 * n / len(todo), 0.2 + 0.8 * (n + 1) / len(todo))
            vol = s.load(progress=sub, cancel=cancel)
            if study.skipped and s is entry:
                extra = [LoadWarning("skipped-file", f"{sk.path}: {sk.reason}")
                         for sk in study.skipped[:20]]
                if len(study.skipped) > 20:
                    extra.append(LoadWarning("skipped-file",
                                             f"… and {len(study.skipped) - 20} more skipped files"))
                vol = vol.with_warnings(*extra)
            volumes[s.uid] = vol
        return Case(str(path), list(study.series), volumes, entry.uid)


def _load_series(path: str, uid: str, *, progress=None, cancel=None):
    from surgplan.imaging.loader import index_input

    with index_input(path, progress=SubProgress(progress, 0.0, 0.2), cancel=cancel) as study:
        return study.find(uid).load(progress=SubProgress(progress, 0.2, 1.0), cancel=cancel)


def _segment(volume, *, progress=None, cancel=None):
    from surgplan.imaging import segment as seg

    anatomy = seg.segment_volume(volume, progress=SubProgress(progress, 0.0, 0.8), cancel=cancel)
    meshes = _meshes(anatomy, None, progress=SubProgress(progress, 0.8, 1.0), cancel=cancel)
    return anatomy, meshes


def _meshes(anatomy, names, *, progress=None, cancel=None) -> dict:
    from surgplan.render import anatomy_meshes

    wanted = [n for n in (anatomy.names if names is None else names) if _kind(n) in MESH_KINDS]
    return anatomy_meshes(anatomy, wanted, progress=progress, cancel=cancel)


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
        self.worker: Optional[Worker] = None
        self._queue: list = []  # derived jobs waiting for the current one
        self.last_error = None
        self._labels = None
        self._mesh_cache: dict = {}  # (map, label) → Mesh of the current anatomy
        self._prev_anatomy = None
        projector = self.settings.value("view/projector", False, type=bool)
        # No device-pixel-ratio factor: the VTK widget sets its window's DPI from
        # the screen, and VTK text follows it (a 4K screen gets the same look).
        self.font_scale = font_scale or (1.5 if projector else 1.0)

        self.views = [SliceView(o, self.font_scale) for o in ("axial", "sagittal", "coronal")]
        self.view3d = View3D(self.font_scale)
        self.grid = ViewGrid(self.views + [self.view3d])
        self.setCentralWidget(self.grid)
        for v in self.views:
            v.cursorMoved.connect(self.set_cursor)
            v.windowChanged.connect(self.set_window)
            v.painted.connect(self._paint)
            v.strokeFinished.connect(self._stroke_finished)
            v.handleMoved.connect(self._handle_moved)
            v.handleReleased.connect(self._handle_released)
            v.measured.connect(self._measure)
        self.measurements: list = []  # finished (kind, [LPS points]); view annotations
        self._measuring = None  # [kind, points, phase] while one is drawn
        self.view3d.handleMoved.connect(self._handle_moved)
        self.view3d.handleReleased.connect(self._handle_released)
        self._ctx = None  # PlanningContext of self._ctx_for (an Anatomy)
        self._ctx_for = None
        self._proposals: list = []
        self._metrics = None
        self._dragging = None  # (index, Trajectory) while a handle is dragged
        self._skin_mesh = None
        #: What the entry risk map on screen was computed for (procedure, level, side,
        #: tool, target): a map left from an earlier target would mislead.
        self._risk_map_for = None
        self.last_update_ms = None
        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.setInterval(DRAG_REDRAW_MS)
        self._redraw_timer.timeout.connect(self.render_all)

        self.study = StudyPanel()
        self.study.seriesChosen.connect(self.choose_series)
        self.structures = StructurePanel()
        self.structures.visibilityChanged.connect(self._apply_visibility)
        self.structures.colourChanged.connect(self._apply_colour)
        self.structures.opacityChanged.connect(self._apply_opacity)
        self.structures.segment_button.clicked.connect(self.segment)
        self.study_dock = self._add_dock("Study", self.study, Qt.DockWidgetArea.LeftDockWidgetArea,
                                         "studyDock")
        self.structures_dock = self._add_dock("Structures", self.structures,
                                              Qt.DockWidgetArea.LeftDockWidgetArea,
                                              "structuresDock")
        self.plan_panel = PlanPanel()
        self.plan_panel.proposeRequested.connect(self.propose_plan)
        self.plan_panel.proposalChosen.connect(self._add_proposal)
        self.plan_panel.trajectorySelected.connect(self.session_select)
        self.plan_panel.removeRequested.connect(self.remove_trajectory)
        self.plan_panel.riskMapToggled.connect(self.show_risk_map)
        self.plan_panel.follow.toggled.connect(lambda on: self._update_trajectory_views())
        self.plan_panel.roll.valueChanged.connect(lambda v: self._update_trajectory_views())
        self.plan_dock = self._add_dock("Plan", self.plan_panel,
                                        Qt.DockWidgetArea.RightDockWidgetArea, "planDock")
        self._build_edit_buttons()
        self._build_status_bar()
        self._build_actions()
        self._restore_settings()
        self._stroke = None  # the paint stroke being drawn
        self._update_actions()

    # --- construction ----------------------------------------------------------------------
    def _add_dock(self, title, widget, area, name):
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(area, dock)
        return dock

    def _build_edit_buttons(self):
        row = self.structures.edit_row
        self.rename_button = QPushButton("Rename…")
        self.rename_button.setToolTip("Rename the selected vertebra (transitional anatomy)")
        self.rename_button.clicked.connect(self.rename_selected)
        self.merge_button = QPushButton("Merge ↓")
        self.merge_button.setToolTip("Merge the selected vertebra with the one below it")
        self.merge_button.clicked.connect(self.merge_selected)
        self.split_button = QPushButton("Split")
        self.split_button.setToolTip("Split the selected vertebra at the crosshair (axial plane)")
        self.split_button.clicked.connect(self.split_selected)
        for b in (self.rename_button, self.merge_button, self.split_button):
            row.addWidget(b)

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
        f = m.addMenu("&File")
        self.act_open = self._action("Open folder…", self.open_folder_dialog, "Ctrl+O",
                                     tip="Open a folder of DICOM files")
        self.act_open_file = self._action("Open file…", self.open_file_dialog, "Ctrl+Shift+O",
                                          tip="Open a .zip, DICOMDIR, DICOM or NIfTI/NRRD/MHA file")
        self.act_demo = self._action("Demo case", self.open_demo, "Ctrl+D",
                                     tip="Open the built-in synthetic lumbar CT and MR")
        self.act_save_plan = self._action("Save plan…", self.save_plan_dialog, "Ctrl+S",
                                          tip="Save the plan and the (edited) segmentation")
        self.act_open_plan = self._action("Open plan…", self.open_plan_dialog, "Ctrl+Shift+L",
                                          tip="Open a .surgplan file (the study must be at hand)")
        self.act_recover = self._action("Recover unsaved work", self.recover,
                                        tip="Reopen the plan and edits that were not saved "
                                        "when SurgPlan last closed")
        self.recent_menu = f.addMenu("Recent")
        self.act_screenshot = self._action("Save screenshot…", self._screenshot_dialog, "F12")
        self.act_quit = self._action("Quit", self.close, "Ctrl+Q")
        for a in (self.act_open, self.act_open_file, self.act_demo):
            f.addAction(a)
        f.addMenu(self.recent_menu)
        f.addSeparator()
        f.addAction(self.act_open_plan)
        f.addAction(self.act_save_plan)
        f.addAction(self.act_recover)
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
        for a in (self.act_navigate, self.act_paint, self.act_erase, self.act_distance,
                  self.act_angle):
            group.addAction(a)
        self.act_navigate.setChecked(True)
        for a in (self.act_undo, self.act_redo, None, self.act_segment, self.act_propose,
                  self.act_cancel, None,
                  self.act_navigate, self.act_paint, self.act_erase, None, self.act_distance,
                  self.act_angle, self.act_clear_measure):
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
        self.act_layout = self._action("One large view", self.toggle_layout, "F9", True)
        self.act_teaching = self._action("Hide patient details (teaching)", self.set_teaching,
                                         "F10", True)
        self.act_projector = self._action("Large text (projector)", self._set_projector,
                                          "Ctrl+Shift+T", True,
                                          tip="Bigger text everywhere, readable across a room")
        self.act_reset = self._action("Reset views", self.reset_views, "Home")
        self.act_follow = self._action("Views along the tool", lambda: self.plan_panel.follow.toggle(),
                                       "F4", tip="Sagittal along the tool, coronal the probe's eye")
        self.act_volume = self._action("Volume rendering in 3D", self._toggle_volume_rendering,
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
        self._rebuild_recent()
        self.act_recover.setEnabled(self.autosave_path().is_file())
        if self.act_recover.isEnabled():
            self.status_text.setText("Unsaved work from the last session can be recovered: "
                                     "File ▸ Recover unsaved work.")

    def autosave_path(self) -> Path:
        """Where unsaved work is kept when the window closes (beside the settings file)."""
        return Path(self.settings.fileName()).with_name("autosave" + ".surgplan")

    def _autosave(self) -> None:
        """On closing: keep unsaved plan and anatomy edits for File ▸ Recover."""
        from surgplan.ui.case_files import save_case

        st, case = self.session.state, self.session.case
        path = self.autosave_path()
        if not self.session.dirty or case.volume is None or (st.plan is None
                                                              and st.anatomy is None):
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_case(path, st.plan, st.anatomy, case.volume, source=case.source,
                      selected=st.selected)
        except Exception as exc:  # closing must not fail; say what was not kept
            import sys

            print(f"surgplan: unsaved work could not be kept in {path}: {exc}", file=sys.stderr)

    def recover(self) -> Optional[Worker]:
        """Reopen the work kept at the last close (its study is opened first if needed)."""
        path = self.autosave_path()
        if not path.is_file():
            self.status_text.setText("Nothing to recover.")
            return None
        return self.open_case_file(path)

    def _save_settings(self):
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        s.setValue("view/layout", self.grid.layout_name)
        s.setValue("view/large", self.grid.large)
        s.setValue("view/teaching", self.act_teaching.isChecked())
        s.setValue("view/projector", self.act_projector.isChecked())
        s.sync()

    def recent_files(self) -> list:
        value = self.settings.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _add_recent(self, path: str):
        items = [path] + [p for p in self.recent_files() if p != path]
        self.settings.setValue("recent", items[:MAX_RECENT])
        self._rebuild_recent()

    def _rebuild_recent(self):
        self.recent_menu.clear()
        for p in self.recent_files():
            a = self.recent_menu.addAction(p)
            a.triggered.connect(lambda checked=False, path=p: self.open_path(path))
        self.recent_menu.setEnabled(bool(self.recent_files()))

    # --- jobs ----------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.worker is not None

    def run_job(self, title: str, fn: Callable, on_done: Callable, *,
                queue_if_busy: bool = False) -> Optional[Worker]:
        """Run ``fn(progress=, cancel=)`` in a worker thread, then ``on_done(result)``.

        One job at a time: while one runs, a user's request is refused with a
        message, and derived work (``queue_if_busy``: surfaces, the planner's
        distance fields) waits its turn.
        """
        if self.busy:
            if queue_if_busy:
                self._queue.append((title, fn, on_done))
            else:
                self.status_text.setText(
                    f"Busy with {self.worker.title.lower()}: wait or press Cancel.")
            return None
        w = Worker(fn, title, self)
        self.worker = w
        # Queued: the worker emits from its thread; the views change only in this one.
        queued = Qt.ConnectionType.QueuedConnection
        w.progressed.connect(self._job_progress, queued)
        w.succeeded.connect(lambda result: self._job_done(w, on_done, result), queued)
        w.failed.connect(lambda exc, tb: self._job_failed(w, exc, tb), queued)
        w.cancelled.connect(lambda: self._job_cancelled(w), queued)
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.cancel_button.setVisible(True)
        self.status_text.setText(title + " …")
        self._update_actions()
        w.start()
        return w

    def _job_progress(self, fraction, message):
        self.progress.setValue(int(fraction * 1000))
        if self.worker is not None:
            self.status_text.setText(f"{self.worker.title}: {message}")

    def _end_job(self, w: Worker, message: str, ok: bool):
        w.wait()
        self.worker = None
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)
        self.status_text.setText(message)
        self._update_actions()
        w.deleteLater()
        emit(self.jobFinished, w.title, ok)
        if self._queue and self.worker is None:
            title, fn, on_done = self._queue.pop(0)
            QTimer.singleShot(0, lambda: self.run_job(title, fn, on_done, queue_if_busy=True))

    def _job_done(self, w, on_done, result):
        try:
            on_done(result)
        except Exception as exc:  # the error dialog shows it; the old state stays
            import traceback

            self._end_job(w, f"{w.title} failed.", False)
            self.report_error(f"{w.title} failed", exc, traceback.format_exc())
            return
        self._end_job(w, f"{w.title}: done.", True)

    def _job_failed(self, w, exc, tb):
        self._end_job(w, f"{w.title} failed.", False)
        self.report_error(f"{w.title} failed", exc, tb)

    def _job_cancelled(self, w):
        self._end_job(w, f"{w.title}: cancelled; nothing changed.", False)

    def cancel_job(self):
        if self.worker is not None:
            self.worker.cancel()
            self.status_text.setText(f"Cancelling {self.worker.title.lower()} …")

    def report_error(self, what: str, exc: BaseException, detail: str = ""):
        """The one error dialog (see :func:`surgplan.ui.dialogs.show_error`)."""
        self.last_error = show_error(self, what, exc, detail)
        return self.last_error

    # --- open ----------------------------------------------------------------------------------
    def open_folder_dialog(self):
        d = QFileDialog.getExistingDirectory(self, "Open a study folder",
                                             self.settings.value("lastDir", str(Path.home())))
        if d:
            self.settings.setValue("lastDir", d)
            self.open_path(d)

    def open_file_dialog(self):
        f, _ = QFileDialog.getOpenFileName(
            self, "Open a study file", self.settings.value("lastDir", str(Path.home())),
            "Studies (*.zip DICOMDIR *.dcm *.nii *.nii.gz *.nrrd *.mha *.mhd);;All files (*)")
        if f:
            self.settings.setValue("lastDir", str(Path(f).parent))
            self.open_path(f)

    def open_path(self, path: str) -> Optional[Worker]:
        """Open a folder, zip, DICOMDIR or volume file in the background."""
        path = str(path)

        def done(case):
            self.session.set_case(case)
            self._add_recent(path)

        return self.run_job("Opening " + (Path(path).name or path),
                            lambda **kw: _load_case(path, **kw), done)

    def open_demo(self) -> Optional[Worker]:
        """Write the demo case once to the cache (as ``surgplan gui`` does) and open it."""
        from surgplan.cli import ensure_demo_case

        def work(progress=None, cancel=None):
            demo = ensure_demo_case(SubProgress(progress, 0.0, 0.5))
            return _load_case(str(demo), progress=SubProgress(progress, 0.5, 1.0), cancel=cancel)

        return self.run_job("Opening the demo case", work, self.session.set_case)

    def choose_series(self, uid: str):
        case = self.session.case
        if uid == case.current_uid:
            return
        if uid in case.volumes:
            self.session.select_series(uid)
            return

        def done(vol):
            case.volumes[uid] = vol
            self.session.select_series(uid)
            self.study.show_case(case)

        self.run_job("Loading series", lambda **kw: _load_series(case.source, uid, **kw), done)

    def dragEnterEvent(self, ev):
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def dropEvent(self, ev):
        urls = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        if urls:
            ev.acceptProposedAction()
            self.open_path(urls[0])

    # --- segmentation -------------------------------------------------------------------------
    def segment(self) -> Optional[Worker]:
        vol = self.session.case.volume
        if vol is None:
            self.status_text.setText("Open a CT study first (File ▸ Open, or the demo case).")
            return None

        def done(result):
            anatomy, meshes = result
            self._mesh_cache = {}
            for name, mesh in meshes.items():
                s = anatomy.structure(name)
                self._mesh_cache[(s.map, s.label)] = mesh
            self.session.apply("segmentation", anatomy=anatomy)
            # Centre the slices on the middle lumbar level, where planning starts.
            verts = [n for n in ("L4", "L3", "L5") if n in anatomy.names]
            centre = anatomy.centroid_lps(verts[0]) if verts else None
            if centre is not None:
                self.set_cursor(centre)

        return self.run_job("Segmenting", lambda **kw: _segment(vol, **kw), done)

    # --- session → views ---------------------------------------------------------------------
    def _on_session(self, reason: str):
        if reason in ("case", "series"):
            self._show_volume()
        if reason == "case":
            self.study.show_case(self.session.case)
            self._mesh_cache = {}
        if reason == "series":
            self.study.show_details(self.session.case)
        if reason in ("case", "anatomy", "series"):
            self._show_anatomy()
            self.plan_panel.set_anatomy(self.session.state.anatomy)
            if self.plan_panel.risk_map.isChecked():
                self.plan_panel.risk_map.setChecked(False)
        if reason in ("case", "anatomy", "plan"):
            self._show_plan()
        if (reason == "plan" and self.plan_panel.risk_map.isChecked()
                and self._risk_map_for != self._risk_map_key()):
            self.show_risk_map(True)  # the target, tool or selection moved: recompute
        self._update_actions()
        self.render_all()

    def _show_volume(self):
        vol = self.session.case.volume
        if vol is None:
            return
        window = auto_window(vol.array, modality=vol.modality)
        md = vol.metadata
        upper_left = f"{md.patient_name or 'Anonymous'}\nID {md.patient_id or '—'}"
        upper_right = f"{vol.modality} {md.series_description}\n{md.study_date}"
        for v in self.views:
            v.scene.set_volume(vol, window=window)
            v.scene.set_patient_text(upper_left, upper_right)
            v._user_camera = False
            if v.isVisible():
                v.GetRenderWindow().SetSize(*v._device_size())
            v.scene.reset_camera()
        self.view3d.scene.set_patient_text(upper_left, upper_right)
        self.set_teaching(self.act_teaching.isChecked())
        # The user's last preset for CT (calibrated HU); MR always starts automatic.
        preset = str(self.settings.value("view/preset", "spine")) if vol.modality == "CT" else "auto"
        if preset in WINDOW_PRESETS_HU:
            window = WINDOW_PRESETS_HU[preset]
            for v in self.views:
                v.scene.set_window(*window)
        self.preset_box.setCurrentText(preset if preset in WINDOW_PRESETS_HU else "auto")
        self.setWindowTitle(f"SurgPlan — {Path(self.session.case.source).name}")
        if self.act_volume.isChecked():
            self.view3d.scene.set_volume_rendering(vol, True)

    def _show_anatomy(self):
        anatomy = self.session.state.anatomy
        vol = self.session.case.volume
        # The anatomy is drawn on a series only when it lies on that series' grid
        # (another series of the study may share it, as the phantom's MR does).
        usable = (anatomy is not None and vol is not None
                  and tuple(anatomy.shape) == vol.array.shape
                  and np.allclose(anatomy.ijk_to_lps, vol.ijk_to_lps, atol=1e-3))
        self.structures.show_anatomy(anatomy if usable else None)
        if not usable:
            self._labels = None
            for v in self.views:
                v.scene.set_labels(None)
            self.view3d.scene.set_surfaces({})
            self._prev_anatomy = anatomy
            return
        self._labels = label_display(anatomy)
        visible = self.structures.visible_names()
        colours = self.structures.colours()
        for v in self.views:
            v.scene.set_labels(self._labels, visible=visible, colours=colours)
            v.scene.set_overlay_opacity(self.structures.opacity.value() / 100.0)
        self._update_meshes(anatomy)
        first = self._prev_anatomy is None
        self._prev_anatomy = anatomy
        if first:
            self.view3d.scene.reset_camera()

    def _update_meshes(self, anatomy, names=None):
        """Surfaces for the 3D view; re-mesh only structures whose voxels changed."""
        prev = self._prev_anatomy
        if prev is not None and prev is not anatomy and tuple(prev.shape) == tuple(anatomy.shape):
            for m in ("vertebrae", "structures"):
                a, b = getattr(prev, m), getattr(anatomy, m)
                if a is b:
                    continue
                diff = a != b
                if diff.any():
                    changed = set(np.unique(a[diff]).tolist()) | set(np.unique(b[diff]).tolist())
                    for lab in changed - {0}:
                        self._mesh_cache.pop((m, int(lab)), None)
        labels_now = {(s.map, s.label) for s in anatomy.items}
        for key in list(self._mesh_cache):
            if key not in labels_now:
                del self._mesh_cache[key]
        missing = [s.name for s in anatomy.items
                   if (s.map, s.label) not in self._mesh_cache and _kind(s.name) in MESH_KINDS]
        if len(missing) > 2:
            # Many surfaces (an anatomy opened or restored): build them in the
            # background and show the slices meanwhile.
            QTimer.singleShot(0, lambda: self._build_meshes_job(anatomy, missing))
        elif missing:
            # One or two edited structures: a fraction of a second, done in place.
            self._store_meshes(anatomy, _meshes(anatomy, missing))
        self._show_meshes(anatomy)

    def _store_meshes(self, anatomy, meshes: dict) -> None:
        for name, mesh in meshes.items():
            s = anatomy.structure(name)
            self._mesh_cache[(s.map, s.label)] = mesh

    def _build_meshes_job(self, anatomy, names):
        def done(meshes):
            if self.session.state.anatomy is anatomy:
                self._store_meshes(anatomy, meshes)
                self._show_meshes(anatomy)
                self.view3d.scene.reset_camera()
                self.view3d.render()

        self.run_job("Building surfaces", lambda **kw: _meshes(anatomy, names, **kw), done,
                     queue_if_busy=True)

    def _show_meshes(self, anatomy) -> None:
        meshes = {}
        for s in anatomy.items:
            mesh = self._mesh_cache.get((s.map, s.label))
            if mesh is not None:
                meshes[s.name] = mesh
        self.session.meshes = meshes
        visible = self.structures.visible_names()
        self.view3d.scene.set_surfaces(
            meshes, visible=[n for n in meshes if n in visible and _kind(n) not in
                             ("spinal canal", "organ")],
            colours=self.structures.colours())

    def _apply_visibility(self):
        visible = self.structures.visible_names()
        for v in self.views:
            v.scene.set_label_visibility(visible)
        self.view3d.scene.set_visible(visible)
        self.render_all()

    def _apply_colour(self, name, rgb):
        colours = self.structures.colours()
        for v in self.views:
            v.scene.set_label_colours(colours)
        self.view3d.scene.set_colour(name, rgb)
        self.render_all()

    def _apply_opacity(self, opacity):
        for v in self.views:
            v.scene.set_overlay_opacity(opacity)
        self.render_all()

    def render_all(self):
        for v in self.views + [self.view3d]:
            v.render()

    # --- navigation -----------------------------------------------------------------------------
    def set_cursor(self, p_lps):
        """Move the linked crosshair: every slice view goes through ``p_lps``."""
        for v in self.views:
            v.scene.set_cursor(p_lps)
        self.render_all()

    def set_window(self, width: float, level: float):
        for v in self.views:
            v.scene.set_window(width, level)
        self.render_all()

    def apply_preset(self, name: str):
        """Window preset: ``bone``, ``spine``, ``soft tissue`` (HU) or ``auto``."""
        vol = self.session.case.volume
        if vol is None:
            return
        if name == "auto":
            w, lv = auto_window(vol.array, modality="" if vol.modality == "CT" else vol.modality)
        else:
            w, lv = WINDOW_PRESETS_HU[name]
        self.preset_box.setCurrentText(name)
        self.settings.setValue("view/preset", name)
        self.set_window(w, lv)

    def toggle_layout(self):
        self.grid.set_layout("one large" if self.act_layout.isChecked() else "grid")
        QTimer.singleShot(0, self.reset_views)

    def set_teaching(self, on=None):
        """Hide (``True``) or show the patient and series text in every view."""
        on = self.act_teaching.isChecked() if on is None else bool(on)
        self.act_teaching.setChecked(on)
        for v in self.views:
            v.scene.set_patient_text_visible(not on)
        self.view3d.scene.set_patient_text_visible(not on)
        self.render_all()

    def _set_projector(self):
        """Large text for a projector (1.5 × the panels' and the views' text), or normal."""
        on = self.act_projector.isChecked()
        self.settings.setValue("view/projector", on)
        self.font_scale = 1.5 if on else 1.0
        for v in self.views + [self.view3d]:
            v.scene.set_font_scale(self.font_scale)
        app = QApplication.instance()
        if app is not None:
            from surgplan.ui.app import FONT_PT

            f = app.font()
            f.setPointSizeF(FONT_PT * (1.35 if on else 1.0))
            app.setFont(f)
        self.render_all()

    def reset_views(self):
        for v in self.views:
            v.fit()
        self.view3d.scene.reset_camera()
        self.render_all()

    def _toggle_volume_rendering(self):
        self.view3d.scene.set_volume_rendering(self.session.case.volume, self.act_volume.isChecked())
        self.view3d.render()

    # --- editing -----------------------------------------------------------------------------------
    def set_mode(self, mode: str):
        for v in self.views:
            v.mode = mode
        {"navigate": self.act_navigate, "paint": self.act_paint, "erase": self.act_erase,
         "distance": self.act_distance, "angle": self.act_angle}[mode].setChecked(True)
        self._measuring = None
        if mode != "navigate" and not self.structures.selected_name():
            self.status_text.setText("Choose the structure to paint in the Structures list.")

    def _paint(self, p_lps, erase: bool):
        """One dab of a paint/erase stroke: previewed in the slices at once (only the
        brush's voxels of the display map change); the anatomy is edited once, when
        the stroke ends (one undo step)."""
        from surgplan.imaging.anatomy_edits import brush_mask

        anatomy = self.session.state.anatomy
        name = self.structures.selected_name()
        if anatomy is None or not name or self._labels is None:
            return
        view = self.sender()
        normal = view.scene.n if isinstance(view, SliceView) else None
        stroke = self._stroke
        if stroke is None:
            # The preview draws into a private copy of the display map.
            import dataclasses

            self._labels = dataclasses.replace(self._labels, array=np.array(self._labels.array))
            stroke = self._stroke = {"name": name, "erase": erase, "normal": normal, "points": []}
            for v in self.views:
                v.scene.set_labels(self._labels, visible=self.structures.visible_names(),
                                   colours=self.structures.colours())
        stroke["points"].append(np.asarray(p_lps, float))
        brush = brush_mask(anatomy, p_lps, BRUSH_MM, normal_lps=normal)
        if brush is None:
            return
        sl, m = brush
        value = self._labels.value_of(name)
        block = self._labels.array[sl]
        if erase:
            block[m & (block == value)] = 0
        else:
            block[m] = value
        for v in self.views:
            v.scene.labels_modified()
        self.render_all()

    def _measure(self, mode: str, p_lps, released: bool):
        """Build a distance (press → release) or an angle (vertex → first arm by a drag,
        then a click at the end of the second arm) from slice-view mouse events."""
        from surgplan.render.slice_scene import measurement_text

        p = np.asarray(p_lps, float)
        m = self._measuring
        if m is None or m[0] != mode:
            # A press starts a measurement: a distance [start, end] or an angle
            # [arm end, vertex] (both at the press point until the mouse moves).
            m = self._measuring = [mode, [p, p.copy()], 1]
        elif mode == "angle" and m[2] == 2 and len(m[1]) == 2:
            m[1].append(p)  # the press of the second arm
        elif mode == "distance":
            m[1][1] = p
        elif m[2] == 1:
            m[1][0] = p
        else:
            m[1][2] = p
        if released:
            if mode == "distance" or m[2] == 2:
                self.measurements.append((mode, [q.copy() for q in m[1]]))
                self._measuring = None
                self.status_text.setText(f"Measured {measurement_text(mode, m[1])}")
            else:
                m[2] = 2  # now the second arm
        self._show_measurements()

    def _show_measurements(self):
        items = list(self.measurements)
        if self._measuring is not None:
            items.append((self._measuring[0], list(self._measuring[1])))
        for v in self.views:
            v.scene.set_measurements(items)
        self.render_all()

    def clear_measurements(self):
        self.measurements = []
        self._measuring = None
        self._show_measurements()

    def _stroke_finished(self):
        from surgplan.imaging.anatomy_edits import paint_stroke

        stroke, self._stroke = self._stroke, None
        anatomy = self.session.state.anatomy
        if stroke is None or anatomy is None:
            return
        try:
            edited = paint_stroke(anatomy, stroke["name"], stroke["points"], BRUSH_MM,
                                  erase=stroke["erase"], normal_lps=stroke["normal"])
        except (KeyError, ValueError) as exc:
            self.report_error("Painting failed", exc)
            edited = anatomy
        if edited is anatomy:
            self._show_anatomy()  # drop the preview
            self.render_all()
            return
        verb = "erase" if stroke["erase"] else "paint"
        self.session.apply(f"{verb} {stroke['name']}", anatomy=edited)

    def _edit(self, description: str, fn):
        anatomy = self.session.state.anatomy
        if anatomy is None:
            self.status_text.setText("Segment first: there is no anatomy to edit.")
            return
        try:
            edited = fn(anatomy)
        except (KeyError, ValueError) as exc:
            self.report_error(description.capitalize() + " is not possible", exc)
            return
        self.session.apply(description, anatomy=edited)

    def rename_selected(self):
        name = self.structures.selected_name()
        anatomy = self.session.state.anatomy
        if anatomy is None or not name:
            return
        choices = [n for n in VERTEBRA_ORDER if n == name or n not in anatomy.names]
        new, ok = QInputDialog.getItem(self, "Rename vertebra", f"New name for {name}:",
                                       choices, choices.index(name) if name in choices else 0,
                                       False)
        if ok and new and new != name:
            self.rename(name, new)

    def rename(self, old: str, new: str):
        self._edit(f"rename {old} → {new}", lambda a: a.rename(old, new))

    def merge_selected(self):
        from surgplan.imaging.anatomy_edits import merge

        name = self.structures.selected_name()
        anatomy = self.session.state.anatomy
        if anatomy is None or not name:
            return
        verts = list(anatomy.vertebra_names)
        if name not in verts or verts.index(name) + 1 >= len(verts):
            self.status_text.setText("Select a vertebra that has one below it to merge.")
            return
        below = verts[verts.index(name) + 1]
        self._edit(f"merge {below} into {name}", lambda a: merge(a, name, below))

    def split_selected(self):
        from surgplan.imaging.anatomy_edits import split

        name = self.structures.selected_name()
        anatomy = self.session.state.anatomy
        if anatomy is None or not name:
            return
        free = [n for n in VERTEBRA_ORDER if n not in anatomy.names]
        new, ok = QInputDialog.getItem(self, "Split vertebra",
                                       f"Name of the part of {name} above the crosshair:", free, 0,
                                       False)
        if ok and new:
            p = self.views[0].scene.cursor_lps
            self._edit(f"split {name}", lambda a: split(a, name, p, (0.0, 0.0, 1.0), new))

    def session_undo(self):
        self.session.undo()

    def session_redo(self):
        self.session.redo()

    def _update_actions(self):
        s = self.session
        has_vol = s.case.volume is not None
        self.act_segment.setEnabled(has_vol and not self.busy)
        self.structures.segment_button.setEnabled(has_vol and not self.busy)
        # Derived work (surfaces, distance fields) never blocks editing: its result
        # is dropped when the anatomy it was made for is no longer current.
        editing_ok = not self.busy or self.worker.title in DERIVED_JOBS
        self.act_undo.setEnabled(s.can_undo and editing_ok)
        self.act_redo.setEnabled(s.can_redo and editing_ok)
        self.act_undo.setText("Undo " + s.undo_text if s.can_undo else "Undo")
        self.act_redo.setText("Redo " + s.redo_text if s.can_redo else "Redo")
        for a in (self.act_open, self.act_open_file, self.act_demo, self.act_open_plan):
            a.setEnabled(not self.busy)
        has_anatomy = s.state.anatomy is not None
        self.act_propose.setEnabled(has_anatomy and not self.busy)
        self.plan_panel.propose_button.setEnabled(has_anatomy and not self.busy)
        self.act_save_plan.setEnabled(has_vol and (has_anatomy or s.state.plan is not None)
                                      and not self.busy)


    # --- planning -------------------------------------------------------------------------------
    def _context(self):
        """The PlanningContext of the current anatomy, or None while it is not built."""
        a = self.session.state.anatomy
        return self._ctx if (a is not None and self._ctx_for is a) else None

    def _build_context(self, work_after=None):
        anatomy, vol = self.session.state.anatomy, self.session.case.volume

        def work(progress=None, cancel=None):
            from surgplan.planning import PlanningContext

            return PlanningContext.build(anatomy, vol, progress=progress, cancel=cancel)

        def done(ctx):
            self._ctx, self._ctx_for = ctx, anatomy
            if self.session.state.anatomy is anatomy:
                self._show_plan()

        if any(q[0] == "Preparing the planner" for q in self._queue):
            return None
        return self.run_job("Preparing the planner", work, done, queue_if_busy=True)

    def propose_plan(self) -> Optional[Worker]:
        """Propose trajectories for the Plan panel's procedure, level, side and tool."""
        from surgplan.core.progress import check

        anatomy, vol = self.session.state.anatomy, self.session.case.volume
        if anatomy is None:
            self.status_text.setText("Segment first: proposals need the anatomy.")
            return None
        panel = self.plan_panel
        proc, level, side, tool = (panel.procedure_key(), panel.level.currentText(),
                                   panel.side.currentText(), panel.tool_obj())
        ctx = self._context()

        def work(progress=None, cancel=None):
            from surgplan.planning import PlanningContext, propose

            c = ctx or PlanningContext.build(anatomy, vol, progress=SubProgress(progress, 0, 0.85),
                                             cancel=cancel)
            check(cancel)
            if progress:
                progress(0.9, f"proposing {proc} {level} {side}")
            return c, propose(c, proc, level, side, tool=tool, count=3)

        def done(result):
            c, props = result
            self._ctx, self._ctx_for = c, anatomy
            self._proposals = list(props)
            self.plan_panel.show_proposals(props)
            if props:
                t = props[0].trajectory
                self._add_trajectory(t, f"propose {t.name}")
                self.set_cursor(np.asarray(t.target_lps))
                self.view3d.scene.focus(np.asarray(t.target_lps), 120.0)
                self.view3d.render()

        return self.run_job("Proposing", work, done)

    def propose_default_plan(self) -> bool:
        """The screenshot's plan: teld L4-L5 left when the anatomy has that level."""
        anatomy = self.session.state.anatomy
        if anatomy is None or not {"L4", "L5"} <= set(anatomy.names):
            return False
        self.plan_panel.choose("teld", "L4-L5", "left")
        return self.propose_plan() is not None

    def _add_trajectory(self, trajectory, description: str):
        from surgplan.planning import CaseReference, Plan

        plan = self.session.state.plan or Plan(CaseReference.from_volume(self.session.case.volume))
        new = plan.with_trajectory(trajectory)
        idx = [t.name for t in new.trajectories].index(trajectory.name)
        self.session.apply(description, plan=new, selected=idx)

    def _add_proposal(self, index: int):
        import dataclasses

        if 0 <= index < len(self._proposals):
            t = self._proposals[index].trajectory
            alt = dataclasses.replace(t, name=f"{t.name} #{index + 1}") if index else t
            self._add_trajectory(alt, f"add {alt.name}")

    def remove_trajectory(self, index: int):
        plan = self.session.state.plan
        if plan is None or not 0 <= index < len(plan.trajectories):
            return
        name = plan.trajectories[index].name
        new = plan.without(name)
        self.session.apply(f"remove {name}", plan=new,
                           selected=min(index, len(new.trajectories) - 1))

    def session_select(self, index: int):
        if index != self.session.state.selected:
            self.session.select(index)

    def selected_trajectory(self):
        plan, i = self.session.state.plan, self.session.state.selected
        if plan is None or not 0 <= i < len(plan.trajectories):
            return None
        return plan.trajectories[i]

    def _glyphs(self, override=None):
        plan = self.session.state.plan
        if plan is None:
            return []
        out = []
        for i, t in enumerate(plan.trajectories):
            if override and i in override:
                t = override[i]
            sel = i == self.session.state.selected
            out.append(ToolGlyph(t.entry_lps, t.target_lps, t.tool.diameter_mm,
                                 colour=TOOL_RGB if sel else (150, 160, 190), label=t.name,
                                 selected=sel))
        return out

    def _show_tools(self, override=None):
        glyphs = self._glyphs(override)
        for v in self.views:
            v.scene.set_tools(glyphs)
        self.view3d.scene.set_tools(glyphs)
        sel = self.session.state.selected
        self._update_trajectory_views(override.get(sel) if override else None)

    def _update_trajectory_views(self, trajectory=None):
        """Sagittal → along the selected tool, coronal → its probe's eye (or back)."""
        from surgplan.render import STANDARD_AXES, trajectory_axes

        t = trajectory or self.selected_trajectory()
        sag, cor = self.views[1].scene, self.views[2].scene
        if sag.volume is None:
            return
        if self.plan_panel.follow.isChecked() and t is not None:
            axes = trajectory_axes(t.entry_lps, t.target_lps, self.plan_panel.roll.value())
            target = np.asarray(t.target_lps)
            sag.set_axes(*axes["along"], name="along the tool")
            sag.set_cursor(target)
            cor.set_axes(*axes["probe"], name="probe's eye")
            cor.set_cursor(target)
        else:
            sag.set_axes(*STANDARD_AXES["sagittal"], name="sagittal")
            cor.set_axes(*STANDARD_AXES["coronal"], name="coronal")
        self.views[1].render()
        self.views[2].render()

    def _show_plan(self):
        plan = self.session.state.plan
        self.plan_panel.show_plan(plan, self.session.state.selected)
        self._show_tools()
        t = self.selected_trajectory()
        ctx = self._context()
        if t is None:
            self._metrics = None
        elif ctx is not None:
            from surgplan.planning import evaluate

            self._metrics = evaluate(ctx, t)
        else:
            self._metrics = None
            if self.session.state.anatomy is not None:
                # The anatomy changed (edited, undone, opened): the risk engine
                # works on the new one once its distance fields are ready.
                QTimer.singleShot(0, self._build_context)
        self.plan_panel.show_metrics(self._metrics)
        self.render_all()

    def _dragged_trajectory(self, view, index, which, p_lps):
        plan = self.session.state.plan
        if plan is None or not 0 <= index < len(plan.trajectories):
            return None
        t = plan.trajectories[index]
        orig = np.asarray(t.entry_lps if which == "entry" else t.target_lps)
        p = np.asarray(p_lps, float)
        if isinstance(view, SliceView):
            # Move within the plane parallel to the view through the handle: the
            # handle keeps its depth, so an entry off this slice is not pulled onto it.
            n = view.scene.n
            p = p + n * float((orig - p) @ n)
        try:
            return t.with_entry(p) if which == "entry" else t.with_target(p)
        except ValueError:
            return None  # entry and target would coincide: ignore this position

    def _handle_moved(self, index, which, p_lps):
        import time

        t0 = time.perf_counter()
        new = self._dragged_trajectory(self.sender(), index, which, p_lps)
        if new is None:
            return
        self._dragging = (index, new)
        ctx = self._context()
        if ctx is not None:
            from surgplan.planning import evaluate

            self._metrics = evaluate(ctx, new)
            self.plan_panel.show_metrics(self._metrics)
        self._show_tools({index: new})
        # The risk panel and the view under the mouse follow every move; the other
        # views (the 3D one costs most without a GPU) at most every DRAG_REDRAW_MS.
        view = self.sender()
        if hasattr(view, "render"):
            view.render()
        if not self._redraw_timer.isActive():
            self._redraw_timer.start()
        self.last_update_ms = (time.perf_counter() - t0) * 1000.0

    def _handle_released(self, index, which, p_lps):
        new = self._dragged_trajectory(self.sender(), index, which, p_lps)
        self._dragging = None
        if new is None:
            self._show_plan()
            return
        plan = self.session.state.plan
        if new != plan.trajectories[index]:
            self.session.apply(f"move {which} of {new.name}", plan=plan.with_trajectory(new))

    def show_risk_map(self, on: bool = True):
        """Colour the skin by the best achievable risk of an entry there (selected target)."""
        if not on:
            self._risk_map_for = None
            self.view3d.scene.set_scalar_surface(None, None, 0, 1)
            self.view3d.render()
            return None
        ctx, t = self._context(), self.selected_trajectory()
        if ctx is None or t is None or ctx.outline is None:
            self.plan_panel.risk_map.setChecked(False)
            self.status_text.setText("The entry risk map needs a trajectory (Propose first).")
            return None
        cached = self._skin_mesh if self._skin_mesh and self._skin_mesh[0] is ctx else None

        def work(progress=None, cancel=None):
            from surgplan.imaging.meshes import mesh_from_mask
            from surgplan.planning import entry_risk_map

            if progress:
                progress(0.0, "skin surface")
            mesh = cached[1] if cached else mesh_from_mask(ctx.outline, ctx.anatomy.ijk_to_lps,
                                                           "skin", max_triangles=40_000)
            if progress:
                progress(0.3, "risk of every entry")
            risk = entry_risk_map(ctx, t.procedure, t.target_lps, mesh.vertices_lps,
                                  level=t.level, side=t.side, tool=t.tool)
            return mesh, risk

        def done(result):
            mesh, risk = result
            self._skin_mesh = (ctx, mesh)
            if not self.plan_panel.risk_map.isChecked():
                return  # switched off while it was computed
            self._risk_map_for = key
            self.view3d.scene.set_scalar_surface(mesh, risk, 0.0, 1.0, opacity=0.9)
            self.view3d.render()

        key = self._risk_map_key()
        return self.run_job("Entry risk map", work, done, queue_if_busy=True)

    def _risk_map_key(self):
        t = self.selected_trajectory()
        if t is None:
            return None
        return (t.procedure, t.level, t.side, t.tool, tuple(np.round(t.target_lps, 3)))

    # --- plan files ----------------------------------------------------------------------------
    def save_plan_dialog(self):
        f, _ = QFileDialog.getSaveFileName(self, "Save plan", "plan.surgplan",
                                           "SurgPlan case (*.surgplan)")
        if f:
            self.save_case_file(f)

    def save_case_file(self, path) -> Optional[Worker]:
        """Save the plan and the (edited) segmentation as one ``.surgplan`` file."""
        from surgplan.ui.case_files import save_case

        st, case = self.session.state, self.session.case
        vol = case.volume
        plan, anatomy = st.plan, st.anatomy

        def done(p):
            self.session.dirty = False
            self._add_recent_plan(str(p))
            if Path(p) != self.autosave_path():
                self.autosave_path().unlink(missing_ok=True)
                self.act_recover.setEnabled(False)

        return self.run_job("Saving the plan", lambda **kw: save_case(
            path, plan, anatomy, vol, source=case.source, selected=st.selected, **kw), done)

    def _add_recent_plan(self, path: str):
        self.settings.setValue("lastPlan", path)

    def open_plan_dialog(self):
        f, _ = QFileDialog.getOpenFileName(self, "Open plan", self.settings.value("lastPlan", ""),
                                           "SurgPlan case (*.surgplan);;All files (*)")
        if f:
            self.open_case_file(f)

    def open_case_file(self, path) -> Optional[Worker]:
        """Open a ``.surgplan`` file on the open study, or open its study first."""
        from surgplan.ui.case_files import load_case, read_manifest

        try:
            manifest = read_manifest(path)
        except Exception as exc:
            self.report_error("Opening the plan failed", exc)
            return None
        case = self.session.case
        uid = manifest.get("series_uid", "")
        match = next((u for u, v in case.volumes.items()
                      if not uid or v.metadata.series_instance_uid == uid), None)
        if match is None:
            source = manifest.get("source", "")
            if source and Path(source).exists():
                def opened(title, ok):
                    self.jobFinished.disconnect(opened)
                    if ok:
                        QTimer.singleShot(0, lambda: self.open_case_file(path))

                self.jobFinished.connect(opened)
                return self.open_path(source)
            from surgplan.core.errors import PlanFileError

            self.report_error("Opening the plan failed", PlanFileError(
                f"{path}: its study ({source or 'unknown'}, series {uid or '?'}) is not open and "
                "was not found; open the study first, then the plan."))
            return None
        if match != case.current_uid:
            self.session.select_series(match)
        vol = case.volumes[match]

        def done(result):
            manifest, plan, anatomy = result
            self._mesh_cache = {}
            self._prev_anatomy = None
            self.session.apply(f"open {Path(path).name}", anatomy=anatomy, plan=plan,
                               selected=int(manifest.get("selected", -1)))
            self.session.dirty = False

        return self.run_job("Opening the plan", lambda **kw: load_case(path, vol), done)

    # --- screenshots ------------------------------------------------------------------------------
    def screenshot(self):
        """The whole window as a QImage, with the VTK views' real pixels painted in.

        Qt's grab sees the widgets but not what OpenGL drew, so each view's
        pixels are read back from VTK and composed into the grab.
        """
        from PySide6.QtGui import QImage

        QApplication.processEvents()
        img = self.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
        dpr = img.devicePixelRatio()
        painter = QPainter(img)
        for v in self.views + [self.view3d]:
            if not v.isVisible():
                continue
            px = v.pixels()
            h, w, _ = px.shape
            q = QImage(px.data, w, h, px.strides[0], QImage.Format.Format_RGB888).copy()
            q.setDevicePixelRatio(dpr)
            top_left = v.mapTo(self, v.rect().topLeft())
            painter.drawImage(top_left, q)
        painter.end()
        return img

    def save_screenshot(self, path) -> Path:
        p = Path(path)
        if not self.screenshot().save(str(p)):
            raise OSError(f"{p}: the screenshot could not be written (is the folder writable?)")
        return p

    def _screenshot_dialog(self):
        f, _ = QFileDialog.getSaveFileName(self, "Save screenshot", "surgplan.png", "PNG (*.png)")
        if f:
            try:
                self.save_screenshot(f)
            except OSError as exc:
                self.report_error("Screenshot failed", exc)

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

    # --- closing ---------------------------------------------------------------------------------
    def closeEvent(self, ev):
        self._queue.clear()
        if self.worker is not None:
            self.worker.cancel()
            self.worker.wait()
            self.worker = None
        self._autosave()
        self._save_settings()
        for v in self.views + [self.view3d]:
            v.close_vtk()
        super().closeEvent(ev)


__all__ = ["MainWindow"]
