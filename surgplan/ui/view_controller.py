"""What the four views show: the volume, the anatomy's overlays and surfaces, the
crosshair, window/level, layout, teaching and projector modes, and screenshots.

:class:`ViewController` keeps the display state derived from the session (the
label display map and the cache of 3D surfaces, re-meshed only where voxels
changed) and draws it in the window's slice views and 3D view.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QTimer
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QApplication, QFileDialog

from surgplan.render import WINDOW_PRESETS_HU, auto_window, label_display

#: While a handle is dragged, the views other than the one under the mouse are
#: redrawn at most this often (ms): the risk panel stays live on software OpenGL.
DRAG_REDRAW_MS = 80
#: Structures meshed for the 3D view (others are slices-only: skin, body …).
MESH_KINDS = ("vertebra", "disc", "dural sac", "nerve root", "vessel", "ilium", "rib",
              "spinal canal", "organ")


def structure_kind(name: str) -> str:
    """The structure's kind (``surgplan.imaging.structures.kind_of``), ``''`` if unknown."""
    from surgplan.imaging.structures import kind_of

    try:
        return kind_of(name)
    except ValueError:
        return ""


def anatomy_surfaces(anatomy, names, *, progress=None, cancel=None) -> dict:
    """Surfaces (name → Mesh, LPS mm) of ``names`` (None: all) whose kind is in MESH_KINDS."""
    from surgplan.render import anatomy_meshes

    wanted = [n for n in (anatomy.names if names is None else names)
              if structure_kind(n) in MESH_KINDS]
    return anatomy_meshes(anatomy, wanted, progress=progress, cancel=cancel)


