"""Slice-stack geometry: sorting, spacing, tilt, gaps, and the target voxel grid.

Everything here works on header values only (no pixels), so that a series can
be inspected before it is decoded.  Positions and directions are patient LPS
millimetres.

Conventions
-----------
* ``r`` and ``c`` are the row and column directions of ImageOrientationPatient
  (``r`` points along a row, i.e. the direction of increasing column index
  ``i``); the slice normal is ``n = r × c``.  Slices are sorted by
  ``d = position · n`` so that ``k`` increases along ``n`` and the affine is
  right-handed.
* Spacing across slices comes from the positions, never from SliceThickness
  (reconstructions often overlap: 3 mm thick slices every 2 mm).
* A stack is *regular* when every slice lies on the line ``p0 + k·step·n``
  within :data:`REGULAR_TOL_MM`; a regular stack keeps its voxels as read.  Any
  other stack is resampled onto a regular grid with axes ``r``, ``c``, ``n``
  (see :func:`target_planes`) — it is never sheared or stretched silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from surgplan.core.errors import GeometryError
from surgplan.imaging.dicom.headers import SliceHeader
from surgplan.imaging.volume import LoadWarning

#: Absolute part of the tolerance (mm) for "this slice is where a regular
#: stack would put it".  Header positions are written with ~1e-3 mm rounding;
#: 0.02 mm is far below any pixel size yet above that noise.
REGULAR_TOL_MM = 0.02
#: Relative part of the same tolerance, as a fraction of the step.
REGULAR_TOL_REL = 0.01
#: Two slices closer than this fraction of the usual step are duplicates.
DUPLICATE_REL = 0.05
#: A gap within this fraction of an integer multiple (≥2) of the usual step is
#: reported as missing slices rather than as irregular spacing.
MISSING_REL = 0.1
#: In-plane drift (fraction of a pixel) above which a stack counts as tilted.
TILT_TOL_PX = 0.1
#: The orientation of all slices of a series must agree within this (cosine units).
ORIENTATION_TOL = 1e-3
#: A resampled grid may hold at most this many times the original slice count
#: before the step is coarsened from the smallest to the median step.
MAX_UPSAMPLING = 8.0


@dataclass(frozen=True, eq=False)
class StackGeometry:
    """Header-only geometry of one series and the regular grid it will load onto.

    Attributes
    ----------
    order : tuple of int
        Indices (into the headers given to :func:`analyse_stack`) of the slices
        used, sorted along the slice normal; duplicates are left out.
    dropped : tuple of int
        Indices of slices dropped as duplicates of a kept slice.
    row_dir, col_dir, normal : numpy.ndarray
        Unit LPS directions of i, j and k of the target grid.
    ijk_to_lps : numpy.ndarray
        4×4 affine of the target grid (voxel centre → LPS mm).
    shape_ijk : tuple of int
        Target grid size (ni, nj, nk).
    resample : bool
        True when the slices do not already lie on the target grid.
    slice_ijk : numpy.ndarray
        ``(len(order), 3)``: target-grid index of the first pixel of each kept
        slice (fractional where the slice falls between grid points).
    steps_mm : numpy.ndarray
        Distances between consecutive kept slices along the normal (mm).
    tilt_deg : float
        Angle between the stacking direction and the slice normal (degrees).
    warnings : tuple of LoadWarning
        What was noticed (tilt, irregular spacing, gaps, duplicates, resampling).
    """

    order: tuple
    dropped: tuple
    row_dir: np.ndarray
    col_dir: np.ndarray
    normal: np.ndarray
    ijk_to_lps: np.ndarray
    shape_ijk: tuple
    resample: bool
    slice_ijk: np.ndarray
    steps_mm: np.ndarray
    tilt_deg: float
    warnings: tuple = field(default_factory=tuple)

    @property
    def spacing_mm(self) -> np.ndarray:
        """Target voxel spacing along i, j, k (mm): [x, y, z] of the grid."""
        return np.linalg.norm(self.ijk_to_lps[:3, :3], axis=0)

    @property
    def orientation(self) -> tuple:
        """ImageOrientationPatient-style (row dir, column dir) as 6 floats (LPS)."""
        return tuple(float(v) for v in np.concatenate([self.row_dir, self.col_dir]))


def slice_normal(orientation: Sequence[float]) -> np.ndarray:
    """Unit normal ``r × c`` of an ImageOrientationPatient (6 floats, LPS)."""
    r = np.asarray(orientation[:3], float)
    c = np.asarray(orientation[3:], float)
    n = np.cross(r, c)
    norm = float(np.linalg.norm(n))
    if norm < 1e-6:
        raise GeometryError(f"ImageOrientationPatient {list(orientation)} has parallel row "
                            "and column directions: the image plane is undefined")
    return n / norm


def _axes(orientation: Sequence[float], label: str) -> tuple:
    """Orthonormal (r, c, n) from an orientation; fails on non-orthogonal input."""
    r = np.asarray(orientation[:3], float)
    c = np.asarray(orientation[3:], float)
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(c))):
        raise GeometryError(f"{label}: ImageOrientationPatient is not finite: {list(orientation)}")
    rn, cn = np.linalg.norm(r), np.linalg.norm(c)
    if rn < 1e-6 or cn < 1e-6:
        raise GeometryError(f"{label}: ImageOrientationPatient has a zero vector: "
                            f"{list(orientation)}")
    r, c = r / rn, c / cn
    if abs(float(r @ c)) > 0.01:
        raise GeometryError(
            f"{label}: row and column directions are not perpendicular "
            f"(cosine {float(r @ c):.3f}); the header is corrupt, re-export the series"
        )
    # Remove the rounding left in 6-decimal headers so the grid is orthonormal.
    c = c - (r @ c) * r
    c /= np.linalg.norm(c)
    return r, c, np.cross(r, c)


def analyse_stack(slices: Sequence[SliceHeader]) -> StackGeometry:
    """Sort slices and check their geometry; plan the regular grid they load onto.

    Parameters
    ----------
    slices : sequence of SliceHeader
        The slices (or frames) of one series, in any order; all must share
        orientation, rows, columns and pixel spacing (the index guarantees it).

    Returns
    -------
    StackGeometry
        The sorted order, the target grid and the warnings.

    Raises
    ------
    GeometryError
        When slices disagree in orientation, pixel spacing or size, or the
        orientation itself is unusable.
    """
    if not slices:
        raise GeometryError("a series needs at least one slice")
    first = slices[0]
    r, c, n = _axes(first.orientation, first.label)
    ori0 = np.asarray(first.orientation, float)
    for s in slices[1:]:
        if np.max(np.abs(np.asarray(s.orientation, float) - ori0)) > ORIENTATION_TOL:
            raise GeometryError(
                f"slices of one series have different orientations: {first.label} has "
                f"{list(first.orientation)} but {s.label} has {list(s.orientation)}; "
                "load them as separate series"
            )
        if (s.pixel.rows, s.pixel.columns) != (first.pixel.rows, first.pixel.columns):
            raise GeometryError(f"{s.label} is {s.pixel.rows}×{s.pixel.columns} but "
                                f"{first.label} is {first.pixel.rows}×{first.pixel.columns}")
        if np.max(np.abs(np.subtract(s.pixel_spacing_mm, first.pixel_spacing_mm))) > 1e-3:
            raise GeometryError(f"{s.label} has pixel spacing {s.pixel_spacing_mm} but "
                                f"{first.label} has {first.pixel_spacing_mm}")
    # PixelSpacing is (between rows, between columns) = (along j, along i).
    sj, si = (float(v) for v in first.pixel_spacing_mm)
    if not (si > 0 and sj > 0):
        raise GeometryError(f"{first.label}: PixelSpacing {first.pixel_spacing_mm} must be > 0")
    rows, cols = first.pixel.rows, first.pixel.columns

    positions = np.array([s.position_lps for s in slices], float)
    d_all = positions @ n
    tiebreak = np.array([s.instance_number if s.instance_number is not None else 0
                         for s in slices])
    sorted_idx = np.lexsort((tiebreak, d_all))
    warnings: list = []

    kept, dropped = _drop_duplicates(sorted_idx, d_all, slices, warnings)
    p = positions[kept]
    d = d_all[kept] - d_all[kept[0]]

    if len(kept) == 1:
        return _single_slice(slices[kept[0]], kept, dropped, r, c, n, si, sj, warnings)

    steps = np.diff(d)
    step_med = float(np.median(steps))
    # In-plane offsets of every slice from the first, in pixels of the slice grid.
    offsets = p - p[0]
    u_px = offsets @ r / si
    v_px = offsets @ c / sj
    drift_px = float(np.max(np.hypot(u_px, v_px)))
    tilt_deg = _tilt_deg(offsets, d, r, c)
    tilted = drift_px > TILT_TOL_PX
    if tilted:
        warnings.append(LoadWarning(
            "gantry-tilt",
            f"the slices are stacked {tilt_deg:.1f}° off their normal (gantry tilt): "
            f"the last slice is shifted {drift_px * min(si, sj):.1f} mm in-plane "
            "relative to the first; the volume is resampled so that anatomy is not sheared",
        ))

    tol = max(REGULAR_TOL_MM, REGULAR_TOL_REL * step_med)
    mean_step = float(d[-1] / (len(d) - 1))
    residual = float(np.max(np.abs(d - mean_step * np.arange(len(d)))))
    regular = residual <= tol
    if not regular:
        _spacing_warnings(steps, step_med, tol, d_all[kept], slices, kept, warnings)

    if not tilted and regular:
        aff = _affine(r, c, n, si, sj, mean_step, p[0])
        slice_ijk = np.column_stack([np.zeros(len(d)), np.zeros(len(d)), np.arange(len(d))])
        return StackGeometry(tuple(int(k) for k in kept), dropped, r, c, n, aff,
                             (cols, rows, len(kept)), False, slice_ijk, steps, tilt_deg,
                             tuple(warnings))

    # --- resampled grid: axes r, c, n; k planes on the slice planes where possible
    nk = len(d) if regular else _irregular_plane_count(d, float(np.min(steps)), step_med)
    sk = float(d[-1] / (nk - 1))  # first and last planes land exactly on slices
    # Keep slice 0's in-plane samples on the grid (integer offsets) and widen the
    # field of view so that every pixel of every slice lies inside it.
    i_lo = math.floor(float(np.min(u_px)) + 1e-6)
    j_lo = math.floor(float(np.min(v_px)) + 1e-6)
    i_hi = math.ceil(float(np.max(u_px)) + cols - 1 - 1e-6)
    j_hi = math.ceil(float(np.max(v_px)) + rows - 1 - 1e-6)
    ni, nj = i_hi - i_lo + 1, j_hi - j_lo + 1
    origin = p[0] + i_lo * si * r + j_lo * sj * c
    aff = _affine(r, c, n, si, sj, sk, origin)
    slice_ijk = np.column_stack([u_px - i_lo, v_px - j_lo, d / sk])
    plane_dev = float(np.max(np.abs(slice_ijk[:, 2] - np.round(slice_ijk[:, 2])))) * sk
    what = []
    if tilted:
        what.append(f"each slice shifted in-plane by up to {drift_px:.1f} px (bilinear)")
    if not regular:
        what.append(f"linear interpolation between slices onto a {sk:.3f} mm step "
                    f"(original planes within {plane_dev:.2f} mm of grid planes)")
    warnings.append(LoadWarning(
        "resampled",
        f"resampled {len(kept)} slices onto a regular {ni}×{nj}×{nk} grid of "
        f"{si:.3f}×{sj:.3f}×{sk:.3f} mm along the row, column and slice normal: "
        + "; ".join(what)
        + (f"; field of view widened from {cols}×{rows} to keep every original pixel"
           if (ni, nj) != (cols, rows) else ""),
    ))
    return StackGeometry(tuple(int(k) for k in kept), dropped, r, c, n, aff, (ni, nj, nk),
                         True, slice_ijk, steps, tilt_deg, tuple(warnings))


def _irregular_plane_count(d: np.ndarray, smallest: float, median: float) -> int:
    """Number of k-planes for an irregular stack spanning ``d[-1]`` mm.

    The step is at most the smallest original step (no slice is lost), and
    among the next few candidate counts the one whose planes pass closest to
    every original slice is taken, so most slices are reproduced unblended.
    A stack with one tiny step would need a huge grid; past
    :data:`MAX_UPSAMPLING` × the slice count the median step is used instead.
    """
    extent = float(d[-1])
    base = int(math.ceil(extent / smallest - 1e-6)) + 1
    if base > MAX_UPSAMPLING * len(d):
        base = int(round(extent / median)) + 1
    best, best_dev = base, float("inf")
    for nk in range(base, base + max(4, base // 4)):
        sk = extent / (nk - 1)
        dev = float(np.max(np.abs(d / sk - np.round(d / sk)))) * sk
        if dev < best_dev - 1e-3:
            best, best_dev = nk, dev
    return best


def _affine(r, c, n, si, sj, sk, origin) -> np.ndarray:
    aff = np.eye(4)
    aff[:3, 0] = r * si
    aff[:3, 1] = c * sj
    aff[:3, 2] = n * sk
    aff[:3, 3] = origin
    return aff


def _tilt_deg(offsets: np.ndarray, d: np.ndarray, r, c) -> float:
    """Angle (deg) between the least-squares stacking direction and the normal."""
    if d[-1] <= 0:
        return 0.0
    # Fit in-plane offset = slope · d; the stacking direction is (slope_u, slope_v, 1).
    du = np.linalg.lstsq(d[:, None], offsets @ r, rcond=None)[0][0]
    dv = np.linalg.lstsq(d[:, None], offsets @ c, rcond=None)[0][0]
    return float(np.degrees(np.arctan(math.hypot(du, dv))))


def _drop_duplicates(sorted_idx, d_all, slices, warnings) -> tuple:
    """Keep the first slice (lowest InstanceNumber) of each group at one position."""
    d_sorted = d_all[sorted_idx]
    steps = np.diff(d_sorted)
    positive = steps[steps > 1e-6]
    usual = float(np.median(positive)) if positive.size else 0.0
    dup_tol = max(0.01, DUPLICATE_REL * usual)
    kept = [int(sorted_idx[0])]
    dropped = []
    for prev_d, idx in zip(d_sorted[:-1], sorted_idx[1:]):
        if abs(d_all[idx] - d_all[kept[-1]]) < dup_tol:
            dropped.append(int(idx))
        else:
            kept.append(int(idx))
    if dropped:
        names = ", ".join(slices[i].label for i in dropped[:3])
        more = f" and {len(dropped) - 3} more" if len(dropped) > 3 else ""
        warnings.append(LoadWarning(
            "overlapping-slices",
            f"{len(dropped)} slice(s) lie at the position of another slice (within "
            f"{dup_tol:.2f} mm) and were dropped, keeping the lowest InstanceNumber: "
            f"{names}{more}",
        ))
    # Overlap by reconstruction (thick slices, small step) is normal in CT and
    # harmless; say so, because the spacing then differs from SliceThickness.
    thickness = slices[kept[0]].slice_thickness_mm
    if len(kept) > 1 and thickness and usual > 0 and thickness > usual * 1.05:
        warnings.append(LoadWarning(
            "overlapping-slices",
            f"slices are {thickness:g} mm thick but {usual:.3g} mm apart, so neighbours "
            f"overlap by {thickness - usual:.3g} mm (an overlapping reconstruction); all "
            f"slices are kept and the spacing is the {usual:.3g} mm between positions",
        ))
    return np.array(kept), tuple(dropped)


def _spacing_warnings(steps, step_med, tol, d_abs, slices, kept, warnings) -> None:
    """Report gaps of whole missing slices and any other irregularity."""
    ratio = steps / step_med
    whole = np.round(ratio)
    is_gap = (whole >= 2) & (np.abs(ratio - whole) < MISSING_REL)
    gaps = np.flatnonzero(is_gap)
    # Name each gap, up to a few: a series with many gaps gets one warning that
    # a user can read, not a screenful.
    shown = 3
    for g in gaps[:shown]:
        a, b = slices[kept[g]], slices[kept[g + 1]]
        warnings.append(LoadWarning(
            "missing-slice",
            f"{int(whole[g]) - 1} slice(s) missing between {a.label} and {b.label}: "
            f"a gap of {steps[g]:.2f} mm where the step is {step_med:.2f} mm "
            f"(at {d_abs[g]:.1f}–{d_abs[g + 1]:.1f} mm along the slice normal); "
            "the gap is filled by interpolation",
        ))
    if gaps.size > shown:
        rest = gaps[shown:]
        warnings.append(LoadWarning(
            "missing-slice",
            f"{int((whole[rest] - 1).sum())} more slice(s) missing in {rest.size} further gaps "
            f"(at {', '.join(f'{d_abs[g]:.1f}' for g in rest[:10])}"
            f"{' …' if rest.size > 10 else ''} mm along the slice normal); "
            "filled by interpolation",
        ))
    others = steps[~is_gap]
    if others.size and float(np.ptp(others)) > tol:
        warnings.append(LoadWarning(
            "irregular-spacing",
            f"the distance between slices varies from {float(np.min(steps)):.2f} to "
            f"{float(np.max(steps)):.2f} mm (median {step_med:.2f} mm)",
        ))


def _single_slice(s: SliceHeader, kept, dropped, r, c, n, si, sj, warnings) -> StackGeometry:
    """A one-slice volume: the spacing across it can only come from the thickness."""
    sk = s.slice_thickness_mm if s.slice_thickness_mm and s.slice_thickness_mm > 0 else 1.0
    source = "SliceThickness" if s.slice_thickness_mm and s.slice_thickness_mm > 0 else \
        "a default (SliceThickness is absent)"
    warnings.append(LoadWarning(
        "other",
        f"single slice ({s.label}): the spacing across slices, {sk:g} mm, is taken from "
        f"{source} because there is no second slice position",
    ))
    aff = _affine(r, c, n, si, sj, sk, np.asarray(s.position_lps, float))
    return StackGeometry(tuple(int(k) for k in kept), dropped, r, c, n, aff,
                         (s.pixel.columns, s.pixel.rows, 1), False, np.zeros((1, 3)),
                         np.zeros(0), 0.0, tuple(warnings))


@dataclass(frozen=True)
class TargetPlane:
    """How one k-plane of a resampled grid is made from the original slices.

    ``out[j, i] = (1 - weight) · S[lo](j - v, i - u) + weight · S[hi](j - v, i - u)``
    where ``S[m]`` is kept slice ``m`` (position in :attr:`StackGeometry.order`)
    sampled bilinearly at fractional pixel coordinates.
    """

    lo: int
    hi: int
    weight: float
    u_px: float
    v_px: float


def target_planes(geom: StackGeometry) -> list:
    """For each k of the target grid, which kept slices to blend and how to shift them.

    A target plane has constant distance along the normal, so it lies between
    two original slices (which are parallel to it) at a fixed fraction; the
    point of the original stack there is the linear interpolation of the two
    slice positions, so the whole plane needs one in-plane shift.
    """
    nk = geom.shape_ijk[2]
    w = geom.slice_ijk[:, 2]
    idx = np.arange(len(w), dtype=float)
    planes = []
    for k in range(nk):
        kappa = float(np.interp(k, w, idx))
        lo = min(int(math.floor(kappa + 1e-9)), len(w) - 1)
        frac = kappa - lo
        if frac < 1e-6:
            frac = 0.0
        hi = min(lo + 1, len(w) - 1)
        u = float(np.interp(kappa, idx, geom.slice_ijk[:, 0]))
        v = float(np.interp(kappa, idx, geom.slice_ijk[:, 1]))
        planes.append(TargetPlane(lo, hi, frac, u, v))
    return planes


def describe(geom: StackGeometry) -> dict:
    """A JSON-friendly summary for ``inspect`` (spacing in mm, tilt in degrees)."""
    return {
        "shape_ijk": list(geom.shape_ijk),
        "spacing_mm": [round(float(s), 4) for s in geom.spacing_mm],
        "orientation": [round(v, 5) for v in geom.orientation],
        "tilt_deg": round(geom.tilt_deg, 2),
        "resample": geom.resample,
        "dropped_slices": len(geom.dropped),
        "warnings": [w.as_dict() for w in geom.warnings],
    }


def min_step(geom: StackGeometry) -> Optional[float]:
    """Smallest distance between kept slices (mm), ``None`` for one slice."""
    return float(np.min(geom.steps_mm)) if geom.steps_mm.size else None
