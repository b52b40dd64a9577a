"""The report's pictures, rendered offscreen by the scenes the GUI shows (``surgplan.render``).

Every figure is an RGB array (``(h, w, 3)`` uint8) with a title and a caption
that says what is shown and from where: an anatomy overview in 3D, axial and
sagittal slices through a point of interest with the labels over them, and for
a trajectory: the 3D overview with the tool, slices whose plane contains the
tool (the one closest to axial and the one closest to sagittal), the view down
the tool from behind the skin entry, and the entry risk map on the skin.
Nothing identifying is drawn into the pictures (no patient text): the PDF's
header says whose images they are, or that they are anonymised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from surgplan.core.progress import CancelToken, ProgressCallback, check
from surgplan.imaging.structures import kind_of

#: Kinds drawn in the 3D pictures (skin, fat, muscle and bowel would hide the spine).
SHOWN_KINDS_3D = ("vertebra", "disc", "dural sac", "nerve root", "vessel", "ilium", "rib",
                  "organ")
#: Half the height of the slice pictures around their focus (mm).
SLICE_HALF_FIELD_MM = 70.0


@dataclass(frozen=True, eq=False)
class Figure:
    """One picture for the report.

    Attributes
    ----------
    key : str
        Stable identifier (``overview3d``, ``axial``, ``sagittal``, ``along``, ``riskmap``).
    title : str
    caption : str
        What is shown, in a sentence.
    rgb : numpy.ndarray
        ``(h, w, 3)`` uint8, top row first.
    """

    key: str
    title: str
    caption: str
    rgb: np.ndarray

    @property
    def aspect(self) -> float:
        """Height / width."""
        return self.rgb.shape[0] / self.rgb.shape[1]

    def is_blank(self) -> bool:
        """True when the picture is a single flat colour (nothing was drawn)."""
        return bool(np.ptp(self.rgb.reshape(-1, 3), axis=0).max() < 8)


def _safe_kind(name: str) -> str:
    try:
        return kind_of(name)
    except ValueError:
        return ""


def meshes_for_report(anatomy, *, progress: Optional[ProgressCallback] = None,
                      cancel: Optional[CancelToken] = None) -> Dict[str, object]:
    """Surfaces of the structures the 3D pictures show, by name (LPS mm)."""
    from surgplan.render import anatomy_meshes

    names = [n for n in anatomy.names if _safe_kind(n) in SHOWN_KINDS_3D]
    return anatomy_meshes(anatomy, names, max_triangles=8000, progress=progress, cancel=cancel)


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    n = np.linalg.norm(v)
    if n < 1e-9:
        raise ValueError("zero-length direction")
    return v / n


def _in_plane(normal: np.ndarray, prefer: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """``prefer`` projected into the plane of ``normal`` (``fallback`` if it vanishes)."""
    p = prefer - (prefer @ normal) * normal
    if np.linalg.norm(p) < 0.2:
        p = fallback - (fallback @ normal) * normal
    return _unit(p)


def plane_axes_through(direction, kind: str):
    """Screen axes ``(u, v)`` of the plane that contains a line and is closest to a standard view.

    Parameters
    ----------
    direction : array-like
        Direction of the line (LPS).
    kind : {'axial', 'sagittal'}
        Which standard plane to stay close to while containing the line.

    Returns
    -------
    (u, v) : tuple of numpy.ndarray
        Screen right and up (LPS unit vectors) following the radiological
        conventions of the standard views (axial: patient left on the right,
        anterior up; sagittal: posterior on the right, superior up).
    """
    d = _unit(direction)
    z = np.array([0.0, 0.0, 1.0])
    if kind == "axial":
        w = np.cross(z, d)
        if np.linalg.norm(w) < 1e-3:  # a vertical line: any plane through it; take the axial x
            w = np.array([1.0, 0.0, 0.0])
        n = _unit(np.cross(d, _unit(w)))
        u = _in_plane(n, np.array([1.0, 0.0, 0.0]), d)
        v = _in_plane(n, np.array([0.0, -1.0, 0.0]), np.cross(n, u))
    elif kind == "sagittal":
        w = z - (z @ d) * d
        if np.linalg.norm(w) < 1e-3:
            w = np.array([0.0, 1.0, 0.0])
        n = _unit(np.cross(d, _unit(w)))
        u = _in_plane(n, np.array([0.0, 1.0, 0.0]), d)
        v = _in_plane(n, z, np.cross(n, u))
    else:
        raise ValueError(f"kind must be 'axial' or 'sagittal', got {kind!r}")
    v = _unit(v - (v @ u) * u)
    return u, v


def _frame_slice(scene, centre_lps, half_height_mm: float) -> None:
    """Point a slice scene's camera at ``centre_lps`` showing ±``half_height_mm``."""
    p = scene.lps_to_plane(centre_lps)
    cam = scene.renderer.GetActiveCamera()
    cam.ParallelProjectionOn()
    cam.SetFocalPoint(p[0], p[1], 0.0)
    cam.SetPosition(p[0], p[1], 1000.0)
    cam.SetViewUp(0.0, 1.0, 0.0)
    cam.SetClippingRange(1.0, 2000.0)
    cam.SetParallelScale(float(half_height_mm))


