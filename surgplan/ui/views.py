"""The VTK views in Qt: three slice views and the 3D view, and the grid that lays them out.

Slice views take the mouse themselves (not through a VTK interactor style)
so that every gesture is the same in every view:

=====================  ==============================================
left click / drag      move the crosshair (all views follow); on a
                       plan handle: drag the entry or target
left drag, paint mode  paint / erase the selected structure
left drag, measuring   distance: from press to release; angle: drag
                       the first arm from the vertex, then click the
                       end of the second arm
right drag             window (left–right) and level (up–down)
middle drag / Shift    pan
wheel                  next / previous slice
Ctrl + wheel           zoom about the mouse
double click           fit the slice to the view
=====================  ==============================================
"""

from __future__ import annotations

from typing import Optional

import numpy as np

import vtkmodules.qt

vtkmodules.qt.PyQtImpl = "PySide6"

from PySide6.QtCore import Qt, Signal  # noqa: E402
from PySide6.QtWidgets import QGridLayout, QWidget  # noqa: E402
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor  # noqa: E402

from surgplan.render import Scene3D, SliceScene, capture_render_window  # noqa: E402
from surgplan.ui.qtcompat import emit  # noqa: E402


class VtkView(QVTKRenderWindowInteractor):
    """Base: one renderer in a Qt widget, with pixel read-back for tests and screenshots."""

    def __init__(self, renderer, parent=None):
        super().__init__(parent)
        self.setMinimumSize(160, 140)
        self.renderer = renderer
        self.GetRenderWindow().AddRenderer(renderer)
        self.GetRenderWindow().SetMultiSamples(0)

    def render(self) -> None:  # noqa: D401 - Qt name clash intended
        """Redraw now."""
        if self.isVisible():
            self.GetRenderWindow().Render()

    def pixels(self) -> np.ndarray:
        """What VTK drew, as ``(h, w, 3)`` uint8 RGB (top row first), freshly rendered."""
        return capture_render_window(self.GetRenderWindow())

    def _device_xy(self, event) -> tuple:
        """Qt logical position → VTK display pixels (origin at the lower left)."""
        dpr = self.devicePixelRatioF()
        p = event.position()
        return (p.x() * dpr, (self.height() - p.y()) * dpr - 1)

    def close_vtk(self) -> None:
        """Release the OpenGL context before the widget goes (no leaked X windows)."""
        rw = self.GetRenderWindow()
        rw.RemoveRenderer(self.renderer)
        self.Finalize()


