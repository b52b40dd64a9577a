"""Analytic shapes for the synthetic spine phantom.

Every shape is an approximate signed distance in millimetres (negative inside)
evaluated on a small block of the grid: the block is the shape's bounding box,
so a vertebra costs a few hundred thousand evaluations, not the whole volume.
The fields are not exact Euclidean distances (superellipses and tubes with
elliptic sections are scaled by their smallest radius), which is all a phantom
needs: a sharp boundary where the value crosses zero and a smooth-min that
blends neighbouring parts without creases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np


@dataclass(frozen=True)
class Grid:
    """An axis-aligned voxel grid in LPS mm (array order ``[k, j, i]``).

    Parameters
    ----------
    origin_lps : numpy.ndarray
        Centre of voxel (0, 0, 0) in LPS mm.
    spacing_mm : numpy.ndarray
        Voxel size along x (i), y (j), z (k) in mm.
    shape_kji : tuple of int
        Array shape ``(nk, nj, ni)``.
    """

    origin_lps: np.ndarray
    spacing_mm: np.ndarray
    shape_kji: tuple

    @property
    def affine(self) -> np.ndarray:
        """Index ``(i, j, k, 1)`` → LPS mm (identity direction)."""
        aff = np.eye(4)
        aff[:3, :3] = np.diag(self.spacing_mm)
        aff[:3, 3] = self.origin_lps
        return aff

    def block(self, lo_lps: Sequence[float], hi_lps: Sequence[float], within=None):
        """The part of the grid inside an LPS box.

        Returns
        -------
        (slices, X, Y, Z) or None
            ``slices`` index the ``[k, j, i]`` array; ``X``, ``Y``, ``Z`` are
            float32 LPS coordinates shaped to broadcast over the block
            (``(1, 1, ni)``, ``(1, nj, 1)``, ``(nk, 1, 1)``).  ``None`` when the
            box misses the grid.
        """
        lo = (np.asarray(lo_lps, float) - self.origin_lps) / self.spacing_mm
        hi = (np.asarray(hi_lps, float) - self.origin_lps) / self.spacing_mm
        n = np.array(self.shape_kji[::-1])  # ni, nj, nk
        a = np.clip(np.floor(lo).astype(int), 0, n)
        b = np.clip(np.ceil(hi).astype(int) + 1, 0, n)
        if within is not None:
            # clip to a parent block given as [k, j, i] slices
            a = np.maximum(a, [within[2].start, within[1].start, within[0].start])
            b = np.minimum(b, [within[2].stop, within[1].stop, within[0].stop])
        if np.any(b <= a):
            return None
        sl = (slice(a[2], b[2]), slice(a[1], b[1]), slice(a[0], b[0]))
        ax = [
            (self.origin_lps[d] + self.spacing_mm[d] * np.arange(a[d], b[d])).astype(np.float32)
            for d in range(3)
        ]
        X = ax[0][None, None, :]
        Y = ax[1][None, :, None]
        Z = ax[2][:, None, None]
        return sl, X, Y, Z


@dataclass(frozen=True)
class Frame:
    """A local orthonormal frame: origin and axes (rows: lr, ap, si) in LPS.

    ``u`` runs to the patient's left, ``v`` posterior, ``w`` superior, as the
    global LPS axes do for an untilted vertebra.
    """

    origin: np.ndarray
    axes: np.ndarray  # 3×3, rows are the unit lr, ap, si axes in LPS

    def to_local(self, X, Y, Z):
        """LPS coordinates (broadcastable arrays) → local ``(u, v, w)`` in mm."""
        dx, dy, dz = X - self.origin[0], Y - self.origin[1], Z - self.origin[2]
        r = self.axes.astype(np.float32)
        return tuple(r[a, 0] * dx + r[a, 1] * dy + r[a, 2] * dz for a in range(3))

    def to_lps(self, uvw) -> np.ndarray:
        """Local point(s) ``(..., 3)`` → LPS mm."""
        return np.asarray(self.origin, float) + np.asarray(uvw, float) @ self.axes

    def vec_to_lps(self, d) -> np.ndarray:
        """Local direction(s) → LPS direction(s)."""
        return np.asarray(d, float) @ self.axes

    def point_to_local(self, p) -> np.ndarray:
        return (np.asarray(p, float) - self.origin) @ self.axes.T

    def vec_to_local(self, d) -> np.ndarray:
        return np.asarray(d, float) @ self.axes.T


def sagittal_frame(origin, tilt_deg: float) -> Frame:
    """Frame rotated about the LR axis by ``tilt_deg``.

    Positive tilt turns the superior axis anteriorly (the superior endplate of
    a vertebra with positive tilt faces forward, as S1 does).
    """
    t = np.radians(tilt_deg)
    axes = np.array(
        [[1.0, 0.0, 0.0], [0.0, np.cos(t), np.sin(t)], [0.0, -np.sin(t), np.cos(t)]]
    )
    return Frame(np.asarray(origin, float), axes)


def superellipse(u, v, a, b, p: float = 2.0):
    """Approximate distance (mm) to a superellipse of half-axes ``a``, ``b``."""
    r = (np.abs(u / a) ** p + np.abs(v / b) ** p) ** (1.0 / p)
    return (r - 1.0) * np.minimum(a, b)


def superellipsoid(u, v, w, a, b, c, p: float = 2.0):
    """Approximate distance (mm) to a superellipsoid of half-axes a, b, c."""
    r = (np.abs(u / a) ** p + np.abs(v / b) ** p + np.abs(w / c) ** p) ** (1.0 / p)
    return (r - 1.0) * min(float(np.min(a)), float(np.min(b)), float(np.min(c)))


def smin(a, b, k: float):
    """Polynomial smooth minimum: a union that fillets the seam over ``k`` mm."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1 - h) + a * h - k * h * (1 - h)


