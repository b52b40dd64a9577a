"""The 3D view: structure surfaces with names, tools as cylinders, a scalar-coloured
surface (the entry risk map) and optional volume rendering, all in LPS mm.

VTK world coordinates *are* LPS millimetres here (no conversion), so a mesh from
:mod:`surgplan.imaging.meshes` and a trajectory from the planner go in as they are.
"""

from __future__ import annotations

from typing import Dict, Iterable, Mapping, Optional, Sequence

import numpy as np

from surgplan.core.progress import CancelToken, ProgressCallback, check, no_progress
from surgplan.imaging.structures import colour_of, kind_of
from surgplan.render.annotations import CornerText, OrientationLetters
from surgplan.render.glyphs import ToolGlyph, rgb01
from surgplan.render.images import index_space_image, scalar_lookup_table

#: Surface opacity by kind: bone opaque; soft tissue see-through so bone shows behind it.
KIND_OPACITY = {
    "vertebra": 1.0, "rib": 1.0, "ilium": 0.35, "disc": 0.9, "spinal canal": 0.35,
    "dural sac": 0.8, "nerve root": 1.0, "vessel": 0.9, "muscle": 0.3, "organ": 0.5,
    "bowel": 0.3, "fat": 0.1, "skin": 0.12, "body": 0.08,
}
#: Kinds not shown in 3D by default (they hide everything inside them).
HIDDEN_BY_DEFAULT = ("skin", "body", "fat", "muscle", "bowel", "spinal canal")
BACKGROUND_TOP = (0.16, 0.18, 0.22)
BACKGROUND_BOTTOM = (0.03, 0.03, 0.05)