#: A measurement is drawn on a slice picture when all its points lie this close to the
#: picture's plane (mm): about a slice of a 2-3 mm CT, so what is drawn is what was measured.
MEASUREMENT_IN_PLANE_MM = 2.5


def in_plane(measurement, axes, point_lps, tol_mm: float = MEASUREMENT_IN_PLANE_MM) -> bool:
    """True when every point of ``measurement`` lies within ``tol_mm`` of the plane.

    The plane has screen axes ``axes`` (``(u, v)`` LPS, or a standard view's name) and
    goes through ``point_lps`` (LPS mm).
    """
    from surgplan.render import STANDARD_AXES

    u, v = STANDARD_AXES[axes] if isinstance(axes, str) else axes
    n = np.cross(_unit(u), _unit(v))
    n = n / np.linalg.norm(n)
    d = (np.asarray(measurement.points_lps, float) - np.asarray(point_lps, float)) @ n
    return bool(np.all(np.abs(d) <= tol_mm))


def _slice_figure(volume, labels, axes, point_lps, *, tools=(), focus_lps=None,
                  half_field_mm: float = SLICE_HALF_FIELD_MM, size=(1000, 800), name="",
                  measurements=(), font_scale: float = 1.0, overlay_opacity: float = 0.35):
    from surgplan.render import SliceScene, render_offscreen

    s = SliceScene(axes, name=name, font_scale=font_scale)
    s.set_volume(volume)
    if labels is not None:
        s.set_labels(labels)
        s.set_overlay_opacity(overlay_opacity)
    s.set_cursor(point_lps)
    s.set_crosshair_visible(False)
    if tools:
        s.set_tools(list(tools))
    if measurements:
        s.set_measurements(list(measurements))
    render_offscreen(s, size)  # first render: the renderer learns its size
    _frame_slice(s, focus_lps if focus_lps is not None else point_lps, half_field_mm)
    return render_offscreen(s, size)


def _measured_here(measurements, axes, point_lps):
    """(numbers from 1, measurements) of those lying in the plane of a slice picture."""
    nums, items = [], []
    for n, m in enumerate(measurements or (), 1):
        if in_plane(m, axes, point_lps):
            nums.append(n)
            items.append(m)
    return nums, items


def _measured_caption(nums) -> str:
    if not nums:
        return ""
    which = ", ".join(str(n) for n in nums)
    return (f" Measurement{'s' if len(nums) > 1 else ''} {which} (in this plane) drawn in "
            "yellow.")