def tube(
    X,
    Y,
    Z,
    points: np.ndarray,
    radii: np.ndarray,
    lateral_hint: Sequence[float] = (1.0, 0.0, 0.0),
    p: float = 2.0,
):
    """Distance (mm, approximate) to a tube along a polyline.

    Parameters
    ----------
    X, Y, Z : arrays
        LPS coordinates (broadcastable).
    points : (n, 3) array
        Centre line in LPS mm.
    radii : (n,) or (n, 2) array
        Radius at each point, or (lateral, other) half-axes of an elliptic or
        superelliptic section; interpolated linearly along each segment.
    lateral_hint : 3-vector
        Direction that the first half-axis follows (projected perpendicular to
        each segment), so that e.g. the psoas is wider left-right.
    p : float
        Section exponent (2 ellipse, larger → squarer).

    Returns
    -------
    (distance, s) : arrays
        Approximate signed distance in mm and the arc length (mm) of the nearest
        centre-line point, useful for painting along the tube.
    """
    pts = np.asarray(points, float)
    rad = np.asarray(radii, float)
    if rad.ndim == 1:
        rad = np.stack([rad, rad], axis=1)
    hint = np.asarray(lateral_hint, float)
    best = None
    best_s = None
    s0 = 0.0
    for a, b, ra, rb in zip(pts[:-1], pts[1:], rad[:-1], rad[1:]):
        seg = b - a
        length = float(np.linalg.norm(seg))
        if length < 1e-9:
            continue
        T = seg / length
        L = hint - np.dot(hint, T) * T
        if np.linalg.norm(L) < 1e-6:
            L = np.cross(T, [0.0, 0.0, 1.0]) if abs(T[2]) < 0.9 else np.cross(T, [0.0, 1.0, 0.0])
        L = L / np.linalg.norm(L)
        N = np.cross(T, L)
        dx, dy, dz = X - a[0], Y - a[1], Z - a[2]
        t = np.clip((dx * T[0] + dy * T[1] + dz * T[2]) / length, 0.0, 1.0)
        ex = dx - t * seg[0]
        ey = dy - t * seg[1]
        ez = dz - t * seg[2]
        r1 = ra[0] + t * (rb[0] - ra[0])
        r2 = ra[1] + t * (rb[1] - ra[1])
        rm = np.minimum(r1, r2)
        cl = (ex * L[0] + ey * L[1] + ez * L[2]) / r1
        cn = (ex * N[0] + ey * N[1] + ez * N[2]) / r2
        # beyond an end the offset also has a component along the axis: a rounded cap
        ct = (ex * T[0] + ey * T[1] + ez * T[2]) / rm
        d = ((np.abs(cl) ** p + np.abs(cn) ** p + np.abs(ct) ** p) ** (1.0 / p) - 1.0) * rm
        s = s0 + t * length
        if best is None:
            best, best_s = d, s
        else:
            closer = d < best
            best = np.where(closer, d, best)
            best_s = np.where(closer, s, best_s)
        s0 += length
    return best, best_s


