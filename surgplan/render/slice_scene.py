"""A slice view: a Volume resliced along any plane, with labels, tools and annotations.

The view's world coordinates are the *plane's own* millimetres: world point
``(x, y, 0)`` is the LPS point ``centre + x·u + y·v + depth·n``, where ``u`` is
screen right, ``v`` screen up and ``n = u × v`` the plane normal (all LPS unit
vectors), ``centre`` the middle of the volume and ``depth`` the current slice
position along ``n``.  The camera looks down ``-z`` with parallel projection,
so a pixel is a fixed number of millimetres and the scale bar is exact.
Scrolling changes ``depth`` only; the camera never moves with the slice.

Conventions (radiological): axial seen from the feet (patient left on screen
right, anterior up), coronal seen from the front (left on the right, superior
up), sagittal seen from the patient's left (anterior on the left, superior up).

No Qt here: the GUI puts :attr:`SliceScene.renderer` into its widget, the
report renders it offscreen with :func:`surgplan.render.offscreen.render_offscreen`.
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence, Tuple

import numpy as np

from surgplan.render.annotations import CornerText, OrientationLetters, ScaleBar
from surgplan.render.glyphs import ENTRY_RGB, TARGET_RGB, ToolGlyph, rgb01
from surgplan.render.images import (
    LabelDisplay,
    auto_window,
    index_space_image,
    label_lookup_table,
)

#: Screen (right, up) LPS axes of the standard views.
STANDARD_AXES = {
    "axial": ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0)),
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
}
#: Largest resliced image side (pixels): finer than this is not visible on screen.
MAX_RESLICE_PIXELS = 1024
#: Background of the views (very dark blue-grey: black air stays distinguishable).
BACKGROUND_RGB = (0.06, 0.07, 0.09)
CROSSHAIR_RGB = (0.35, 0.85, 1.0)

# Depth (world z, mm toward the camera) of the layers above the image.  The tool
# is a tube (radius up to 15 mm) around _Z_TOOL: it must stay above the overlay
# and the crosshair and below the handles.
_Z_OVERLAY, _Z_CROSS, _Z_TOOL, _Z_HANDLE = 0.05, 0.4, 16.0, 40.0


#: Kinds left out of the slice overlay by default: they cover the whole body.
OVERLAY_HIDDEN_KINDS = ("body", "fat", "skin")


def _kind(name: str) -> str:
    from surgplan.imaging.structures import kind_of

    try:
        return kind_of(name)
    except ValueError:
        return ""


def _orthonormal_axes(u, v) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    u = np.asarray(u, float)
    u = u / np.linalg.norm(u)
    v = np.asarray(v, float)
    v = v - u * float(np.dot(u, v))
    nv = np.linalg.norm(v)
    if nv < 1e-6:
        raise ValueError("the screen axes u and v of a slice must not be parallel")
    v = v / nv
    return u, v, np.cross(u, v)


def measurement_text(kind: str, points) -> str:
    """``'23.4 mm'`` for a finished distance, ``'32.0°'`` for a finished angle, else ``''``."""
    pts = [np.asarray(p, float) for p in points]
    if kind == "distance" and len(pts) == 2:
        return f"{np.linalg.norm(pts[1] - pts[0]):.1f} mm"
    if kind == "angle" and len(pts) == 3:
        a, b = pts[0] - pts[1], pts[2] - pts[1]
        na, nb = np.linalg.norm(a), np.linalg.norm(b)
        if na > 0 and nb > 0:
            c = float(np.clip(a @ b / (na * nb), -1.0, 1.0))
            return f"{np.degrees(np.arccos(c)):.1f}°"
    return ""


def _world_text(text: str, x: float, y: float, font_scale: float):
    from vtkmodules.vtkRenderingCore import vtkTextActor

    a = vtkTextActor()
    a.SetInput(text)
    a.GetPositionCoordinate().SetCoordinateSystemToWorld()
    a.GetPositionCoordinate().SetValue(float(x), float(y), _Z_HANDLE)
    p = a.GetTextProperty()
    p.SetFontSize(int(round(18 * font_scale)))
    p.SetBold(True)
    p.SetColor(1.0, 0.85, 0.2)
    p.SetShadow(True)
    p.SetJustificationToLeft()
    p.SetVerticalJustificationToBottom()
    return a


def trajectory_axes(entry_lps, target_lps, roll_deg: float = 0.0) -> dict:
    """Screen axes of the two views that follow a tool, in LPS.

    Returns
    -------
    dict
        ``"along"``: ``(u, v)`` of a plane containing the tool axis, entry up
        (``v`` points from the target to the entry); ``"probe"``: ``(u, v)`` of the
        plane perpendicular to the axis (the probe's eye, looking from the entry
        toward the target).  ``roll_deg`` turns both about the axis.  At zero
        roll the along-view plane contains the patient's superior direction (or
        the left direction for a craniocaudal tool).
    """
    e = np.asarray(entry_lps, float)
    d = np.asarray(target_lps, float) - e
    d = d / np.linalg.norm(d)
    ref = np.array([0.0, 0.0, 1.0]) if abs(d[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    side = np.cross(d, ref)
    side /= np.linalg.norm(side)
    r = np.radians(float(roll_deg))
    side = np.cos(r) * side + np.sin(r) * np.cross(d, side)
    in_plane = np.cross(d, side)  # ⟂ d, in the along plane
    return {"along": (in_plane, -d), "probe": (side, np.cross(d, side))}


class SliceScene:
    """One 2D slice view of a volume.

    Parameters
    ----------
    orientation : {'axial', 'coronal', 'sagittal'} or tuple
        A standard view, or ``(u, v)`` LPS screen axes for an oblique plane.
    font_scale : float
        Multiplies every font and line width (device-pixel ratio, projector).
    name : str
        Shown in the lower-left corner with the slice position.
    """

    def __init__(self, orientation="axial", *, font_scale: float = 1.0, name: str = ""):
        from vtkmodules.vtkRenderingCore import vtkRenderer

        self.renderer = vtkRenderer()
        self.renderer.SetBackground(*BACKGROUND_RGB)
        self.name = name or (orientation if isinstance(orientation, str) else "oblique")
        if isinstance(orientation, str):
            orientation = STANDARD_AXES[orientation]
        self.u, self.v, self.n = _orthonormal_axes(*orientation)
        self.font_scale = float(font_scale)
        self.volume = None
        self.centre_lps = np.zeros(3)
        self.depth_mm = 0.0
        self.cursor_lps = np.zeros(3)
        self.window = (400.0, 40.0)
        self._labels: Optional[LabelDisplay] = None
        self._label_visible: Optional[set] = None
        self._label_colours: dict = {}
        self._overlay_opacity = 0.4
        self._tools: list = []
        self._tool_actors: list = []
        self._extent_xy = (-100.0, 100.0, -100.0, 100.0)
        self._build_pipeline()
        self.letters = OrientationLetters(
            self.renderer, lambda: (self.u, self.v), font_scale=self.font_scale
        )
        self.scale_bar = ScaleBar(self.renderer, font_scale=self.font_scale)
        self.corners = CornerText(self.renderer, font_scale=self.font_scale)

    # --- pipeline ----------------------------------------------------------------------
    def _build_pipeline(self) -> None:
        from vtkmodules.vtkImagingCore import vtkImageReslice
        from vtkmodules.vtkRenderingCore import vtkImageActor
        from vtkmodules.vtkCommonTransforms import vtkTransform

        self._reslice = vtkImageReslice()
        self._reslice.SetInterpolationModeToLinear()
        self._reslice.SetOutputDimensionality(2)
        self._transform = vtkTransform()
        self._reslice.SetResliceTransform(self._transform)
        self.image_actor = vtkImageActor()
        self.image_actor.GetMapper().SetInputConnection(self._reslice.GetOutputPort())
        self.image_actor.GetProperty().SetInterpolationTypeToLinear()
        self.image_actor.SetVisibility(False)
        self.renderer.AddViewProp(self.image_actor)

        self._label_reslice = vtkImageReslice()
        self._label_reslice.SetInterpolationModeToNearestNeighbor()
        self._label_reslice.SetOutputDimensionality(2)
        self._label_reslice.SetResliceTransform(self._transform)
        self.overlay_actor = vtkImageActor()
        self.overlay_actor.GetMapper().SetInputConnection(self._label_reslice.GetOutputPort())
        prop = self.overlay_actor.GetProperty()
        prop.SetInterpolationTypeToNearest()
        prop.UseLookupTableScalarRangeOn()
        prop.SetOpacity(self._overlay_opacity)
        self.overlay_actor.SetPosition(0.0, 0.0, _Z_OVERLAY)
        self.overlay_actor.SetVisibility(False)
        self.renderer.AddViewProp(self.overlay_actor)

        self._cross_actor, self._cross_points = self._make_lines(4, CROSSHAIR_RGB)
        self._cross_actor.GetProperty().SetOpacity(0.8)
        self._cross_actor.SetVisibility(False)
        self.renderer.AddViewProp(self._cross_actor)

    def _make_lines(self, n_segments: int, rgb):
        from vtkmodules.vtkCommonCore import vtkPoints
        from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
        from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

        pts = vtkPoints()
        pts.SetNumberOfPoints(2 * n_segments)
        for i in range(2 * n_segments):
            pts.SetPoint(i, 0.0, 0.0, 0.0)
        cells = vtkCellArray()
        for s in range(n_segments):
            cells.InsertNextCell(2)
            cells.InsertCellPoint(2 * s)
            cells.InsertCellPoint(2 * s + 1)
        poly = vtkPolyData()
        poly.SetPoints(pts)
        poly.SetLines(cells)
        mapper = vtkPolyDataMapper()
        mapper.SetInputData(poly)
        actor = vtkActor()
        actor.SetMapper(mapper)
        p = actor.GetProperty()
        p.SetColor(*rgb)
        p.SetLineWidth(max(1.0, 1.5 * self.font_scale))
        p.LightingOff()
        actor.PickableOff()
        actor._poly = poly
        return actor, pts

    # --- content ---------------------------------------------------------------------------
    def set_volume(self, volume, *, window: Optional[Tuple[float, float]] = None) -> None:
        """Show ``volume`` (a :class:`~surgplan.imaging.volume.Volume`); resets the labels.

        The slice goes through the volume's centre and the window comes from
        :func:`~surgplan.render.images.auto_window` unless ``window`` is given
        as ``(width, level)``.
        """
        self.volume = volume
        self._image = index_space_image(volume.array)
        self._reslice.SetInputData(self._image)
        ni, nj, nk = volume.shape_ijk
        corners_ijk = np.array(
            [[i, j, k] for i in (-0.5, ni - 0.5) for j in (-0.5, nj - 0.5) for k in (-0.5, nk - 0.5)]
        )
        corners = volume.index_to_lps(corners_ijk)
        self.centre_lps = corners.mean(axis=0)
        rel = corners - self.centre_lps
        xs, ys = rel @ self.u, rel @ self.v
        self._extent_xy = (float(xs.min()), float(xs.max()), float(ys.min()), float(ys.max()))
        self._depth_range = (float((rel @ self.n).min()), float((rel @ self.n).max()))
        span = max(self._extent_xy[1] - self._extent_xy[0], self._extent_xy[3] - self._extent_xy[2])
        self.pixel_mm = max(float(min(volume.spacing_mm)), span / MAX_RESLICE_PIXELS)
        nx = int(np.ceil((self._extent_xy[1] - self._extent_xy[0]) / self.pixel_mm)) + 1
        ny = int(np.ceil((self._extent_xy[3] - self._extent_xy[2]) / self.pixel_mm)) + 1
        for r in (self._reslice, self._label_reslice):
            r.SetOutputSpacing(self.pixel_mm, self.pixel_mm, 1.0)
            r.SetOutputOrigin(self._extent_xy[0], self._extent_xy[2], 0.0)
            r.SetOutputExtent(0, nx - 1, 0, ny - 1, 0, 0)
        self._reslice.SetBackgroundLevel(float(np.min(volume.array[::4, ::4, ::4])))
        self.image_actor.SetVisibility(True)
        self.set_labels(None)
        self.set_window(*(window or auto_window(volume.array, modality=volume.modality)))
        self.set_cursor(self.centre_lps)
        self.reset_camera()

    def set_labels(self, labels: Optional[LabelDisplay], *, visible: Optional[Iterable[str]] = None,
                   colours: Optional[dict] = None) -> None:
        """Overlay a :class:`LabelDisplay` (``None`` removes it).

        ``visible`` names the structures shown (default: all but the kinds in
        :data:`OVERLAY_HIDDEN_KINDS`, which would tint the whole body), ``colours``
        overrides colours (RGB 0–255) by name.
        """
        self._labels = labels
        if labels is None:
            self.overlay_actor.SetVisibility(False)
            return
        self._label_image = index_space_image(labels.array)
        self._label_reslice.SetInputData(self._label_image)
        if visible is None:
            visible = [n for n in labels.names if _kind(n) not in OVERLAY_HIDDEN_KINDS]
        self._label_visible = set(visible)
        self._label_colours = dict(colours or {})
        self._update_lut()
        self.overlay_actor.SetVisibility(True)

    def labels_modified(self) -> None:
        """Redraw after the :class:`LabelDisplay` array was changed in place (paint preview)."""
        if self._labels is not None:
            self._label_image.GetPointData().GetScalars().Modified()
            self._label_image.Modified()

    def _update_lut(self) -> None:
        if self._labels is None:
            return
        lut = label_lookup_table(
            self._labels.names, visible=self._label_visible, colours=self._label_colours
        )
        self.overlay_actor.GetProperty().SetLookupTable(lut)

    def set_label_visibility(self, visible: Iterable[str]) -> None:
        """Show only these structures in the overlay."""
        self._label_visible = set(visible)
        self._update_lut()

    def set_label_colours(self, colours: dict) -> None:
        self._label_colours = dict(colours)
        self._update_lut()

    def set_overlay_opacity(self, opacity: float) -> None:
        """Opacity of the label overlay, 0 (hidden) … 1 (opaque)."""
        self._overlay_opacity = float(np.clip(opacity, 0.0, 1.0))
        self.overlay_actor.GetProperty().SetOpacity(self._overlay_opacity)

    @property
    def overlay_opacity(self) -> float:
        return self._overlay_opacity

    def set_window(self, width: float, level: float) -> None:
        """Grey-level window: ``width`` and ``level`` (centre) in image units (HU for CT)."""
        width = max(float(width), 1.0)
        self.window = (width, float(level))
        p = self.image_actor.GetProperty()
        p.SetColorWindow(width)
        p.SetColorLevel(float(level))
        self._update_text()

    # --- geometry ---------------------------------------------------------------------------
    def set_axes(self, u, v, name: Optional[str] = None) -> None:
        """Make this an oblique view with screen right ``u`` and up ``v`` (LPS).

        The cursor stays where it was; the camera refits the new slice.
        """
        axes = _orthonormal_axes(u, v)
        if name:
            self.name = name
        if all(np.allclose(a, b) for a, b in zip(axes, (self.u, self.v, self.n))):
            return
        self.u, self.v, self.n = axes
        cursor = self.cursor_lps.copy()
        if self.volume is not None:
            labels = self._labels
            self.set_volume(self.volume, window=self.window)
            if labels is not None:
                self.set_labels(labels, visible=self._label_visible, colours=self._label_colours)
            self.set_cursor(cursor)

    def plane_to_lps(self, x: float, y: float) -> np.ndarray:
        """World (plane) coordinates of this view → LPS mm on the current slice."""
        return self.centre_lps + x * self.u + y * self.v + self.depth_mm * self.n

    def lps_to_plane(self, p) -> np.ndarray:
        """LPS mm → ``(x, y, distance from the slice)`` in this view's mm."""
        rel = np.asarray(p, float) - self.centre_lps
        return np.array([rel @ self.u, rel @ self.v, rel @ self.n - self.depth_mm])

    def set_cursor(self, p_lps) -> None:
        """Move the slice through ``p_lps`` and put the crosshair there."""
        p = np.asarray(p_lps, float).reshape(3)
        self.cursor_lps = p
        self.depth_mm = float((p - self.centre_lps) @ self.n)
        self._apply_depth()

    def scroll(self, steps: float) -> None:
        """Move the slice by ``steps`` voxels along the normal (positive: toward ``n``)."""
        if self.volume is None:
            return
        step = float(abs(self.volume.spacing_mm @ np.abs(self.volume.direction.T @ self.n)))
        step = max(step, self.pixel_mm)
        self.cursor_lps = self.cursor_lps + steps * step * self.n
        self.depth_mm = float((self.cursor_lps - self.centre_lps) @ self.n)
        self._apply_depth()

    def _apply_depth(self) -> None:
        if self.volume is None:
            return
        lo, hi = self._depth_range
        self.depth_mm = float(np.clip(self.depth_mm, lo, hi))
        self.cursor_lps = self.cursor_lps + (
            self.depth_mm - (self.cursor_lps - self.centre_lps) @ self.n) * self.n
        a = np.eye(4)
        a[:3, 0], a[:3, 1], a[:3, 2] = self.u, self.v, self.n
        a[:3, 3] = self.centre_lps + self.depth_mm * self.n
        m = self.volume.lps_to_ijk @ a
        self._transform.SetMatrix(m.ravel().tolist())
        self._transform.Modified()
        self._update_crosshair()
        self._update_tools()
        if getattr(self, "_measurements", None):
            self.set_measurements(self._measurements)
        self._update_text()

    def _update_crosshair(self) -> None:
        x, y, _ = self.lps_to_plane(self.cursor_lps)
        x0, x1, y0, y1 = self._extent_xy
        gap = 6.0
        segs = [((x0, y), (x - gap, y)), ((x + gap, y), (x1, y)),
                ((x, y0), (x, y - gap)), ((x, y + gap), (x, y1))]
        for s, (a, b) in enumerate(segs):
            self._cross_points.SetPoint(2 * s, a[0], a[1], _Z_CROSS)
            self._cross_points.SetPoint(2 * s + 1, b[0], b[1], _Z_CROSS)
        self._cross_points.Modified()
        self._cross_actor._poly.Modified()
        self._cross_actor.SetVisibility(self.volume is not None)

    def set_crosshair_visible(self, on: bool) -> None:
        self._cross_actor.SetVisibility(bool(on) and self.volume is not None)

    # --- tools -------------------------------------------------------------------------------
    def set_tools(self, tools: Sequence[ToolGlyph]) -> None:
        """Draw trajectories: each tool's projection as a band of its real diameter,
        with entry (green) and target (orange) handles on the selected one."""
        self._tools = list(tools)
        self._update_tools()

    def _update_tools(self) -> None:
        from vtkmodules.vtkFiltersCore import vtkTubeFilter
        from vtkmodules.vtkFiltersSources import vtkLineSource, vtkRegularPolygonSource
        from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

        for a in self._tool_actors:
            self.renderer.RemoveViewProp(a)
        self._tool_actors = []
        for tool in self._tools:
            e = self.lps_to_plane(tool.entry_lps)
            t = self.lps_to_plane(tool.target_lps)
            line = vtkLineSource()
            line.SetPoint1(e[0], e[1], _Z_TOOL)
            line.SetPoint2(t[0], t[1], _Z_TOOL)
            tube = vtkTubeFilter()
            tube.SetInputConnection(line.GetOutputPort())
            tube.SetRadius(tool.diameter_mm / 2.0)
            tube.SetNumberOfSides(16)
            mapper = vtkPolyDataMapper()
            mapper.SetInputConnection(tube.GetOutputPort())
            actor = vtkActor()
            actor.SetMapper(mapper)
            p = actor.GetProperty()
            p.SetColor(*rgb01(tool.colour))
            p.LightingOff()
            # Where the tool passes far from this slice it is a projection, not a
            # section: draw it fainter so the surgeon can tell the two apart.
            near = min(abs(e[2]), abs(t[2])) < max(tool.diameter_mm, 3.0)
            p.SetOpacity((0.75 if near else 0.4) if tool.selected else (0.5 if near else 0.25))
            actor.PickableOff()
            self.renderer.AddViewProp(actor)
            self._tool_actors.append(actor)
            if tool.selected:
                for pt, rgb in ((e, ENTRY_RGB), (t, TARGET_RGB)):
                    disc = vtkRegularPolygonSource()
                    disc.SetNumberOfSides(32)
                    disc.SetRadius(max(tool.diameter_mm / 2.0 + 1.0, 3.0))
                    disc.SetCenter(pt[0], pt[1], _Z_HANDLE)
                    m = vtkPolyDataMapper()
                    m.SetInputConnection(disc.GetOutputPort())
                    h = vtkActor()
                    h.SetMapper(m)
                    h.GetProperty().SetColor(*rgb01(rgb))
                    h.GetProperty().LightingOff()
                    # Opaque on (or near) this slice so that it is drawn above the
                    # translucent overlay; faint when it lies elsewhere.
                    h.GetProperty().SetOpacity(1.0 if abs(pt[2]) < 5.0 else 0.5)
                    h.PickableOff()
                    self.renderer.AddViewProp(h)
                    self._tool_actors.append(h)

    def set_measurements(self, items) -> None:
        """Draw measurements: ``[(kind, points_lps), …]`` with kind ``'distance'`` (two
        points, labelled in mm) or ``'angle'`` (arm end, vertex, arm end; labelled in
        degrees).  Fewer points draw an unfinished measurement without a label.
        Lengths and angles are the true 3D values, drawn projected on this view."""
        from vtkmodules.vtkFiltersSources import vtkLineSource
        from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

        self._measurements = list(items)
        for a in getattr(self, "_measure_actors", []):
            self.renderer.RemoveViewProp(a)
        self._measure_actors = []
        for kind, pts in items:
            pts = [np.asarray(p, float) for p in pts]
            plane = [self.lps_to_plane(p) for p in pts]
            for a, b in zip(plane, plane[1:]):
                line = vtkLineSource()
                line.SetPoint1(a[0], a[1], _Z_HANDLE)
                line.SetPoint2(b[0], b[1], _Z_HANDLE)
                m = vtkPolyDataMapper()
                m.SetInputConnection(line.GetOutputPort())
                act = vtkActor()
                act.SetMapper(m)
                act.GetProperty().SetColor(1.0, 0.85, 0.2)
                act.GetProperty().SetLineWidth(max(2.0, 2.0 * self.font_scale))
                act.GetProperty().LightingOff()
                act.PickableOff()
                self.renderer.AddViewProp(act)
                self._measure_actors.append(act)
            text = measurement_text(kind, pts)
            if text:
                at = plane[1] if kind == "angle" else (plane[0] + plane[1]) / 2.0
                label = _world_text(text, at[0], at[1], self.font_scale)
                self.renderer.AddViewProp(label)
                self._measure_actors.append(label)

    def handle_at(self, display_xy, tolerance_px: float = 12.0):
        """Which handle of the selected tool is under a display point.

        Returns
        -------
        tuple or None
            ``(tool_index, 'entry' | 'target')`` for the nearest handle within
            ``tolerance_px`` (plus the handle's radius), else ``None``.
        """
        if self.volume is None:
            return None
        x, y = self.display_to_plane(*display_xy)
        mmpp = self.scale_bar.mm_per_pixel()
        best = None
        for idx, tool in enumerate(self._tools):
            if not tool.selected:
                continue
            for which, pt in (("target", tool.target_lps), ("entry", tool.entry_lps)):
                px, py, _ = self.lps_to_plane(pt)
                d_px = np.hypot(px - x, py - y) / mmpp
                limit = tolerance_px + max(tool.diameter_mm / 2.0 + 1.0, 3.0) / mmpp
                if d_px <= limit and (best is None or d_px < best[0]):
                    best = (d_px, idx, which)
        return None if best is None else (best[1], best[2])

    # --- camera ----------------------------------------------------------------------------
    def reset_camera(self) -> None:
        """Fit the whole slice into the view."""
        cam = self.renderer.GetActiveCamera()
        cam.ParallelProjectionOn()
        x0, x1, y0, y1 = self._extent_xy
        cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
        cam.SetFocalPoint(cx, cy, 0.0)
        cam.SetPosition(cx, cy, 1000.0)
        cam.SetViewUp(0.0, 1.0, 0.0)
        cam.SetClippingRange(1.0, 2000.0)
        w, h = self.renderer.GetSize()
        aspect = (w / h) if (w > 0 and h > 0) else 1.0
        cam.SetParallelScale(1.04 * max((y1 - y0) / 2.0, (x1 - x0) / 2.0 / aspect))

    def fit_on_resize(self) -> None:
        """Refit after the viewport changed shape (only if the user has not zoomed)."""
        self.reset_camera()

    def zoom(self, factor: float) -> None:
        """Zoom by ``factor`` (> 1 magnifies) about the view centre."""
        cam = self.renderer.GetActiveCamera()
        cam.SetParallelScale(cam.GetParallelScale() / max(float(factor), 1e-3))

    def zoom_about(self, factor: float, display_xy) -> None:
        """Zoom keeping the point under the mouse fixed."""
        before = np.array(self.display_to_plane(*display_xy))
        self.zoom(factor)
        after = np.array(self.display_to_plane(*display_xy))
        self.pan_mm(*(before - after))

    def pan_mm(self, dx: float, dy: float) -> None:
        """Move the camera by ``(dx, dy)`` plane millimetres."""
        cam = self.renderer.GetActiveCamera()
        fx, fy, fz = cam.GetFocalPoint()
        px, py, pz = cam.GetPosition()
        cam.SetFocalPoint(fx + dx, fy + dy, fz)
        cam.SetPosition(px + dx, py + dy, pz)

    def pan_pixels(self, dx_px: float, dy_px: float) -> None:
        """Drag the image by display pixels (positive x right, positive y up)."""
        mmpp = self.scale_bar.mm_per_pixel()
        self.pan_mm(-dx_px * mmpp, -dy_px * mmpp)

    def display_to_plane(self, x_px: float, y_px: float) -> Tuple[float, float]:
        """VTK display pixel (origin lower left of the window) → plane mm."""
        r = self.renderer
        r.SetDisplayPoint(float(x_px), float(y_px), 0.0)
        r.DisplayToWorld()
        w = r.GetWorldPoint()
        if w[3]:
            return (w[0] / w[3], w[1] / w[3])
        return (w[0], w[1])

    def display_to_lps(self, x_px: float, y_px: float) -> np.ndarray:
        """VTK display pixel → LPS mm on the current slice."""
        return self.plane_to_lps(*self.display_to_plane(x_px, y_px))

    def lps_to_display(self, p) -> Tuple[float, float]:
        """LPS mm → VTK display pixel of its projection on this view."""
        x, y, _ = self.lps_to_plane(p)
        r = self.renderer
        r.SetWorldPoint(float(x), float(y), 0.0, 1.0)
        r.WorldToDisplay()
        d = r.GetDisplayPoint()
        return (d[0], d[1])

    # --- text ---------------------------------------------------------------------------
    def _update_text(self) -> None:
        if self.volume is None:
            return
        pos = float((self.cursor_lps - self.centre_lps) @ self.n + self.centre_lps @ self.n)
        self.corners.set("lower left", f"{self.name[:1].upper() + self.name[1:]}  {pos:+.1f} mm\n"
                         f"W {self.window[0]:.0f}  L {self.window[1]:.0f}")

    def set_font_scale(self, font_scale: float) -> None:
        """Resize every text and line of the view (projector, high-DPI screens)."""
        self.font_scale = float(font_scale)
        self.letters.set_font_scale(font_scale)
        self.scale_bar.set_font_scale(font_scale)
        self.corners.set_font_scale(font_scale)
        self._cross_actor.GetProperty().SetLineWidth(max(1.0, 1.5 * font_scale))
        if getattr(self, "_measurements", None):
            self.set_measurements(self._measurements)

    def set_patient_text(self, upper_left: str, upper_right: str = "") -> None:
        """Patient and series lines (hide them with :meth:`set_patient_text_visible`)."""
        self.corners.set("upper left", upper_left)
        self.corners.set("upper right", upper_right)

    def set_patient_text_visible(self, on: bool) -> None:
        self.corners.set_visible("upper left", on)
        self.corners.set_visible("upper right", on)
