"""The spine's frame slice by slice on a working grid, for the structures around it.

The spine curve crosses every axial slice of the lumbar region once (lordosis is far
from horizontal), so each slice of an LPS-aligned working grid gets an in-plane
frame: the curve point in that slice, the curve's left axis ``u`` and posterior axis
``v`` projected into the slice, the canal's offset along ``v``, the vertebra (segment)
the slice cuts, and the half-width and front of the vertebral body or disc measured
in the slice.  Psoas, vessels and kidneys are then looked for at offsets from the
body that anatomy gives in millimetres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from surgplan.imaging.segment.grid import WorkGrid
from surgplan.imaging.segment.spine_curve import SpineCurve


@dataclass(frozen=True)
class SliceFrames:
    """Per-slice spine frame on a working grid (arrays of length ``nz``).

    Attributes
    ----------
    z_mm : numpy.ndarray
        LPS z of each slice (mm).
    centre_xy : numpy.ndarray
        ``(nz, 2)`` LPS x, y of the curve (centre of the body column) in the slice (mm).
    u_xy, v_xy : numpy.ndarray
        ``(nz, 2)`` in-slice unit vectors to the patient's left and posterior.
    canal_v_mm : numpy.ndarray
        Offset of the canal centre from the curve along ``v`` (mm, > 0).
    segment : numpy.ndarray of int
        1-based segment index (caudal → cranial) the slice cuts at the curve, 0 outside.
    half_width_mm, front_mm : numpy.ndarray
        Half-width of the body/disc along ``u`` and its anterior surface along ``v``
        (negative, mm) in the slice, interpolated where the slice holds neither.
    on_curve : numpy.ndarray of bool
        The slice lies within the curve's z range.
    """

    z_mm: np.ndarray
    centre_xy: np.ndarray
    u_xy: np.ndarray
    v_xy: np.ndarray
    canal_v_mm: np.ndarray
    segment: np.ndarray
    half_width_mm: np.ndarray
    front_mm: np.ndarray
    on_curve: np.ndarray

    def in_slice(self, grid: WorkGrid, k: int) -> tuple:
        """``(a_u, a_v)`` in-slice offsets (mm) of every voxel of slice ``k`` from the curve."""
        ny, nx = grid.shape[1], grid.shape[2]
        x = grid.origin_lps[0] + grid.spacing_mm * np.arange(nx, dtype=np.float32)
        y = grid.origin_lps[1] + grid.spacing_mm * np.arange(ny, dtype=np.float32)
        dx = x[None, :] - np.float32(self.centre_xy[k, 0])
        dy = y[:, None] - np.float32(self.centre_xy[k, 1])
        a_u = dx * np.float32(self.u_xy[k, 0]) + dy * np.float32(self.u_xy[k, 1])
        a_v = dx * np.float32(self.v_xy[k, 0]) + dy * np.float32(self.v_xy[k, 1])
        return a_u, a_v

    def offsets(self, grid: WorkGrid) -> tuple:
        """``(a_u, a_v)`` for the whole grid, float32 arrays of the grid's shape (mm)."""
        au = np.empty(grid.shape, np.float32)
        av = np.empty(grid.shape, np.float32)
        for k in range(grid.shape[0]):
            au[k], av[k] = self.in_slice(grid, k)
        return au, av

    def point(self, k: int, a_u: float, a_v: float) -> np.ndarray:
        """LPS mm of the point at in-slice offsets (a_u, a_v) in slice ``k``."""
        xy = self.centre_xy[k] + a_u * self.u_xy[k] + a_v * self.v_xy[k]
        return np.array([xy[0], xy[1], self.z_mm[k]])


def _fill_nan(a: np.ndarray) -> np.ndarray:
    ok = np.isfinite(a)
    if not ok.any():
        return a
    idx = np.arange(len(a))
    return np.interp(idx, idx[ok], a[ok])


def _smooth(a: np.ndarray, default: float) -> np.ndarray:
    if not np.isfinite(a).any():
        return np.full(len(a), default)
    return ndi.median_filter(_fill_nan(a), size=5, mode="nearest")


def slice_frames(grid: WorkGrid, curve: SpineCurve, segs: list, column: np.ndarray) -> SliceFrames:
    """The spine frame of every axial slice of ``grid``.

    Parameters
    ----------
    grid : WorkGrid
        The working grid.
    curve : SpineCurve
        Through the vertebral bodies, caudal → cranial.
    segs : list of Segment
        Vertebra spans along the curve, caudal → cranial.
    column : numpy.ndarray of bool
        Vertebrae and discs on ``grid``: the body column whose width and front are measured.
    """
    nz = grid.shape[0]
    z = grid.origin_lps[2] + grid.spacing_mm * np.arange(nz)
    pts = curve.points_lps
    order = np.argsort(pts[:, 2], kind="stable")
    pz = pts[order, 2]
    cx = np.interp(z, pz, pts[order, 0])
    cy = np.interp(z, pz, pts[order, 1])
    ux = np.interp(z, pz, curve.u[order, 0])
    uy = np.interp(z, pz, curve.u[order, 1])
    norm = np.hypot(ux, uy)
    norm[norm < 1e-6] = 1.0
    ux, uy = ux / norm, uy / norm
    vx, vy = -uy, ux  # u rotated by +90° in the slice: posterior when u is left
    canal_xy = np.stack([np.interp(z, pz, curve.canal_lps[order, i]) for i in range(2)], 1)
    canal_v = (canal_xy[:, 0] - cx) * vx + (canal_xy[:, 1] - cy) * vy
    on = (z >= pz[0] - 1e-6) & (z <= pz[-1] + 1e-6)
    # arc length at each slice, then the segment whose span holds it
    s_curve = curve.s_mm
    s_at = np.interp(z, pz, s_curve[order])
    seg_of = np.zeros(nz, int)
    for n, sg in enumerate(segs, start=1):
        c_s = float(s_curve[int(np.argmin(np.linalg.norm(pts - sg.centre_lps, axis=1)))])
        s0 = sg.lower.s_mm if sg.lower is not None else c_s - 15.0
        s1 = sg.upper.s_mm if sg.upper is not None else c_s + 15.0
        seg_of[on & (s_at >= s0) & (s_at < s1)] = n
    frames = SliceFrames(z, np.stack([cx, cy], 1), np.stack([ux, uy], 1), np.stack([vx, vy], 1),
                         canal_v, seg_of, np.full(nz, np.nan), np.full(nz, np.nan), on)
    hw = np.full(nz, np.nan)
    front = np.full(nz, np.nan)
    for k in np.nonzero(on)[0]:
        m = column[k]
        if not m.any():
            continue
        a_u, a_v = frames.in_slice(grid, k)
        sel = m & (np.hypot(a_u, a_v) < 35.0) & (a_v < canal_v[k] - 5.0)
        if np.count_nonzero(sel) < 10:
            continue
        hw[k] = float(np.percentile(np.abs(a_u[sel]), 98))
        front[k] = float(np.percentile(a_v[sel], 2))
    # where no body was measured at all: an average lumbar body (40 mm wide, 34 mm deep)
    hw = _smooth(hw, 20.0)
    front = _smooth(front, -17.0)
    return SliceFrames(z, frames.centre_xy, frames.u_xy, frames.v_xy, canal_v, seg_of, hw, front, on)