def relative(sl, parent):
    """Slices ``sl`` (global) expressed inside the parent block ``parent``."""
    return tuple(slice(a.start - p.start, a.stop - p.start) for a, p in zip(sl, parent))


def polyline_bounds(points: np.ndarray, radius: float):
    """LPS box around a polyline widened by ``radius`` mm."""
    pts = np.asarray(points, float)
    return pts.min(axis=0) - radius, pts.max(axis=0) + radius


def resample_polyline(points: np.ndarray, step_mm: float) -> np.ndarray:
    """Catmull-Rom smoothing of a polyline, sampled about every ``step_mm``."""
    p = np.asarray(points, float)
    if len(p) < 3:
        return p
    ext = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    out = []
    for i in range(1, len(ext) - 2):
        p0, p1, p2, p3 = ext[i - 1], ext[i], ext[i + 1], ext[i + 2]
        n = max(2, int(np.ceil(np.linalg.norm(p2 - p1) / step_mm)))
        for t in np.linspace(0, 1, n, endpoint=False):
            t2, t3 = t * t, t * t * t
            out.append(
                0.5
                * (
                    2 * p1
                    + (-p0 + p2) * t
                    + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2
                    + (-p0 + 3 * p1 - 3 * p2 + p3) * t3
                )
            )
    out.append(p[-1])
    return np.array(out)


def frame_bounds(frame: Frame, lo_uvw, hi_uvw):
    """LPS box enclosing a local box of a frame."""
    lo = np.asarray(lo_uvw, float)
    hi = np.asarray(hi_uvw, float)
    corners = np.array(
        [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    pts = frame.to_lps(corners)
    return pts.min(axis=0), pts.max(axis=0)


def paint(
    target: np.ndarray,
    sl,
    mask: np.ndarray,
    value: int,
    protect: Optional[np.ndarray] = None,
) -> None:
    """Write ``value`` into ``target[sl]`` where ``mask`` (and not ``protect``)."""
    sub = target[sl]
    m = mask if protect is None else (mask & ~protect)
    sub[m] = value


def tube_on_grid(
    grid: Grid,
    points: np.ndarray,
    radii: np.ndarray,
    lateral_hint: Sequence[float] = (1.0, 0.0, 0.0),
    p: float = 2.0,
):
    """:func:`tube` evaluated on a grid, each segment only inside its own box.

    A long, curved tube has a large bounding box that it mostly does not
    fill; evaluating every segment everywhere in that box would cost
    segments × box voxels.  Here each segment touches only its own box.

    Returns
    -------
    (slices, distance, s) or None
        The block of the whole tube, the distance (mm; +1e6 where no segment
        reached) and the arc length of the nearest centre-line point.
    """
    pts = np.asarray(points, float)
    rad = np.asarray(radii, float)
    if rad.ndim == 1:
        rad = np.stack([rad, rad], axis=1)
    rmax = float(rad.max()) + 1.0
    outer = grid.block(*polyline_bounds(pts, rmax))
    if outer is None:
        return None
    sl = outer[0]
    shape = tuple(s.stop - s.start for s in sl)
    dist = np.full(shape, 1e6, np.float32)
    arc = np.zeros(shape, np.float32)
    s0 = 0.0
    for a in range(len(pts) - 1):
        seg = pts[a : a + 2]
        length = float(np.linalg.norm(seg[1] - seg[0]))
        r = float(rad[a : a + 2].max()) + 1.0
        blk = grid.block(*polyline_bounds(seg, r), within=sl)
        if blk is not None and length > 1e-9:
            ssl, X, Y, Z = blk
            d, s = tube(X, Y, Z, seg, rad[a : a + 2], lateral_hint, p)
            rel = relative(ssl, sl)
            cur = dist[rel]
            closer = d < cur
            cur[closer] = d[closer]
            arc[rel][closer] = (s + s0)[closer] if np.ndim(s) else s + s0
        s0 += length
    return sl, dist, arc
