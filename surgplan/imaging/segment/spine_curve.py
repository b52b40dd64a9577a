"""A smooth curve through the vertebral bodies, and the spine's own frame along it.

The canal track says where the spine is; the bodies lie in front of it.  Along
each axial slice we walk anteriorly from the canal centre and take the middle of
the first dense run (the body, 15–60 mm deep).  A Gaussian-weighted local line
fit over ≈ 1.5 vertebrae turns these noisy centres into a smooth curve, which is
then resampled at 1 mm of arc length with an orthonormal frame per point:
``t`` along the spine (superior), ``v`` posterior (towards the canal), ``u`` to
the patient's left.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy import ndimage as ndi

from surgplan.imaging.segment.canal import CanalTrack

#: Smoothed HU above which the walk from the canal counts bone of the body.
BODY_RUN_HU = 100.0


@dataclass(frozen=True)
class SpineCurve:
    """Points every ``step_mm`` of arc length through the vertebral body column.

    Attributes
    ----------
    points_lps : numpy.ndarray
        ``(n, 3)`` LPS mm, ordered from caudal to cranial.
    t, u, v : numpy.ndarray
        ``(n, 3)`` unit vectors: along the curve (cranial), to the left, posterior.
    canal_lps : numpy.ndarray
        ``(n, 3)`` LPS mm of the canal centre at the same heights.
    step_mm : float
        Arc length between consecutive points (mm).
    s0_mm : float
        Arc length of the first point (mm): 0 unless the curve is the upper part of
        a longer one (:meth:`from_s`), whose disc planes' ``s_mm`` it keeps.
    """

    points_lps: np.ndarray
    t: np.ndarray
    u: np.ndarray
    v: np.ndarray
    canal_lps: np.ndarray
    step_mm: float
    s0_mm: float = 0.0

    @property
    def length_mm(self) -> float:
        return self.step_mm * max(len(self.points_lps) - 1, 0)

    @property
    def s_mm(self) -> np.ndarray:
        """Arc length of each point (mm), in the frame of the disc planes."""
        return self.s0_mm + self.step_mm * np.arange(len(self.points_lps))

    def from_s(self, s_mm: float) -> "SpineCurve":
        """The part of the curve from arc length ``s_mm`` up (all of it if that is below
        its start; at least its last two points)."""
        k = int(np.clip(np.ceil((s_mm - self.s0_mm) / self.step_mm), 0, len(self.points_lps) - 2))
        return SpineCurve(self.points_lps[k:], self.t[k:], self.u[k:], self.v[k:],
                          self.canal_lps[k:], self.step_mm, self.s0_mm + k * self.step_mm)


def _smooth(z: np.ndarray, val: np.ndarray, zq: np.ndarray, sigma: float,
            w: Optional[np.ndarray] = None) -> np.ndarray:
    """Gaussian-weighted local linear regression of ``val(z)`` evaluated at ``zq``."""
    w0 = np.ones_like(val) if w is None else w
    out = np.empty(len(zq))
    for n, q in enumerate(zq):
        wt = w0 * np.exp(-0.5 * ((z - q) / sigma) ** 2)
        if wt.sum() < 1e-6:
            out[n] = np.nan
            continue
        A = np.stack([np.ones_like(z), z - q], 1) * np.sqrt(wt)[:, None]
        coef, *_ = np.linalg.lstsq(A, val * np.sqrt(wt), rcond=None)
        out[n] = coef[0]
    return out


def fit_spine_curve(
    hu_s: np.ndarray, canal: CanalTrack, origin_lps: np.ndarray, spacing_mm: float,
    step_mm: float = 1.0,
) -> Optional[SpineCurve]:
    """Fit the body-centre curve from the canal track on an LPS-aligned scout grid.

    Parameters
    ----------
    hu_s : numpy.ndarray
        Smoothed CT (HU), ``(z, y, x)``, +y posterior.
    canal : CanalTrack
        Canal centres per slice on the same grid.
    origin_lps, spacing_mm :
        The grid's LPS origin (mm) and voxel edge (mm).

    Returns
    -------
    SpineCurve or None
        None when fewer than 4 slices show both canal and body.
    """
    if len(canal.z) < 4:
        return None
    z_all = np.arange(canal.z.min(), canal.z.max() + 1)
    cy = np.interp(z_all, canal.z, canal.yx[:, 0])
    cx = np.interp(z_all, canal.z, canal.yx[:, 1])
    ny, nx = hu_s.shape[1:]
    half = max(1, int(round(6.0 / spacing_mm)))
    reach = int(round(80.0 / spacing_mm))
    bz, by, bw = [], [], []
    for z, y0, x0 in zip(z_all, cy, cx):
        xi, yi = int(round(x0)), int(round(y0))
        if not (half <= xi < nx - half):
            continue
        ys = np.arange(yi, max(yi - reach, 0), -1)
        if len(ys) < 5:
            continue
        prof = hu_s[z, ys, xi - half: xi + half + 1].mean(axis=1)
        dense = ndi.binary_closing(prof >= BODY_RUN_HU, iterations=1)
        first = np.argmax(dense) if dense.any() else -1
        if first < 0 or first * spacing_mm > 20.0:
            continue
        run_end = first
        while run_end + 1 < len(dense) and dense[run_end + 1]:
            run_end += 1
        depth = (run_end - first + 1) * spacing_mm
        if 15.0 <= depth <= 60.0:
            bz.append(z)
            by.append(ys[first] - (run_end - first) / 2.0)
            bw.append(1.0)
    if len(bz) < 4:
        return None
    bz, by = np.array(bz, float), np.array(by, float)
    sigma = 20.0 / spacing_mm
    # Robust: one pass, drop centres > 6 mm from the fit, refit.
    fy = _smooth(bz, by, bz, sigma)
    good = np.abs(fy - by) * spacing_mm < 6.0
    if good.sum() >= 4:
        bz, by = bz[good], by[good]
    zq = np.arange(max(bz.min(), z_all.min()), min(bz.max(), z_all.max()) + 1e-6, 0.5)
    y_body = _smooth(bz, by, zq, sigma)
    x_can = _smooth(canal.z.astype(float), canal.yx[:, 1], zq, sigma, canal.area_mm2)
    y_can = _smooth(canal.z.astype(float), canal.yx[:, 0], zq, sigma, canal.area_mm2)
    pts = origin_lps + np.stack([x_can, y_body, zq], 1) * spacing_mm
    can = origin_lps + np.stack([x_can, y_can, zq], 1) * spacing_mm
    # The body walk fails in the sacrum (tilted ~40°) and the canal may stop at
    # L5: extend both ends along their tangents so that the last disc and the
    # next body are still on the curve.  The scout box bounds the extension.
    hi = origin_lps + (np.array(hu_s.shape[::-1]) - 1) * spacing_mm
    return curve_from_polylines(pts, can, origin_lps, hi, step_mm)


def curve_from_polylines(pts: np.ndarray, can: np.ndarray, lo_lps: np.ndarray,
                         hi_lps: np.ndarray, step_mm: float, *, caudal_mm: float = 45.0,
                         cranial_mm: float = 25.0) -> Optional[SpineCurve]:
    """A SpineCurve from body-centre and canal polylines (caudal → cranial, LPS mm).

    Both ends are prolonged along their tangents (``caudal_mm``, ``cranial_mm``),
    clipped to the box ``lo_lps``–``hi_lps``, resampled every ``step_mm`` of arc
    length, and given a frame: ``t`` along the curve, ``v`` the posterior (+y)
    direction made orthogonal to ``t``, ``u = v × t``.  CT and MR build their
    curves the same way from here on.  None when fewer than 4 points stay inside.
    """
    pts, can = _extend_pair(pts, can, caudal_mm=caudal_mm, cranial_mm=cranial_mm)
    inside = np.all((pts >= lo_lps) & (pts <= hi_lps), axis=1)
    pts, can = pts[inside], can[inside]
    if len(pts) < 4:
        return None
    # resample by arc length
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    sq = np.arange(0.0, s[-1] + 1e-9, step_mm)
    P = np.stack([np.interp(sq, s, pts[:, d]) for d in range(3)], 1)
    C = np.stack([np.interp(sq, s, can[:, d]) for d in range(3)], 1)
    t = np.gradient(P, axis=0)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    ey = np.array([0.0, 1.0, 0.0])
    v = ey - (t @ ey)[:, None] * t
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    u = np.cross(v, t)
    return SpineCurve(P, t, u, v, C, step_mm)


def _extend_pair(pts: np.ndarray, can: np.ndarray, caudal_mm: float, cranial_mm: float):
    """Prolong two parallel polylines (ordered caudal→cranial) along their end tangents."""
    def tangent(a, b):
        d = b - a
        return d / max(np.linalg.norm(d), 1e-9)
    k = min(len(pts) - 1, 40)  # tangent over the last ≈ 20 mm (0.5-slice steps)
    t0 = tangent(pts[k], pts[0])
    t1 = tangent(pts[-1 - k], pts[-1])
    steps0 = np.arange(caudal_mm, 0.0, -1.0)[:, None]
    steps1 = np.arange(1.0, cranial_mm + 1e-9, 1.0)[:, None]
    P = np.concatenate([pts[0] + steps0 * t0, pts, pts[-1] + steps1 * t1])
    C = np.concatenate([can[0] + steps0 * t0, can, can[-1] + steps1 * t1])
    return P, C