class SliceView(VtkView):
    """A 2D slice view.

    Signals
    -------
    cursorMoved(object)
        LPS mm of the new crosshair position (left click or drag).
    windowChanged(float, float)
        Width and level after a right drag.
    handleMoved(int, str, object)
        Tool index, ``'entry'``/``'target'`` and the new LPS point while dragging.
    handleReleased(int, str, object)
        Same, once at the end of the drag (the undoable edit).
    painted(object, bool)
        LPS point of a paint (``False``) or erase (``True``) dab.
    measured(str, object, bool)
        Measuring mode (``'distance'``/``'angle'``), LPS point, and whether the
        button was released there.
    """

    cursorMoved = Signal(object)
    windowChanged = Signal(float, float)
    handleMoved = Signal(int, str, object)
    handleReleased = Signal(int, str, object)
    painted = Signal(object, bool)
    strokeFinished = Signal()
    measured = Signal(str, object, bool)

    def __init__(self, orientation: str, font_scale: float = 1.0, parent=None):
        self.scene = SliceScene(orientation, font_scale=font_scale)
        super().__init__(self.scene.renderer, parent)
        self.orientation = orientation
        self.setObjectName(f"{orientation}View")
        self.mode = "navigate"  # or "paint", "erase"
        self._drag = None
        self._last = None
        self._user_camera = False

    # --- Qt events (VTK's interactor is bypassed on purpose: see the module docstring) --
    def mousePressEvent(self, ev):
        if self.scene.volume is None:
            return
        xy = self._device_xy(ev)
        self._last = xy
        button = ev.button()
        shift = bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if button == Qt.MouseButton.LeftButton and not shift:
            hit = self.scene.handle_at(xy) if self.mode == "navigate" else None
            if hit is not None:
                self._drag = ("handle",) + hit
            elif self.mode in ("distance", "angle"):
                self._drag = ("measure",)
                emit(self.measured, self.mode, self.scene.display_to_lps(*xy), False)
            elif self.mode in ("paint", "erase"):
                self._drag = ("paint",)
                emit(self.painted, self.scene.display_to_lps(*xy), self.mode == "erase")
            else:
                self._drag = ("cursor",)
                emit(self.cursorMoved, self.scene.display_to_lps(*xy))
        elif button == Qt.MouseButton.RightButton:
            self._drag = ("window", self.scene.window)
        elif button == Qt.MouseButton.MiddleButton or (
                button == Qt.MouseButton.LeftButton and shift):
            self._drag = ("pan",)

    def mouseMoveEvent(self, ev):
        if self._drag is None or self.scene.volume is None:
            return
        xy = self._device_xy(ev)
        kind = self._drag[0]
        if kind == "cursor":
            emit(self.cursorMoved, self.scene.display_to_lps(*xy))
        elif kind == "handle":
            emit(self.handleMoved, self._drag[1], self._drag[2], self.scene.display_to_lps(*xy))
        elif kind == "paint":
            emit(self.painted, self.scene.display_to_lps(*xy), self.mode == "erase")
        elif kind == "measure":
            emit(self.measured, self.mode, self.scene.display_to_lps(*xy), False)
        elif kind == "window":
            (w0, l0) = self._drag[1]
            dx = xy[0] - self._last[0]
            dy = xy[1] - self._last[1]
            # Full view width doubles/halves the window; the level moves by a window per height.
            w = max(1.0, w0 * float(2.0 ** (dx / max(self.width(), 1) * 2.0)))
            lv = l0 + dy / max(self.height(), 1) * w0
            self._drag = ("window", (w, lv))
            self._last = xy
            emit(self.windowChanged, w, lv)
        elif kind == "pan":
            self.scene.pan_pixels(xy[0] - self._last[0], xy[1] - self._last[1])
            self._last = xy
            self._user_camera = True
            self.render()

    def mouseReleaseEvent(self, ev):
        if self._drag is not None and self._drag[0] == "handle" and self.scene.volume is not None:
            emit(self.handleReleased, self._drag[1], self._drag[2],
                                     self.scene.display_to_lps(*self._device_xy(ev)))
        if self._drag is not None and self._drag[0] == "paint":
            emit(self.strokeFinished)
        if self._drag is not None and self._drag[0] == "measure" and self.scene.volume is not None:
            emit(self.measured, self.mode, self.scene.display_to_lps(*self._device_xy(ev)), True)
        self._drag = None

    def mouseDoubleClickEvent(self, ev):
        self.fit()

    def wheelEvent(self, ev):
        if self.scene.volume is None:
            return
        steps = ev.angleDelta().y() / 120.0
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.scene.zoom_about(1.15 ** steps, self._device_xy(ev))
            self._user_camera = True
            self.render()
        else:
            self.scene.scroll(1 if steps > 0 else -1)
            emit(self.cursorMoved, self.scene.cursor_lps)

    def keyPressEvent(self, ev):
        keys = {Qt.Key.Key_Up: 1, Qt.Key.Key_Down: -1, Qt.Key.Key_PageUp: 10,
                Qt.Key.Key_PageDown: -10}
        if ev.key() in keys and self.scene.volume is not None:
            self.scene.scroll(keys[ev.key()])
            emit(self.cursorMoved, self.scene.cursor_lps)
        else:
            QWidget.keyPressEvent(self, ev)

    def keyReleaseEvent(self, ev):
        QWidget.keyReleaseEvent(self, ev)

    def enterEvent(self, ev):
        QWidget.enterEvent(self, ev)

    def leaveEvent(self, ev):
        QWidget.leaveEvent(self, ev)

    def resizeEvent(self, ev):
        super().resizeEvent(ev)
        if not self._user_camera and self.scene.volume is not None:
            self.GetRenderWindow().SetSize(*self._device_size())
            self.scene.reset_camera()

    def _device_size(self):
        dpr = self.devicePixelRatioF()
        return (max(1, int(round(self.width() * dpr))), max(1, int(round(self.height() * dpr))))

    def fit(self) -> None:
        """Fit the slice to the view again (undo zoom and pan)."""
        self._user_camera = False
        self.scene.reset_camera()
        self.render()