class ViewController:
    """Draws the session in the window's views (``w.views``: axial, sagittal, coronal;
    ``w.view3d``) and owns the display state derived from it."""

    def __init__(self, window):
        self.w = window
        self.labels = None  # LabelDisplay of the current anatomy (slice overlays)
        self.mesh_cache: dict = {}  # (map, label) → Mesh of the current anatomy
        self.prev_anatomy = None
        self.redraw_timer = QTimer(window)
        self.redraw_timer.setSingleShot(True)
        self.redraw_timer.setInterval(DRAG_REDRAW_MS)
        self.redraw_timer.timeout.connect(self.render_all)

    @property
    def all_views(self) -> list:
        return self.w.views + [self.w.view3d]

    def render_all(self):
        for v in self.all_views:
            v.render()

    def render_soon(self):
        """Redraw every view within DRAG_REDRAW_MS (at most once per period)."""
        if not self.redraw_timer.isActive():
            self.redraw_timer.start()

    def forget_surfaces(self):
        """A new anatomy that shares nothing with the shown one: build surfaces afresh."""
        self.mesh_cache = {}
        self.prev_anatomy = None

    # --- session → views ---------------------------------------------------------------------
    def show_volume(self):
        w = self.w
        vol = w.session.case.volume
        if vol is None:
            return
        window = auto_window(vol.array, modality=vol.modality)
        md = vol.metadata
        upper_left = f"{md.patient_name or 'Anonymous'}\nID {md.patient_id or '—'}"
        upper_right = f"{vol.modality} {md.series_description}\n{md.study_date}"
        for v in w.views:
            v.scene.set_volume(vol, window=window)
            v.scene.set_patient_text(upper_left, upper_right)
            v._user_camera = False
            if v.isVisible():
                v.GetRenderWindow().SetSize(*v._device_size())
            v.scene.reset_camera()
        w.view3d.scene.set_patient_text(upper_left, upper_right)
        self.set_teaching(w.act_teaching.isChecked())
        # The user's last preset for CT (calibrated HU); MR always starts automatic.
        preset = str(w.settings.value("view/preset", "spine")) if vol.modality == "CT" else "auto"
        if preset in WINDOW_PRESETS_HU:
            window = WINDOW_PRESETS_HU[preset]
            for v in w.views:
                v.scene.set_window(*window)
        w.preset_box.setCurrentText(preset if preset in WINDOW_PRESETS_HU else "auto")
        w.setWindowTitle(f"SurgPlan — {Path(w.session.case.source).name}")
        if w.act_volume.isChecked():
            w.view3d.scene.set_volume_rendering(vol, True)

    def show_anatomy(self):
        w = self.w
        anatomy = w.session.state.anatomy
        vol = w.session.case.volume
        # The anatomy is drawn on a series only when it lies on that series' grid
        # (another series of the study may share it, as the phantom's MR does).
        usable = (anatomy is not None and vol is not None
                  and tuple(anatomy.shape) == vol.array.shape
                  and np.allclose(anatomy.ijk_to_lps, vol.ijk_to_lps, atol=1e-3))
        w.structures.show_anatomy(anatomy if usable else None)
        if not usable:
            self.labels = None
            for v in w.views:
                v.scene.set_labels(None)
            w.view3d.scene.set_surfaces({})
            self.prev_anatomy = anatomy
            return
        self.labels = label_display(anatomy)
        visible = w.structures.visible_names()
        colours = w.structures.colours()
        for v in w.views:
            v.scene.set_labels(self.labels, visible=visible, colours=colours)
            v.scene.set_overlay_opacity(w.structures.opacity.value() / 100.0)
        self.update_meshes(anatomy)
        first = self.prev_anatomy is None
        self.prev_anatomy = anatomy
        if first:
            w.view3d.scene.reset_camera()

    def update_meshes(self, anatomy):
        """Surfaces for the 3D view; re-mesh only structures whose voxels changed."""
        prev = self.prev_anatomy
        if prev is not None and prev is not anatomy and tuple(prev.shape) == tuple(anatomy.shape):
            for m in ("vertebrae", "structures"):
                a, b = getattr(prev, m), getattr(anatomy, m)
                if a is b:
                    continue
                diff = a != b
                if diff.any():
                    changed = set(np.unique(a[diff]).tolist()) | set(np.unique(b[diff]).tolist())
                    for lab in changed - {0}:
                        self.mesh_cache.pop((m, int(lab)), None)
        labels_now = {(s.map, s.label) for s in anatomy.items}
        for key in list(self.mesh_cache):
            if key not in labels_now:
                del self.mesh_cache[key]
        missing = [s.name for s in anatomy.items
                   if (s.map, s.label) not in self.mesh_cache
                   and structure_kind(s.name) in MESH_KINDS]
        if len(missing) > 2:
            # Many surfaces (an anatomy opened or restored): build them in the
            # background and show the slices meanwhile.
            QTimer.singleShot(0, lambda: self._build_meshes_job(anatomy, missing))
        elif missing:
            # One or two edited structures: a fraction of a second, done in place.
            self.store_meshes(anatomy, anatomy_surfaces(anatomy, missing))
        self.show_meshes(anatomy)

    def store_meshes(self, anatomy, meshes: dict) -> None:
        for name, mesh in meshes.items():
            s = anatomy.structure(name)
            self.mesh_cache[(s.map, s.label)] = mesh

    def _build_meshes_job(self, anatomy, names):
        w = self.w

        def done(meshes):
            if w.session.state.anatomy is anatomy:
                self.store_meshes(anatomy, meshes)
                self.show_meshes(anatomy)
                w.view3d.scene.reset_camera()
                w.view3d.render()

        w.jobs.run("Building surfaces", lambda **kw: anatomy_surfaces(anatomy, names, **kw),
                   done, queue_if_busy=True)

    def show_meshes(self, anatomy) -> None:
        w = self.w
        meshes = {}
        for s in anatomy.items:
            mesh = self.mesh_cache.get((s.map, s.label))
            if mesh is not None:
                meshes[s.name] = mesh
        w.session.meshes = meshes
        visible = w.structures.visible_names()
        w.view3d.scene.set_surfaces(
            meshes, visible=[n for n in meshes if n in visible and structure_kind(n) not in
                             ("spinal canal", "organ")],
            colours=w.structures.colours())

    # --- structure panel → views --------------------------------------------------------------
    def apply_visibility(self):
        visible = self.w.structures.visible_names()
        for v in self.w.views:
            v.scene.set_label_visibility(visible)
        self.w.view3d.scene.set_visible(visible)
        self.render_all()

    def apply_colour(self, name, rgb):
        colours = self.w.structures.colours()
        for v in self.w.views:
            v.scene.set_label_colours(colours)
        self.w.view3d.scene.set_colour(name, rgb)
        self.render_all()

    def apply_opacity(self, opacity):
        for v in self.w.views:
            v.scene.set_overlay_opacity(opacity)
        self.render_all()

    # --- navigation ------------------------------------------------------------------------------
    def set_cursor(self, p_lps):
        """Move the linked crosshair: every slice view goes through ``p_lps``."""
        for v in self.w.views:
            v.scene.set_cursor(p_lps)
        self.render_all()

    def set_window(self, width: float, level: float):
        for v in self.w.views:
            v.scene.set_window(width, level)
        self.render_all()

    def apply_preset(self, name: str):
        """Window preset: ``bone``, ``spine``, ``soft tissue`` (HU) or ``auto``."""
        w = self.w
        vol = w.session.case.volume
        if vol is None:
            return
        if name == "auto":
            width, lv = auto_window(vol.array,
                                    modality="" if vol.modality == "CT" else vol.modality)
        else:
            width, lv = WINDOW_PRESETS_HU[name]
        w.preset_box.setCurrentText(name)
        w.settings.setValue("view/preset", name)
        self.set_window(width, lv)

    def toggle_layout(self):
        self.w.grid.set_layout("one large" if self.w.act_layout.isChecked() else "grid")
        QTimer.singleShot(0, self.reset_views)

    def set_teaching(self, on=None):
        """Hide (``True``) or show the patient and series text in every view."""
        w = self.w
        on = w.act_teaching.isChecked() if on is None else bool(on)
        w.act_teaching.setChecked(on)
        for v in w.views:
            v.scene.set_patient_text_visible(not on)
        w.view3d.scene.set_patient_text_visible(not on)
        self.render_all()

    def set_projector(self):
        """Large text for a projector (1.5 × the panels' and the views' text), or normal."""
        w = self.w
        on = w.act_projector.isChecked()
        w.settings.setValue("view/projector", on)
        w.font_scale = 1.5 if on else 1.0
        for v in self.all_views:
            v.scene.set_font_scale(w.font_scale)
        app = QApplication.instance()
        if app is not None:
            from surgplan.ui.app import FONT_PT

            f = app.font()
            f.setPointSizeF(FONT_PT * (1.35 if on else 1.0))
            app.setFont(f)
        self.render_all()

    def reset_views(self):
        for v in self.w.views:
            v.fit()
        self.w.view3d.scene.reset_camera()
        self.render_all()

    def toggle_volume_rendering(self):
        w = self.w
        w.view3d.scene.set_volume_rendering(w.session.case.volume, w.act_volume.isChecked())
        w.view3d.render()

    # --- screenshots ------------------------------------------------------------------------------
    def screenshot(self):
        """The whole window as a QImage, with the VTK views' real pixels painted in.

        Qt's grab sees the widgets but not what OpenGL drew, so each view's
        pixels are read back from VTK and composed into the grab.
        """
        from PySide6.QtGui import QImage

        w = self.w
        QApplication.processEvents()
        img = w.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
        dpr = img.devicePixelRatio()
        painter = QPainter(img)
        for v in self.all_views:
            if not v.isVisible():
                continue
            px = v.pixels()
            h, width, _ = px.shape
            q = QImage(px.data, width, h, px.strides[0], QImage.Format.Format_RGB888).copy()
            q.setDevicePixelRatio(dpr)
            top_left = v.mapTo(w, v.rect().topLeft())
            painter.drawImage(top_left, q)
        painter.end()
        return img

    def save_screenshot(self, path) -> Path:
        p = Path(path)
        if not self.screenshot().save(str(p)):
            raise OSError(f"{p}: the screenshot could not be written (is the folder writable?)")
        return p

    def screenshot_dialog(self):
        f, _ = QFileDialog.getSaveFileName(self.w, "Save screenshot", "surgplan.png",
                                           "PNG (*.png)")
        if f:
            try:
                self.save_screenshot(f)
            except OSError as exc:
                self.w.report_error("Screenshot failed", exc)


__all__ = ["DRAG_REDRAW_MS", "MESH_KINDS", "ViewController", "anatomy_surfaces",
           "structure_kind"]