def anatomy_meshes(
    anatomy,
    names: Optional[Iterable[str]] = None,
    *,
    max_triangles: int = 15_000,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> Dict[str, object]:
    """Surface meshes (LPS mm) of an Anatomy's structures, by name.

    Parameters
    ----------
    anatomy : Anatomy
    names : iterable of str, optional
        Which structures; default all.
    max_triangles : int
        Per-structure decimation target (3D display, not export).
    progress, cancel
        Progress callback and cancellation token (checked between structures).

    Returns
    -------
    dict
        ``name → Mesh``; structures with an empty mask are left out.
    """
    from surgplan.imaging.meshes import mesh_from_mask

    report = progress or no_progress
    wanted = list(anatomy.names if names is None else names)
    out = {}
    for n, name in enumerate(wanted):
        check(cancel)
        report(n / max(len(wanted), 1), f"surface of {name}")
        mesh = mesh_from_mask(anatomy.mask(name), anatomy.ijk_to_lps, name,
                              max_triangles=max_triangles)
        if mesh is not None:
            out[name] = mesh
    report(1.0, "surfaces ready")
    return out


def surface_actor(mesh, colour=None, opacity: Optional[float] = None):
    """A lit ``vtkActor`` of a Mesh in its structure's colour (RGB 0–255)."""
    from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

    mapper = vtkPolyDataMapper()
    mapper.SetInputData(mesh.to_vtk())
    mapper.ScalarVisibilityOff()
    actor = vtkActor()
    actor.SetMapper(mapper)
    p = actor.GetProperty()
    try:
        default_rgb, kind = colour_of(mesh.name), kind_of(mesh.name)
    except ValueError:
        default_rgb, kind = (200, 200, 200), ""
    p.SetColor(*rgb01(colour or default_rgb))
    p.SetOpacity(KIND_OPACITY.get(kind, 1.0) if opacity is None else float(opacity))
    p.SetSpecular(0.15)
    p.SetSpecularPower(20)
    p.SetDiffuse(0.85)
    p.SetAmbient(0.12)
    return actor


def scalar_surface_actor(mesh, values: np.ndarray, lo: float, hi: float, *,
                         reverse: bool = False, opacity: float = 1.0):
    """A Mesh coloured per vertex from ``values`` (green low → red high).

    Parameters
    ----------
    mesh : Mesh
    values : numpy.ndarray
        One value per vertex (NaN: not evaluated, drawn grey).
    lo, hi : float
        Range mapped onto the colour scale.
    reverse : bool
        Red for low values instead (e.g. clearance in mm).
    """
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

    vals = np.asarray(values, np.float32).ravel()
    if vals.shape[0] != mesh.vertices_lps.shape[0]:
        raise ValueError(f"{vals.shape[0]} values for {mesh.vertices_lps.shape[0]} vertices")
    poly = mesh.to_vtk()
    arr = numpy_to_vtk(vals, deep=True)
    arr.SetName("value")
    poly.GetPointData().SetScalars(arr)
    lut = scalar_lookup_table(lo, hi, reverse=reverse)
    lut.SetNanColor(0.5, 0.5, 0.5, 1.0)
    mapper = vtkPolyDataMapper()
    mapper.SetInputData(poly)
    mapper.SetLookupTable(lut)
    mapper.SetScalarRange(lut.GetTableRange())
    mapper.ScalarVisibilityOn()
    mapper.InterpolateScalarsBeforeMappingOn()
    actor = vtkActor()
    actor.SetMapper(mapper)
    actor.GetProperty().SetOpacity(opacity)
    actor.GetProperty().SetAmbient(0.25)
    return actor


def tool_actor(tool: ToolGlyph, *, sides: int = 32):
    """The tool as a capped cylinder of its real diameter from entry to target (LPS)."""
    from vtkmodules.vtkFiltersCore import vtkTubeFilter
    from vtkmodules.vtkFiltersSources import vtkLineSource
    from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

    line = vtkLineSource()
    line.SetPoint1(*tool.entry_lps)
    line.SetPoint2(*tool.target_lps)
    tube = vtkTubeFilter()
    tube.SetInputConnection(line.GetOutputPort())
    tube.SetRadius(tool.diameter_mm / 2.0)
    tube.SetNumberOfSides(sides)
    tube.CappingOn()
    mapper = vtkPolyDataMapper()
    mapper.SetInputConnection(tube.GetOutputPort())
    actor = vtkActor()
    actor.SetMapper(mapper)
    p = actor.GetProperty()
    p.SetColor(*rgb01(tool.colour))
    p.SetSpecular(0.5)
    p.SetSpecularPower(40)
    p.SetOpacity(1.0 if tool.selected else 0.7)
    return actor


def _sphere_actor(centre, radius_mm: float, rgb):
    from vtkmodules.vtkFiltersSources import vtkSphereSource
    from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

    s = vtkSphereSource()
    s.SetCenter(*centre)
    s.SetRadius(radius_mm)
    s.SetThetaResolution(20)
    s.SetPhiResolution(20)
    m = vtkPolyDataMapper()
    m.SetInputConnection(s.GetOutputPort())
    a = vtkActor()
    a.SetMapper(m)
    a.GetProperty().SetColor(*rgb01(rgb))
    return a


def _label_actor(text: str, position, font_px: int):
    from vtkmodules.vtkRenderingCore import vtkBillboardTextActor3D

    a = vtkBillboardTextActor3D()
    a.SetInput(text)
    a.SetPosition(*position)
    p = a.GetTextProperty()
    p.SetFontSize(font_px)
    p.SetBold(True)
    p.SetColor(1.0, 1.0, 1.0)
    p.SetShadow(True)
    p.SetJustificationToLeft()
    p.SetVerticalJustificationToCentered()
    a.PickableOff()
    return a


class Scene3D:
    """The 3D view's renderer and everything in it.

    Parameters
    ----------
    font_scale : float
        Multiplies font sizes (device-pixel ratio, projector).
    """

    def __init__(self, *, font_scale: float = 1.0):
        from vtkmodules.vtkRenderingCore import vtkRenderer

        self.renderer = vtkRenderer()
        self.renderer.GradientBackgroundOn()
        self.renderer.SetBackground(*BACKGROUND_BOTTOM)
        self.renderer.SetBackground2(*BACKGROUND_TOP)
        self.font_scale = float(font_scale)
        self.surface_actors: Dict[str, object] = {}
        self.label_actors: Dict[str, object] = {}
        self._tool_actors: list = []
        self.handles: dict = {}  # (tool index, 'entry'|'target') → (sphere actor, LPS point)
        self._scalar_actor = None
        self._volume_prop = None
        self.letters = OrientationLetters(self.renderer, font_scale=self.font_scale)
        self.corners = CornerText(self.renderer, font_scale=self.font_scale)
        self._labels_visible = True

    # --- surfaces -------------------------------------------------------------------------
    def set_surfaces(self, meshes: Mapping[str, object], *, visible: Optional[Iterable[str]] = None,
                     colours: Optional[Mapping[str, tuple]] = None) -> None:
        """Replace the surfaces with ``meshes`` (``name → Mesh``).

        Vertebrae get their name as a label beside them (to the patient's
        right).  ``visible`` defaults to everything but the kinds in
        :data:`HIDDEN_BY_DEFAULT`.
        """
        for a in list(self.surface_actors.values()) + list(self.label_actors.values()):
            self.renderer.RemoveViewProp(a)
        self.surface_actors, self.label_actors = {}, {}
        colours = colours or {}
        for name, mesh in meshes.items():
            actor = surface_actor(mesh, colours.get(name))
            self.renderer.AddActor(actor)
            self.surface_actors[name] = actor
            try:
                is_vert = kind_of(name) == "vertebra"
            except ValueError:
                is_vert = False
            if is_vert:
                v = mesh.vertices_lps
                centre = v.mean(axis=0)
                # Beside the vertebra on the patient's left (+x), the side the default
                # (transforaminal, posterolateral left) camera looks from.
                pos = np.array([v[:, 0].max() + 8.0, centre[1], centre[2]])
                lab = _label_actor(name, pos, int(round(20 * self.font_scale)))
                lab.SetVisibility(self._labels_visible)
                self.renderer.AddViewProp(lab)
                self.label_actors[name] = lab
        if visible is None:
            visible = [n for n in meshes if _kind(n) not in HIDDEN_BY_DEFAULT]
        self.set_visible(visible)

    def set_visible(self, names: Iterable[str]) -> None:
        """Show exactly these surfaces (and their labels)."""
        shown = set(names)
        for n, a in self.surface_actors.items():
            a.SetVisibility(n in shown)
        for n, a in self.label_actors.items():
            a.SetVisibility(self._labels_visible and n in shown)

    def set_colour(self, name: str, rgb) -> None:
        if name in self.surface_actors:
            self.surface_actors[name].GetProperty().SetColor(*rgb01(rgb))

    def set_labels_visible(self, on: bool) -> None:
        self._labels_visible = bool(on)
        for n, a in self.label_actors.items():
            a.SetVisibility(on and bool(self.surface_actors[n].GetVisibility()))

    # --- tools -----------------------------------------------------------------------------
    def set_tools(self, tools: Sequence[ToolGlyph]) -> None:
        """Draw tools as cylinders; the selected one gets entry/target spheres."""
        from surgplan.render.glyphs import ENTRY_RGB, TARGET_RGB

        for a in self._tool_actors:
            self.renderer.RemoveViewProp(a)
        self._tool_actors = []
        self.handles = {}
        for idx, tool in enumerate(tools):
            acts = [tool_actor(tool)]
            if tool.selected:
                r = max(tool.diameter_mm / 2.0 + 1.0, 2.5)
                entry = _sphere_actor(tool.entry_lps, r, ENTRY_RGB)
                target = _sphere_actor(tool.target_lps, r, TARGET_RGB)
                self.handles[(idx, "entry")] = (entry, tool.entry_lps)
                self.handles[(idx, "target")] = (target, tool.target_lps)
                acts += [entry, target]
            for a in acts:
                self.renderer.AddActor(a)
                self._tool_actors.append(a)

    def handle_at(self, display_xy):
        """``(tool_index, 'entry' | 'target')`` of the handle sphere under a display
        point (VTK pixels, origin lower left), or ``None``."""
        from vtkmodules.vtkRenderingCore import vtkPropPicker

        if not getattr(self, "handles", None):
            return None
        picker = vtkPropPicker()
        if not picker.Pick(float(display_xy[0]), float(display_xy[1]), 0.0, self.renderer):
            return None
        actor = picker.GetActor()
        for key, (a, _) in self.handles.items():
            if a is actor:
                return key
        return None

    def drag_point(self, start_lps, display_xy) -> np.ndarray:
        """Where a point dragged to a display position lands: on the plane through
        ``start_lps`` facing the camera (the depth the user cannot see is kept)."""
        r = self.renderer
        cam = r.GetActiveCamera()
        p0 = np.asarray(start_lps, float)
        n = np.asarray(cam.GetDirectionOfProjection(), float)
        r.SetDisplayPoint(float(display_xy[0]), float(display_xy[1]), 0.0)
        r.DisplayToWorld()
        w = np.array(r.GetWorldPoint(), float)
        near = w[:3] / (w[3] or 1.0)
        r.SetDisplayPoint(float(display_xy[0]), float(display_xy[1]), 1.0)
        r.DisplayToWorld()
        w = np.array(r.GetWorldPoint(), float)
        far = w[:3] / (w[3] or 1.0)
        ray = far - near
        denom = float(ray @ n)
        if abs(denom) < 1e-12:
            return p0
        t = float((p0 - near) @ n) / denom
        return near + t * ray

    def world_to_display(self, p_lps):
        r = self.renderer
        r.SetWorldPoint(*[float(v) for v in p_lps], 1.0)
        r.WorldToDisplay()
        return r.GetDisplayPoint()[:2]

    # --- entry risk map ------------------------------------------------------------------
    def set_scalar_surface(self, mesh, values, lo: float, hi: float, *, reverse: bool = False,
                           opacity: float = 1.0) -> None:
        """Show (or with ``mesh=None`` remove) one scalar-coloured surface, e.g. the
        entry risk map on the skin."""
        if self._scalar_actor is not None:
            self.renderer.RemoveViewProp(self._scalar_actor)
            self._scalar_actor = None
        if mesh is not None:
            self._scalar_actor = scalar_surface_actor(mesh, values, lo, hi, reverse=reverse,
                                                      opacity=opacity)
            self.renderer.AddActor(self._scalar_actor)

    # --- volume rendering -----------------------------------------------------------------
    def set_volume_rendering(self, volume, on: bool = True) -> None:
        """Ray-cast ``volume`` (bone and contrast for CT; the bright third for MR)."""
        from vtkmodules.vtkCommonDataModel import vtkPiecewiseFunction
        from vtkmodules.vtkRenderingCore import (
            vtkColorTransferFunction,
            vtkVolume,
            vtkVolumeProperty,
        )
        from vtkmodules.vtkRenderingVolumeOpenGL2 import vtkSmartVolumeMapper

        if self._volume_prop is not None:
            self.renderer.RemoveViewProp(self._volume_prop)
            self._volume_prop = None
        if not on or volume is None:
            return
        mapper = vtkSmartVolumeMapper()
        img = index_space_image(volume.array)
        mapper.SetInputData(img)
        mapper._img = img
        if volume.modality.upper() == "CT" or volume.modality == "":
            pts = [(-200, 0.0), (150, 0.0), (300, 0.15), (1200, 0.6)]
            cols = [(150, 0.85, 0.55, 0.4), (300, 0.95, 0.9, 0.8), (1200, 1.0, 1.0, 0.95)]
        else:
            a = np.asarray(volume.array)[::4, ::4, ::4]
            lo, hi = np.percentile(a, [70, 99.5])
            pts = [(lo, 0.0), (hi, 0.5)]
            cols = [(lo, 0.8, 0.8, 0.8), (hi, 1.0, 1.0, 1.0)]
        op = vtkPiecewiseFunction()
        for x, y in pts:
            op.AddPoint(float(x), float(y))
        ct = vtkColorTransferFunction()
        for x, r, g, b in cols:
            ct.AddRGBPoint(float(x), r, g, b)
        prop = vtkVolumeProperty()
        prop.SetScalarOpacity(op)
        prop.SetColor(ct)
        prop.ShadeOn()
        prop.SetInterpolationTypeToLinear()
        vol = vtkVolume()
        vol.SetMapper(mapper)
        vol.SetProperty(prop)
        from vtkmodules.vtkCommonMath import vtkMatrix4x4

        m = vtkMatrix4x4()
        m.DeepCopy(np.asarray(volume.ijk_to_lps, float).ravel().tolist())
        vol.SetUserMatrix(m)
        self.renderer.AddVolume(vol)
        self._volume_prop = vol

    # --- camera ---------------------------------------------------------------------------
    def reset_camera(self, view: str = "posterolateral left") -> None:
        """Frame the visible props from a named direction.

        ``view`` is one of ``posterolateral left`` (default: the transforaminal
        surgeon's view), ``posterolateral right``, ``posterior``, ``anterior``,
        ``left``, ``right``.  Superior is up.
        """
        dirs = {
            "posterolateral left": (0.7, 0.7, 0.15), "posterolateral right": (-0.7, 0.7, 0.15),
            "posterior": (0.0, 1.0, 0.0), "anterior": (0.0, -1.0, 0.0),
            "left": (1.0, 0.0, 0.0), "right": (-1.0, 0.0, 0.0),
        }
        d = np.asarray(dirs[view], float)
        d /= np.linalg.norm(d)
        cam = self.renderer.GetActiveCamera()
        cam.ParallelProjectionOff()
        cam.SetFocalPoint(0.0, 0.0, 0.0)
        cam.SetPosition(*(d * 500.0))
        cam.SetViewUp(0.0, 0.0, 1.0)
        self.renderer.ResetCamera()
        cam.Zoom(1.25)
        self.renderer.ResetCameraClippingRange()

    def focus(self, point_lps, radius_mm: float = 100.0) -> None:
        """Centre the camera on ``point_lps`` (keeping its direction) so that a sphere of
        ``radius_mm`` around it fills the view."""
        import math

        cam = self.renderer.GetActiveCamera()
        p = np.asarray(point_lps, float)
        d = np.asarray(cam.GetDirectionOfProjection(), float)
        dist = radius_mm / math.tan(math.radians(cam.GetViewAngle() / 2.0))
        cam.SetFocalPoint(*p)
        cam.SetPosition(*(p - d * dist))
        self.renderer.ResetCameraClippingRange()

    def set_font_scale(self, font_scale: float) -> None:
        """Resize the letters, corner text and structure names."""
        self.font_scale = float(font_scale)
        self.letters.set_font_scale(font_scale)
        self.corners.set_font_scale(font_scale)
        for a in self.label_actors.values():
            a.GetTextProperty().SetFontSize(int(round(20 * font_scale)))

    def set_patient_text(self, upper_left: str, upper_right: str = "") -> None:
        self.corners.set("upper left", upper_left)
        self.corners.set("upper right", upper_right)

    def set_patient_text_visible(self, on: bool) -> None:
        self.corners.set_visible("upper left", on)
        self.corners.set_visible("upper right", on)


def _kind(name: str) -> str:
    try:
        return kind_of(name)
    except ValueError:
        return ""