def measurement_plane(measurement):
    """The plane a measurement is best seen in: ``(key, (u, v), centre_lps)``.

    A standard plane (``'axial'``, ``'sagittal'``, ``'coronal'``) when the points lie
    within :data:`MEASUREMENT_IN_PLANE_MM` of one, as when they were drawn on it;
    otherwise the plane through the points (an angle's three) or through the line
    (a distance's), closest to sagittal or axial, named ``'oblique'``.
    """
    from surgplan.render import STANDARD_AXES

    pts = np.asarray(measurement.points_lps, float)
    centre = measurement.centre_lps
    best = None
    for key in ("sagittal", "axial", "coronal"):
        u, v = (np.asarray(a, float) for a in STANDARD_AXES[key])
        spread = float(np.ptp(pts @ np.cross(u, v)))
        if best is None or spread < best[0]:
            best = (spread, key, (tuple(u), tuple(v)))
    if best[0] <= MEASUREMENT_IN_PLANE_MM:
        # Through the points' mean depth: the slice they were drawn on.
        return best[1], best[2], centre
    if measurement.kind == "angle":
        n = np.cross(pts[0] - pts[1], pts[2] - pts[1])
        if np.linalg.norm(n) > 1e-6:
            n = _unit(n)
            u = _in_plane(n, np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0]))
            v = _unit(np.cross(n, u))
            if v[2] < 0:  # superior up, as the standard views have it
                u, v = -u, -v
            return "oblique", (tuple(u), tuple(v)), centre
    d = pts[-1] - pts[0]
    if np.linalg.norm(d) < 1e-6:
        return best[1], best[2], centre
    kind = "sagittal" if abs(_unit(d)[2]) > 0.5 else "axial"
    u, v = plane_axes_through(d, kind)
    return "oblique", (tuple(u), tuple(v)), centre