class View3D(VtkView):
    """The 3D view: rotate with the left button, pan with the middle, zoom with the wheel;
    a left drag on the entry (green) or target (orange) sphere moves it.

    Signals ``handleMoved`` / ``handleReleased`` as in :class:`SliceView`.
    """

    handleMoved = Signal(int, str, object)
    handleReleased = Signal(int, str, object)

    def __init__(self, font_scale: float = 1.0, parent=None):
        self.scene = Scene3D(font_scale=font_scale)
        super().__init__(self.scene.renderer, parent)
        self.setObjectName("view3D")
        from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera

        self._style = vtkInteractorStyleTrackballCamera()
        self.GetRenderWindow().GetInteractor().SetInteractorStyle(self._style)

    def mousePressEvent(self, ev):
        self._drag = None
        if ev.button() == Qt.MouseButton.LeftButton:
            hit = self.scene.handle_at(self._device_xy(ev))
            if hit is not None:
                self._drag = (hit, np.asarray(self.scene.handles[hit][1], float))
                return  # the handle moves, not the camera
        super().mousePressEvent(ev)

    def mouseMoveEvent(self, ev):
        if getattr(self, "_drag", None) is not None:
            (idx, which), start = self._drag
            emit(self.handleMoved, idx, which, self.scene.drag_point(start, self._device_xy(ev)))
            return
        super().mouseMoveEvent(ev)

    def mouseReleaseEvent(self, ev):
        if getattr(self, "_drag", None) is not None:
            (idx, which), start = self._drag
            self._drag = None
            emit(self.handleReleased, idx, which, self.scene.drag_point(start, self._device_xy(ev)))
            return
        super().mouseReleaseEvent(ev)

    def mouseDoubleClickEvent(self, ev):
        self.scene.reset_camera()
        self.render()


class ViewGrid(QWidget):
    """Four views in a 2×2 grid, or one large view with the other three beside it."""

    LAYOUTS = ("grid", "one large")

    def __init__(self, views, parent=None):
        super().__init__(parent)
        self.views = list(views)
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(3)
        self.layout_name = "grid"
        self.large = 0
        self.set_layout("grid")

    def set_layout(self, name: str, large: Optional[int] = None) -> None:
        """``'grid'`` (2×2) or ``'one large'`` (view ``large`` big, the others stacked right)."""
        if name not in self.LAYOUTS:
            raise ValueError(f"layout must be one of {self.LAYOUTS}, got {name!r}")
        if large is not None:
            self.large = int(large)
        for v in self.views:
            self._grid.removeWidget(v)
        for r in range(3):
            self._grid.setRowStretch(r, 0)
        for c in range(2):
            self._grid.setColumnStretch(c, 0)
        if name == "grid":
            for n, v in enumerate(self.views):
                self._grid.addWidget(v, n // 2, n % 2)
            self._grid.setRowStretch(0, 1)
            self._grid.setRowStretch(1, 1)
            self._grid.setColumnStretch(0, 1)
            self._grid.setColumnStretch(1, 1)
        else:
            self._grid.addWidget(self.views[self.large], 0, 0, 3, 1)
            others = [v for n, v in enumerate(self.views) if n != self.large]
            for r, v in enumerate(others):
                self._grid.addWidget(v, r, 1)
                self._grid.setRowStretch(r, 1)
            self._grid.setColumnStretch(0, 3)
            self._grid.setColumnStretch(1, 1)
        self.layout_name = name


__all__ = ["SliceView", "View3D", "ViewGrid"]