def measurement_figures(
    volume,
    anatomy,
    measurements: Sequence[object],
    *,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> List[Figure]:
    """One picture per measurement: the slice it lies in, the measurement drawn on it.

    Parameters
    ----------
    volume : Volume
    anatomy : Anatomy or None
        Its labels are drawn faintly under the measurement when given.
    measurements : sequence of Measurement
        LPS mm (:class:`surgplan.planning.measurements.Measurement`).

    Returns
    -------
    list of Figure
        Keys ``measurement1`` …, titles ``Measurement n``, captions naming the plane.
    """
    from surgplan.render import label_display

    report = progress or (lambda f, m: None)
    labels = label_display(anatomy) if anatomy is not None else None
    figs: List[Figure] = []
    for n, m in enumerate(measurements, 1):
        check(cancel)
        report((n - 1) / max(1, len(measurements)), f"picture of measurement {n}")
        key, axes, centre = measurement_plane(m)
        extent = float(np.ptp(np.asarray(m.points_lps, float) @ np.array(axes).T, axis=0).max())
        # The measurement and enough around it to see which bone it spans.
        half = max(35.0, 0.75 * extent + 15.0)
        rgb = _slice_figure(volume, labels, axes, centre, focus_lps=centre, half_field_mm=half,
                            size=(800, 800), name=f"measurement {n}", measurements=[m],
                            font_scale=2.0, overlay_opacity=0.2)  # the bone must show through
        where = {"axial": f"axial slice z = {centre[2]:.1f} mm",
                 "sagittal": f"sagittal slice x = {centre[0]:.1f} mm",
                 "coronal": f"coronal slice y = {centre[1]:.1f} mm"}.get(
                     key, "oblique plane through its points")
        title = f"Measurement {n}" + (f": {m.label}" if getattr(m, "label", "") else "")
        figs.append(Figure(f"measurement{n}", title,
                           f"{m.value_text} on the {where} (LPS), drawn in yellow.", rgb))
    report(1.0, "measurement pictures done")
    return figs


def _scene3d(meshes, tools=(), *, visible: Optional[Iterable[str]] = None):
    from surgplan.render import Scene3D

    sc = Scene3D()
    sc.set_surfaces(meshes, visible=visible)
    if tools:
        sc.set_tools(list(tools))
    return sc


def anatomy_figures(
    volume,
    anatomy,
    *,
    meshes: Optional[Dict[str, object]] = None,
    focus_lps=None,
    measurements: Sequence[object] = (),
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> List[Figure]:
    """Pictures of the segmentation: 3D overview, axial and sagittal slices with labels.

    Parameters
    ----------
    volume : Volume
    anatomy : Anatomy
    meshes : dict, optional
        ``name → Mesh`` (from :func:`meshes_for_report`), built when not given.
    focus_lps : array-like, optional
        Where the slices go through (LPS mm); default the centroid of the lowest
        lumbar vertebra found, else the volume's centre.
    measurements : sequence of Measurement, optional
        The user's measurements (LPS mm): those lying in a slice's plane are drawn on
        it and named in its caption by their number (from 1, in this order).
    """
    from surgplan.render import label_display, render_offscreen

    report = progress or (lambda f, m: None)
    if meshes is None:
        meshes = meshes_for_report(anatomy, cancel=cancel)
    check(cancel)
    if focus_lps is None:
        focus_lps = _default_focus(volume, anatomy)
    focus = np.asarray(focus_lps, float)
    labels = label_display(anatomy)
    figs = []
    report(0.2, "3D overview")
    if meshes:
        sc = _scene3d(meshes)
        rgb = render_offscreen(sc, (1000, 800), reset_camera=True)
        figs.append(Figure("overview3d", "Segmentation in 3D",
                           "Surfaces of the structures found, seen from behind and to the "
                           "patient's left (bone, discs, dural sac, roots, vessels).", rgb))
    check(cancel)
    report(0.5, "axial slice")
    from surgplan.render import STANDARD_AXES

    for key, axes, what in (("axial", STANDARD_AXES["axial"], "Axial"),
                            ("sagittal", STANDARD_AXES["sagittal"], "Sagittal")):
        nums, here = _measured_here(measurements, axes, focus)
        rgb = _slice_figure(volume, labels, axes, focus, half_field_mm=110.0, name=key,
                            measurements=here)
        z = focus[2] if key == "axial" else focus[0]
        where = f"z = {z:.1f} mm" if key == "axial" else f"x = {z:.1f} mm"
        figs.append(Figure(key, f"{what} slice with labels",
                           f"{what} slice through LPS ({focus[0]:.1f}, {focus[1]:.1f}, "
                           f"{focus[2]:.1f}) mm ({where}), the segmentation drawn over it."
                           + _measured_caption(nums), rgb))
        check(cancel)
    report(1.0, "anatomy pictures done")
    return figs


def _default_focus(volume, anatomy) -> np.ndarray:
    for name in ("L4", "L3", "L5", "L2", "L1"):
        if name in anatomy.names:
            m = anatomy.mask(name)
            if m.any():
                k, j, i = np.nonzero(m)
                return anatomy.ijk_to_lps[:3, :3] @ np.array([i.mean(), j.mean(), k.mean()]) \
                    + anatomy.ijk_to_lps[:3, 3]
    lo, hi = volume.bounds_lps()
    return (np.asarray(lo) + np.asarray(hi)) / 2.0


def trajectory_figures(
    volume,
    anatomy,
    entry_lps,
    target_lps,
    diameter_mm: float,
    *,
    label: str = "",
    meshes: Optional[Dict[str, object]] = None,
    others: Sequence[object] = (),
    skin_mesh=None,
    skin_values=None,
    skin_range=None,
    measurements: Sequence[object] = (),
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> List[Figure]:
    """Pictures of one trajectory with the tool drawn at its real diameter.

    Parameters
    ----------
    volume, anatomy
        The case.
    entry_lps, target_lps : array-like
        Skin entry and target (LPS mm).
    diameter_mm : float
        Tool diameter (mm).
    label : str
        The trajectory's name.
    meshes : dict, optional
        ``name → Mesh`` for the 3D pictures (built when not given).
    others : sequence of ToolGlyph
        Other trajectories of the plan, drawn fainter.
    skin_mesh, skin_values, skin_range
        The entry risk map: a skin Mesh, one value per vertex and ``(lo, hi)``;
        when given, a fifth picture shows it.
    measurements : sequence of Measurement, optional
        The user's measurements: those lying in a slice picture's plane are drawn on
        it and named in its caption by their number (from 1, in this order).
    """
    from surgplan.render import ToolGlyph, label_display, render_offscreen

    report = progress or (lambda f, m: None)
    e = np.asarray(entry_lps, float)
    t = np.asarray(target_lps, float)
    d = _unit(t - e)
    tool = ToolGlyph(e, t, float(diameter_mm), label=label, selected=True)
    tools = [tool] + [o for o in others]
    if meshes is None:
        meshes = meshes_for_report(anatomy, cancel=cancel)
    labels = label_display(anatomy)
    mid = (e + t) / 2.0
    length = float(np.linalg.norm(t - e))
    half = max(SLICE_HALF_FIELD_MM, 0.6 * length + 15.0)
    side = "left" if d[0] < 0 else "right"  # a tool going to the right starts on the left
    figs: List[Figure] = []

    report(0.05, "3D overview with the tool")
    sc = _scene3d(meshes, tools)
    sc.reset_camera(f"posterolateral {side}")
    _side_on(sc, d)
    _frame_3d(sc, mid, 1.3 * length + 90.0)
    rgb = render_offscreen(sc, (1000, 800), reset_camera=False)
    figs.append(Figure("overview3d", "3D overview with the tool",
                       f"The tool ({diameter_mm:g} mm) from skin entry (green) to target "
                       "(orange), seen from behind, square to the tool.", rgb))
    check(cancel)
    for key, what in (("axial", "Axial"), ("sagittal", "Sagittal")):
        report(0.3 if key == "axial" else 0.5, f"{key} slice through the trajectory")
        axes = plane_axes_through(d, key)
        nums, here = _measured_here(measurements, axes, mid)
        rgb = _slice_figure(volume, labels, axes, mid, tools=tools, focus_lps=mid,
                            half_field_mm=half, name=f"{key} through the tool",
                            measurements=here)
        standard = np.array([0.0, 0.0, 1.0]) if key == "axial" else np.array([1.0, 0.0, 0.0])
        normal = np.cross(axes[0], axes[1])
        tilt = float(np.degrees(np.arccos(min(1.0, abs(float(normal @ standard))))))
        figs.append(Figure(
            key, f"{what} plane through the trajectory",
            f"The {key} plane tilted {tilt:.0f}° from a true {key} slice so that it contains "
            "the whole tool; labels drawn over the image; the band is the tool at its real "
            "diameter." + _measured_caption(nums), rgb))
        check(cancel)
    report(0.7, "view along the trajectory")
    rgb = _view_along(meshes, tools, e, t)
    figs.append(Figure("along", "View along the trajectory",
                       "Looking down the tool from 150 mm behind the skin entry toward the "
                       "target: what lies around the path (skin and muscle hidden).", rgb))
    check(cancel)
    if skin_mesh is not None and skin_values is not None:
        report(0.85, "entry risk map")
        lo, hi = skin_range if skin_range is not None else (float(np.nanmin(skin_values)),
                                                            float(np.nanmax(skin_values)))
        rgb = _risk_map(skin_mesh, np.asarray(skin_values, float), lo, hi, tool, e, d,
                        1.2 * length + 80.0)
        figs.append(Figure("riskmap", "Entry risk map on the skin",
                           f"The skin seen from outside along the tool, each point coloured by "
                           f"the risk of entering there and going straight to the target "
                           f"(green {lo:.2g} to red {hi:.2g}; red also where the path is "
                           "infeasible); the planned entry is the green sphere.", rgb))
    report(1.0, "trajectory pictures done")
    return figs


def _risk_map(skin_mesh, values, lo, hi, tool, entry, d, field_mm):
    """The skin coloured by entry risk, seen from outside along the tool, with a colour bar."""
    from vtkmodules.vtkRenderingAnnotation import vtkScalarBarActor

    from surgplan.render import Scene3D, render_offscreen, scalar_lookup_table

    sc = Scene3D()
    sc.set_scalar_surface(skin_mesh, values, lo, hi, opacity=1.0)
    sc.set_tools([tool])
    bar = vtkScalarBarActor()
    bar.SetLookupTable(scalar_lookup_table(lo, hi))
    bar.SetTitle("risk")
    bar.SetNumberOfLabels(3)
    bar.SetWidth(0.08)
    bar.SetHeight(0.5)
    bar.SetPosition(0.9, 0.25)
    sc.renderer.AddViewProp(bar)
    up = np.array([0.0, 0.0, 1.0]) - d[2] * d
    up = _unit(up) if np.linalg.norm(up) > 1e-3 else np.array([0.0, -1.0, 0.0])
    cam = sc.renderer.GetActiveCamera()
    cam.ParallelProjectionOff()
    cam.SetViewAngle(30.0)
    dist = (field_mm / 2.0) / np.tan(np.radians(15.0))
    cam.SetFocalPoint(*entry)
    cam.SetPosition(*(entry - dist * d))
    cam.SetViewUp(*up)
    sc.renderer.ResetCameraClippingRange()
    return render_offscreen(sc, (1000, 800))


def _side_on(scene, direction) -> None:
    """Turn the 3D camera to look square at a tool of ``direction``, from behind."""
    d = _unit(direction)
    c = np.cross(d, np.array([0.0, 0.0, 1.0]))
    if np.linalg.norm(c) < 1e-3:
        c = np.array([0.0, 1.0, 0.0])
    c = _unit(c)
    if c[1] < 0:  # from the patient's back, where the surgeon stands
        c = -c
    view = _unit(c + np.array([0.0, 0.35, 0.15]))
    cam = scene.renderer.GetActiveCamera()
    foc = np.array(cam.GetFocalPoint())
    dist = np.linalg.norm(np.array(cam.GetPosition()) - foc)
    cam.SetPosition(*(foc + dist * view))
    cam.SetViewUp(0.0, 0.0, 1.0)


def _frame_3d(scene, centre, field_mm: float) -> None:
    """Keep the camera's direction but aim at ``centre`` showing about ``field_mm`` of it."""
    cam = scene.renderer.GetActiveCamera()
    pos, foc = np.array(cam.GetPosition()), np.array(cam.GetFocalPoint())
    back = _unit(pos - foc)
    angle = np.radians(cam.GetViewAngle())
    dist = (field_mm / 2.0) / np.tan(angle / 2.0)
    cam.SetFocalPoint(*centre)
    cam.SetPosition(*(np.asarray(centre) + dist * back))
    scene.renderer.ResetCameraClippingRange()


def _view_along(meshes, tools, entry, target):
    from surgplan.render import render_offscreen

    sc = _scene3d(meshes, tools)
    sc.set_labels_visible(False)
    d = _unit(target - entry)
    up = np.array([0.0, 0.0, 1.0])
    up = up - (up @ d) * d
    if np.linalg.norm(up) < 1e-3:
        up = np.array([0.0, -1.0, 0.0])
    cam = sc.renderer.GetActiveCamera()
    cam.ParallelProjectionOff()
    cam.SetPosition(*(entry - 150.0 * d))
    cam.SetFocalPoint(*target)
    cam.SetViewUp(*_unit(up))
    cam.SetViewAngle(35.0)
    sc.renderer.ResetCameraClippingRange()
    return render_offscreen(sc, (1000, 800))
