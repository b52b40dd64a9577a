"""Vertebral sub-regions (body, pedicles, articular processes, lamina …) by geometry.

Each segmented vertebra is measured in its own frame (``u`` to the left, ``v``
posterior through the canal, ``w`` superior, perpendicular to the endplates;
APPROACHES.md §5), by probing its label mask along a few rays:

* the posterior wall of the body and the anterior wall of the laminar arch
  along the midline: the canal is the widest gap in the bone there (narrower
  ones are dark patches inside the body, such as the basivertebral channel);
* the medial wall of each pedicle, ray outward from the canal centre: the
  canal half-width on that side;
* the pedicle's superior–inferior extent on a line just lateral to that wall,
  at the depth of its isthmus: the bone run in the upper half of the vertebra,
  held below the superior endplate (the lateral recess is above it) and to half
  the measured body height plus its flare (below it is the foramen): on 3 mm
  voxels the superior articular process and the articular bone behind merge
  with it into one run 25–30 mm long;
* the pedicle's lateral wall in front of the transverse process, checked
  against the level's pedicle width (a rib head or a merged transverse process
  reads wider);
* the inferior endplate at the back of the body, in the midline: the disc
  mid-plane found on the spine curve lies millimetres off it behind a wedge
  disc (L5–S1), and the inferior articular processes hang from the lamina to
  ≈ 6–7 mm above it.

S1's frame is taken from the plane of its own superior endplate, because the
L5–S1 disc is a wedge and no disc lies below S1.

Every voxel of the vertebra is then assigned by where it lies relative to those
measures: in front of the canal the body; lateral to the canal the pedicle
within its band, the superior articular process above it, the inferior
articular process below and behind it (below the pars interarticularis, which
goes with the lamina), the transverse process beyond the pedicle's lateral
wall; behind the canal the lamina, and in the midline beyond it the spinous
process.  S1 has no transverse or inferior articular processes;
the bone lateral to its body is the sacral ala, and below its body the rest of
the sacrum.  Where a ray finds nothing (an open arch, a cut field), the measure
falls back on the lumbar mean of ANATOMY.md and the vertebra is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
from scipy import ndimage as ndi

from surgplan.imaging.anatomy import VertebraFrame
from surgplan.imaging.segment.grid import WorkGrid
from surgplan.imaging.structures import PART_CODES, SIDES

SIDE_SIGN = {"left": 1.0, "right": -1.0}

# Fallbacks (mm), lumbar means of ANATOMY.md, used only where a ray finds no wall.
_FALLBACK_BODY_BACK_MM = 16.0      # half the body depth (30–36 mm)
_FALLBACK_CANAL_AP_MM = 16.0       # canal AP 15–18 mm
_FALLBACK_CANAL_HALF_MM = 12.0     # interpedicular distance 21–27 mm
_FALLBACK_PEDICLE_WIDTH_MM = 11.0  # isthmus 8–16 mm
_FALLBACK_PEDICLE_HEIGHT_MM = 14.0
#: Pedicle isthmus width by level (mm): L1 ≈ 8 → L5 ≈ 16 (Torun 2008; Cook & Baker 2021),
#: thoracolumbar a little narrower, S1 ≈ 18 (ANATOMY.md, phantom table).
_PEDICLE_WIDTH_MM = {"T10": 7.0, "T11": 7.0, "T12": 7.5, "L1": 8.0, "L2": 9.0, "L3": 10.5,
                     "L4": 12.5, "L5": 16.0, "L6": 16.0, "S1": 18.0}
#: Pedicle band height (mm): this fraction of the body height (13-15 mm pedicles on
#: 26-30 mm bodies, ANATOMY.md) plus the flare where it meets the body and arch,
#: within these bounds.
_PEDICLE_HEIGHT_PER_BODY = 0.5
_PEDICLE_FLARE_MM = 3.0
_MIN_PEDICLE_HEIGHT_MM = 12.0
_MAX_PEDICLE_HEIGHT_MM = 18.0
#: The pedicle's top lies this far below the superior endplate (mm): the lateral recess
#: (superior vertebral notch) above it is shallow.
_PEDICLE_BELOW_ENDPLATE_MM = 1.0
#: ... and its flare into the body's corner reaches this far past the endplate as
#: measured (the disc's height, halved, is read to a millimetre or two) (mm).
_PEDICLE_TOP_FLARE_MM = 3.0
#: A pedicle whose bone run ends lower than that (a frame tilted a few degrees over the
#: 20 mm back to the pedicle, a thin cortex lost to partial volume) still ends no lower
#: than this below the band it would have from the endplate (mm): below is the foramen.
_PEDICLE_TOP_SLACK_MM = 2.0
#: Spinous process: the midline bone this far behind the canal's posterior wall
#: (the lamina is ≈ 6 mm thick, Wang 2024) and within this half-width (mm).
_SPINOUS_BEHIND_MM = 7.0
_SPINOUS_HALF_MM = 5.0
#: An inferior articular process lies this far lateral to the canal wall (mm); medial
#: to it, below the pedicle and behind the canal, is the lamina.  In front of the
#: laminar arch's front wall (the plane of the facet joints) it starts nearer the
#: wall: the IAP's medial face lines the back of the lateral recess.
_IAP_LATERAL_MM = 4.0
_IAP_LATERAL_FRONT_MM = 1.0
#: The inferior facet (12–18 mm high, Panjabi) hangs from the lamina down past the
#: disc: its top lies ≈ 6 mm above its vertebra's inferior endplate (7 mm allows for
#: a frame a few degrees off the endplate over the ≈ 20 mm back to the facets).
#: Between it and the pedicle the bone is the pars interarticularis, counted with the
#: lamina.
_IAP_TOP_ABOVE_ENDPLATE_MM = 7.0
#: The transverse process's top is read this far beyond the pedicle's lateral wall (mm),
#: the lowest run kept: nearer in, a near-sagittal SAP (L1-L3) reaching past the pedicle
#: reads as the process; the shortest process (L1 ≈ 10 mm, Li 2003) is met by the first.
_TP_PROBE_BEYOND_PEDICLE_MM = (7.0, 9.0, 11.0)
#: ... and is held at least this far above the pedicle's mid-height (mm), half the
#: thinnest process's height.
_TP_HALF_HEIGHT_MIN_MM = 4.0
#: Disc height assumed (mm) where the disc below was not measured.
_FALLBACK_DISC_MM = 10.0
#: S1 body height (mm): L5 ≈ 28, S1 as the phantom's and ANATOMY.md's adult.
_SACRAL_BODY_HEIGHT_MM = 28.0
#: Margin (mm) around a vertebra's label searched for its walls in the bone.
_PROBE_PAD_MM = 40.0
#: How far (mm) the pedicle reaches into the posterolateral corner of the body.
_PEDICLE_INTO_BODY_MM = 4.5


@dataclass(frozen=True)
class ArchGeometry:
    """One vertebra measured in its local frame (mm along ``frame``'s axes).

    Attributes
    ----------
    name : str
        The vertebra's shared name.
    frame : VertebraFrame
        Origin on the spine curve at the vertebra's middle; ``si`` from the
        endplates, ``ap`` posterior, ``lr`` to the left.
    w_lower_mm, w_upper_mm : float
        Inferior / superior endplate (disc mid-plane) along ``si``; NaN when that
        disc was not found.
    body_back_mm : float
        Posterior wall of the body along ``ap`` (the canal's anterior wall).
    canal_back_mm : float
        Anterior wall of the laminar arch along ``ap`` (the canal's posterior wall).
    canal_half_mm : dict
        ``side → |lr|`` of the pedicle's medial wall.
    pedicle_band_mm : dict
        ``side → (bottom, top)`` along ``si`` of the pedicle.
    pedicle_outer_mm : dict
        ``side → |lr|`` of the pedicle's lateral wall.
    body_half_width_mm : float
        Half-width of the body along ``lr``.
    measured : tuple of str
        What the rays found; the rest are fallbacks.
    disc_below_mm : float
        Height of the disc below (mm), NaN when unknown.
    endplate_back_mm : float
        The inferior endplate along ``si`` at the back of the body (mm), where the
        articular processes hang; NaN when not found.
    tp_top_mm : dict
        ``side → w`` of the transverse process's upper edge (mm); above it, lateral
        to the pedicle, is the superior articular process.  Missing: the band's top.
    """

    @property
    def lower_endplate_below_mm(self) -> float:
        """The next vertebra's superior endplate along ``si`` (mm), NaN when unknown."""
        return self.w_lower_mm - 0.5 * self.disc_below_mm

    name: str
    frame: VertebraFrame
    w_lower_mm: float
    w_upper_mm: float
    body_back_mm: float
    canal_back_mm: float
    canal_half_mm: Dict[str, float]
    pedicle_band_mm: Dict[str, Tuple[float, float]]
    pedicle_outer_mm: Dict[str, float]
    body_half_width_mm: float
    measured: tuple = ()
    disc_below_mm: float = float("nan")
    endplate_back_mm: float = float("nan")
    tp_top_mm: Dict[str, float] = field(default_factory=dict)

    @property
    def canal_ap_mm(self) -> float:
        return self.canal_back_mm - self.body_back_mm

    def to_lps(self, uvw) -> np.ndarray:
        """Local (u, v, w) mm → LPS mm; ``uvw`` of shape ``(..., 3)``."""
        f = self.frame
        uvw = np.asarray(uvw, float)
        return (f.origin_lps + uvw[..., :1] * f.lr + uvw[..., 1:2] * f.ap
                + uvw[..., 2:3] * f.si)


def segment_frame(sg) -> VertebraFrame:
    """Local frame of a vertebra segment: ``si`` from its disc planes, ``ap`` posterior."""
    normals = [p.normal for p in (sg.lower, sg.upper) if p is not None]
    si = np.mean(normals, axis=0) if normals else np.asarray(sg.t, float)
    si = si / np.linalg.norm(si)
    ap = sg.v - (sg.v @ si) * si
    ap = ap / np.linalg.norm(ap)
    return VertebraFrame(np.asarray(sg.centre_lps, float).copy(), si, ap, np.cross(ap, si))


class _Probe:
    """Nearest-voxel look-up of one vertebra's mask at local (u, v, w) points."""

    def __init__(self, mask: np.ndarray, grid: WorkGrid, frame: VertebraFrame):
        self.mask = mask.astype(np.uint8)
        self.grid = grid
        self.frame = frame

    def __call__(self, u, v, w) -> np.ndarray:
        u, v, w = np.broadcast_arrays(*(np.asarray(x, float) for x in (u, v, w)))
        f = self.frame
        p = (f.origin_lps + u[..., None] * f.lr + v[..., None] * f.ap + w[..., None] * f.si)
        idx = self.grid.lps_to_index(p.reshape(-1, 3)).T
        vals = ndi.map_coordinates(self.mask, idx, order=0, mode="constant", cval=0)
        return vals.reshape(u.shape) > 0


def _runs(hit: np.ndarray) -> List[Tuple[int, int]]:
    """Index ranges [a, b) of consecutive True values."""
    d = np.diff(np.concatenate([[0], hit.astype(np.int8), [0]]))
    return list(zip(np.nonzero(d == 1)[0], np.nonzero(d == -1)[0]))


STEP_MM = 0.5


@dataclass(frozen=True)
class VertebraSpan:
    """What is known of a vertebra before its parts: name, frame and endplates.

    ``lower_lps`` / ``upper_lps`` are points on its inferior / superior endplate
    (or the disc mid-plane beyond it), None when not found; ``disc_below_mm``
    the height of the disc below (NaN when unknown).
    """

    name: str
    frame: VertebraFrame
    lower_lps: Optional[np.ndarray]
    upper_lps: Optional[np.ndarray]
    disc_below_mm: float = float("nan")
    disc_above_mm: float = float("nan")
    #: True when ``upper_lps`` lies on the superior endplate itself (S1's own plane,
    #: :func:`sacral_span`) rather than on the disc's mid-plane above it.
    upper_on_endplate: bool = False


def spans_from_segments(segs: list, names: Dict[int, str]) -> Dict[int, VertebraSpan]:
    """``segment index → VertebraSpan`` of the named segments of the pipeline."""
    out = {}
    for n, name in names.items():
        sg = segs[n - 1]
        out[n] = VertebraSpan(name, segment_frame(sg),
                              None if sg.lower is None else sg.lower.point_lps,
                              None if sg.upper is None else sg.upper.point_lps,
                              float(getattr(sg.lower, "thickness_mm", float("nan"))),
                              float(getattr(sg.upper, "thickness_mm", float("nan"))))
    return out


def sacral_span(span: VertebraSpan, mask: np.ndarray, grid: WorkGrid) -> VertebraSpan:
    """S1's frame from its own superior endplate.

    S1 has one disc above it and none below, so a frame from the spine curve and
    the L5–S1 disc plane (a wedge: the disc's mid-plane is ≈ 8–16° off the sacral
    endplate) can be tilted and off-centre by a centimetre.  The sacral endplate is
    the top surface of the bone in front of the canal: fit a plane to it and put the
    origin one half body height (28 mm, ANATOMY.md) below its centre, mid-depth.
    Returns ``span`` unchanged when the surface cannot be found.
    """
    f = span.frame
    zyx = np.argwhere(mask)
    if len(zyx) < 50 or span.upper_lps is None:
        return span
    d = grid.index_to_lps(zyx) - f.origin_lps
    u, v, w = d @ f.lr, d @ f.ap, d @ f.si
    w_top = float((span.upper_lps - f.origin_lps) @ f.si)
    near = (np.abs(u) < 14.0) & (w < w_top + 8.0) & (w > w_top - 45.0)
    if near.sum() < 50:
        return span
    # the body's depth extent at this height: the front of the bone to the canal
    v_front = float(np.percentile(v[near], 1))
    col = near & (v < v_front + 30.0)
    bins = np.floor(np.stack([u[col], v[col]], 1) / 2.0).astype(int)
    keys, inv = np.unique(bins, axis=0, return_inverse=True)
    top = np.full(len(keys), -np.inf)
    np.maximum.at(top, inv.ravel(), w[col])
    uv = (keys + 0.5) * 2.0
    ok = np.isfinite(top)
    if ok.sum() < 20:
        return span
    A = np.c_[uv[ok], np.ones(ok.sum())]
    coef, *_ = np.linalg.lstsq(A, top[ok], rcond=None)
    for _ in range(2):  # drop the rim / osteophytes and refit
        res = np.abs(A @ coef - top[ok])
        keep = res <= max(np.percentile(res, 80), 1.0)
        coef, *_ = np.linalg.lstsq(A[keep], top[ok][keep], rcond=None)
    n_loc = np.array([-coef[0], -coef[1], 1.0])
    n_loc /= np.linalg.norm(n_loc)
    if n_loc[2] < np.cos(np.radians(35.0)):
        return span  # not a plausible endplate
    si = n_loc[0] * f.lr + n_loc[1] * f.ap + n_loc[2] * f.si
    ap = f.ap - (f.ap @ si) * si
    ap /= np.linalg.norm(ap)
    v_mid = v_front + 0.5 * min(30.0, float(np.percentile(v[col], 99)) - v_front)
    centre_top = np.array([0.0, v_mid, coef[0] * 0.0 + coef[1] * v_mid + coef[2]])
    top_lps = f.origin_lps + centre_top @ np.stack([f.lr, f.ap, f.si])
    origin = top_lps - 0.5 * _SACRAL_BODY_HEIGHT_MM * si
    frame = VertebraFrame(origin, si, ap, np.cross(ap, si))
    return VertebraSpan(span.name, frame, None, top_lps, span.disc_below_mm,
                        span.disc_above_mm, upper_on_endplate=True)


def _disc_or_fallback(disc_mm: float, other_mm: float) -> float:
    """A disc height (mm): ``disc_mm`` when measured, else the other disc's.

    0 when neither is known: the span's points are then taken as on the endplates.
    """
    for d in (disc_mm, other_mm):
        if np.isfinite(d) and d > 0.0:
            return float(d)
    return 0.0


def measure_arch(span: VertebraSpan, mask: np.ndarray, grid: WorkGrid) -> ArchGeometry:
    """Measure one vertebra (its mask on ``grid``) in its frame."""
    name, frame = span.name, span.frame
    probe = _Probe(mask, grid, frame)
    found = []
    o = frame.origin_lps
    w_lo = np.nan if span.lower_lps is None else float((span.lower_lps - o) @ frame.si)
    w_hi = np.nan if span.upper_lps is None else float((span.upper_lps - o) @ frame.si)
    height = (w_hi - w_lo) if np.isfinite(w_hi - w_lo) else 28.0
    w_mid = 0.5 * (w_lo + w_hi) if np.isfinite(w_hi - w_lo) else 0.0
    # --- canal walls along the midline, over the middle of the body -----------------------
    vs = np.arange(-30.0, 80.0, STEP_MM)
    backs, arches = [], []
    for dw in (-6.0, -3.0, 0.0, 3.0, 6.0):
        for du in (-1.5, 0.0, 1.5):
            hit = probe(du, vs, w_mid + dw)
            runs = _runs(hit)
            # the canal is the widest gap between the body (from the front) and the arch;
            # narrower gaps in front of it are dark patches in the body (the basivertebral
            # vein's channel, osteoporotic cancellous bone)
            if len(runs) < 2 or vs[runs[0][0]] > 5.0:
                continue
            gaps = [(vs[a2] - vs[b1 - 1], vs[b1 - 1], vs[a2]) for (_, b1), (a2, _) in
                    zip(runs[:-1], runs[1:]) if vs[a2] > 0.0]
            if gaps:
                _, back, arch = max(gaps)
                backs.append(back + STEP_MM / 2)
                arches.append(arch - STEP_MM / 2)
    if backs:
        body_back = float(np.median(backs))
        canal_back = float(np.median(arches))
        found.append("canal walls")
    else:
        body_back = _FALLBACK_BODY_BACK_MM
        canal_back = _FALLBACK_BODY_BACK_MM + _FALLBACK_CANAL_AP_MM
    canal_back = max(canal_back, body_back + 8.0)
    v_mid = 0.5 * (body_back + canal_back)
    # --- inferior endplate at the back of the body ---------------------------------------
    # the disc mid-plane is measured on the spine curve, in the body's middle; a wedge disc
    # (L5-S1: 18.7 mm in front, 8.5 mm behind) puts it millimetres off the endplate behind
    lows = []
    ws_body = np.arange(-0.5 * height - 12.0, 0.0, STEP_MM) + w_mid
    for du in (-3.0, 0.0, 3.0):
        for dv in (-8.0, -5.0):
            hit = probe(du, body_back + dv, ws_body)
            runs = _runs(hit)
            if runs and runs[-1][1] == len(hit) and runs[-1][0] > 0:
                lows.append(ws_body[runs[-1][0]] - STEP_MM / 2)
    endplate_back = float(np.median(lows)) if len(lows) >= 3 else np.nan
    if np.isfinite(w_lo) and np.isfinite(endplate_back) and endplate_back < w_lo:
        endplate_back = np.nan  # ran on through the disc into the vertebra below
    # --- body width along lr at mid-depth ------------------------------------------------
    us = np.arange(0.0, 60.0, STEP_MM)
    widths = []
    for s in (1.0, -1.0):
        hit = probe(s * us, 0.0, w_mid)
        runs = _runs(hit)
        if runs and runs[0][0] == 0:
            widths.append(us[runs[0][1] - 1])
    body_half = float(np.median(widths)) if widths else 20.0
    hit = probe(0.0, -us, w_mid)
    runs = _runs(hit)
    depth = body_back + (us[runs[0][1] - 1] if runs and runs[0][0] == 0 else 16.0)
    if name == "S1":
        # the sacral body is fused with the alae: no lateral wall to find.  Lumbar and
        # sacral bodies are 1.2–1.3 × wider than deep (ANATOMY.md); S1 ≈ 50 × 36 mm
        # including the ring apophysis, its cancellous body ≈ 40 mm wide.
        body_half = min(body_half, 0.6 * depth)
    # --- pedicle height limits from the body ------------------------------------------------
    # the pedicle springs from the upper half of the body: its top lies ≈ 1 mm below the
    # superior endplate (the superior vertebral notch, the lateral recess, is shallow) and
    # it is ≈ half the body high (13–17 mm, ANATOMY.md); below it is the foramen.  On
    # 3 mm voxels the superior articular process above it and the articular bone behind
    # it merge with it into one run of bone, so the run alone reads 25–30 mm.
    half_above = 0.5 * _disc_or_fallback(span.disc_above_mm, span.disc_below_mm)
    half_below = 0.5 * _disc_or_fallback(span.disc_below_mm, span.disc_above_mm)
    top_endplate = (w_hi - (0.0 if span.upper_on_endplate else half_above)
                    if np.isfinite(w_hi) else w_mid + 0.5 * height - half_above)
    low_endplate = (w_lo + half_below if np.isfinite(w_lo)
                    else w_mid - 0.5 * height + half_below)
    if name == "S1" and span.upper_on_endplate:
        # no disc below S1: its body is the sacral body height below its own endplate
        low_endplate = top_endplate - _SACRAL_BODY_HEIGHT_MM
    body_height = top_endplate - low_endplate
    max_ped = float(np.clip(_PEDICLE_HEIGHT_PER_BODY * body_height + _PEDICLE_FLARE_MM,
                            _MIN_PEDICLE_HEIGHT_MM, _MAX_PEDICLE_HEIGHT_MM))
    # the band's top may reach the endplate where the pedicle flares into the body's
    # corner; its floor is held from the pedicle's usual top, 1 mm below the endplate
    ped_top_cap = top_endplate + _PEDICLE_TOP_FLARE_MM
    # and the pedicle itself (no flare) half the body high
    ped_floor = (top_endplate - _PEDICLE_BELOW_ENDPLATE_MM - _PEDICLE_TOP_SLACK_MM
                 - float(np.clip(_PEDICLE_HEIGHT_PER_BODY * body_height,
                                 _MIN_PEDICLE_HEIGHT_MM, _MAX_PEDICLE_HEIGHT_MM)))
    # --- pedicles, per side ----------------------------------------------------------------
    canal_half, band, outer, tp_top = {}, {}, {}, {}
    ws = np.arange(-40.0, 40.0, STEP_MM) + w_mid
    for side in SIDES:
        s = SIDE_SIGN[side]
        walls = []
        for w in np.arange(w_mid - 2.0, w_mid + 0.5 * height, 1.5):
            for dv in (-2.0, 0.0, 2.0):
                hit = probe(s * us, v_mid + dv, w)
                if hit.any() and not hit[0]:
                    walls.append(us[np.argmax(hit)] - STEP_MM / 2)
        cw = float(np.percentile(walls, 20)) if walls else np.nan
        if np.isfinite(cw) and 5.0 < cw < 25.0:
            found.append(f"pedicle {side} wall")
        else:
            cw = _FALLBACK_CANAL_HALF_MM
        canal_half[side] = cw
        # the pedicle's SI extent: the bone run nearest the upper half just lateral to the
        # wall, in the front half of the canal's depth (behind it the articular processes
        # continue the bone down to the facet joints, merged with it on 3 mm voxels)
        depths = body_back + np.array([0.3, 0.4, 0.5]) * (canal_back - body_back)

        def run_band(dus, s=s, cw=cw):
            best = None
            for du in dus:
                hit = probe(s * (cw + du), depths[:, None], ws[None, :]).any(axis=0)
                for a, b in _runs(hit):
                    lo_w, hi_w = ws[a] - STEP_MM / 2, ws[b - 1] + STEP_MM / 2
                    # a pedicle lies within its vertebra's height and is 13–15 mm high
                    # (ANATOMY.md); a longer run has the articular bone below it merged in
                    hi_w = min(hi_w, ped_top_cap)
                    lo_w = max(lo_w, w_mid - height / 2, hi_w - max_ped, ped_floor)
                    overlap = min(hi_w, w_mid + height / 2) - max(lo_w, w_mid)
                    better = best is None or overlap > best[0]
                    if 4.0 <= hi_w - lo_w <= 30.0 and overlap > 2.0 and better:
                        best = (overlap, lo_w, hi_w)
            return best

        best = run_band((2.0, 3.5))
        if best is not None and best[2] - best[1] < _MIN_PEDICLE_HEIGHT_MM - 2.0:
            # lower than a pedicle next to the wall (a trefoil canal's lateral recess, L5,
            # cuts into the run above the pedicle's lower half): read along its middle
            mid = run_band((max(0.5 * _PEDICLE_WIDTH_MM.get(name, _FALLBACK_PEDICLE_WIDTH_MM),
                                3.5),))
            if mid is not None and mid[2] - mid[1] > best[2] - best[1]:
                best = mid
        if best is not None:
            band[side] = (best[1], best[2])
            found.append(f"pedicle {side} height")
        else:
            top = top_endplate - _PEDICLE_BELOW_ENDPLATE_MM
            band[side] = (top - min(_FALLBACK_PEDICLE_HEIGHT_MM, max_ped), top)
        # lateral wall: end of the bone run from the medial wall, in front of the
        # transverse process (which springs from the back half of the pedicle)
        wc = 0.5 * sum(band[side])
        ends = []
        for dv in (0.15, 0.3):
            for dw in (-2.0, 0.0, 2.0):
                hit = probe(s * us, body_back + dv * (canal_back - body_back), wc + dw)
                start = int(np.searchsorted(us, cw))
                runs = [(a, b) for a, b in _runs(hit) if b > start + 1 and a <= start + 4]
                if runs:
                    ends.append(us[runs[0][1] - 1] + STEP_MM / 2)
        po = float(np.median(ends)) if ends else np.nan
        expected = _PEDICLE_WIDTH_MM.get(name, _FALLBACK_PEDICLE_WIDTH_MM)
        # a rib head (T12) or a transverse process merged with the pedicle reads wider
        if not (np.isfinite(po) and 0.6 * expected < po - cw < 1.5 * expected):
            po = cw + expected
        else:
            found.append(f"pedicle {side} width")
        outer[side] = po
        # the transverse process springs from the pedicle-lamina junction at about the
        # pedicle's mid-height, a bar 8-16 mm high (ANATOMY.md: L5 thick); above it,
        # lateral to the pedicle, rises the superior articular process.  Its top is read
        # off the bone runs a little beyond the pedicle (past the SAP's lateral edge),
        # over the depth of the junction, the lowest of them
        mid = 0.5 * sum(band[side])
        tops = []
        tp_depths = body_back + np.array([0.4, 0.6, 0.8, 1.0]) * (canal_back - body_back)
        for du in _TP_PROBE_BEYOND_PEDICLE_MM:
            hit = probe(s * (po + du), tp_depths[:, None], ws[None, :]).any(axis=0)
            runs = [(ws[a] - STEP_MM / 2, ws[b - 1] + STEP_MM / 2) for a, b in _runs(hit)]
            runs = [r for r in runs if r[0] <= mid + 2.0 and r[1] >= mid - 2.0]
            if runs:
                tops.append(max(r[1] for r in runs))
        if tops:
            tp_top[side] = float(np.clip(np.min(tops), mid + _TP_HALF_HEIGHT_MIN_MM,
                                         band[side][1]))
            found.append(f"transverse process {side} top")
        else:
            tp_top[side] = band[side][1]
    return ArchGeometry(name, frame, w_lo, w_hi, body_back, canal_back, canal_half, band, outer,
                        body_half, tuple(found), span.disc_below_mm, endplate_back, tp_top)


def classify_parts(g: ArchGeometry, u: np.ndarray, v: np.ndarray, w: np.ndarray,
                   sacrum: bool) -> np.ndarray:
    """Part codes (``PART_CODES``) of vertebra points at local (u, v, w) mm."""
    P = PART_CODES
    out = np.zeros(u.shape, np.uint8)
    left = u >= 0
    au = np.abs(u)
    cw = np.where(left, g.canal_half_mm["left"], g.canal_half_mm["right"])
    pb = np.where(left, g.pedicle_band_mm["left"][0], g.pedicle_band_mm["right"][0])
    pt = np.where(left, g.pedicle_band_mm["left"][1], g.pedicle_band_mm["right"][1])
    po = np.where(left, g.pedicle_outer_mm["left"], g.pedicle_outer_mm["right"])
    side = lambda base: np.where(left, P[f"{base} left"], P[f"{base} right"])  # noqa: E731
    va, vp = g.body_back_mm, g.canal_back_mm
    vm = 0.5 * (va + vp)
    medial = au < cw - 0.5
    inband = (w >= pb) & (w <= pt)
    # the pedicle runs on into the posterolateral corner of the body (≈ 4–5 mm)
    body = (v < va + 0.5) & ~(~medial & inband & (v > va - _PEDICLE_INTO_BODY_MM))
    # behind the canal in the midline: lamina, then the spinous process
    spinous = medial & (au < _SPINOUS_HALF_MM) & (v > vp + _SPINOUS_BEHIND_MM)
    # lateral to the canal, at its depth: pedicle within its band, SAP above, IAP below
    lateral_deep = ~medial & (v <= vp + 1.5)
    above = w > pt
    below = w < pb - 1.0
    out[:] = P["lamina"]
    out[medial & (v < vm)] = P["body"]  # posterior osteophyte / wall in front of the canal
    out[spinous] = P["spinous process"]
    ped = lateral_deep & ~above & ~below
    out[ped] = side("pedicle")[ped]
    front = ~medial & inband & (v <= va + 0.5) & (v > va - _PEDICLE_INTO_BODY_MM)
    out[front] = side("pedicle")[front]
    # the SAP rises from the pedicle-lamina junction: behind the canal's back wall,
    # lateral to the canal, from the pedicle's mid-height up (on 3 mm voxels most of it
    # lies beside the upper pedicle there rather than above it)
    junction = ((~medial & (v > vp + 1.5) & (au > cw + _IAP_LATERAL_MM)
                 & (w > 0.5 * (pb + pt))) if not sacrum else np.zeros_like(medial))
    sap = (~medial & above & (v > va + 2.0)) | junction
    out[sap] = side("superior articular process")[sap]
    iap = ~medial & below & (v > vm) & ((au > cw + _IAP_LATERAL_MM)
                                        | ((au > cw + _IAP_LATERAL_FRONT_MM) & (v < vp + 2.0)))
    endplate = g.endplate_back_mm
    if not np.isfinite(endplate) and np.isfinite(g.w_lower_mm):
        endplate = g.w_lower_mm + 0.5 * (g.disc_below_mm if np.isfinite(g.disc_below_mm)
                                         else _FALLBACK_DISC_MM)
    if np.isfinite(endplate):
        iap &= w < endplate + _IAP_TOP_ABOVE_ENDPLATE_MM
    # below the pedicle, in front of the canal's mid-depth, is the foramen: bone there
    # is the posterolateral corner of the body (its back wall is concave, so it
    # reaches further back beside the canal than in the midline)
    below_front = lateral_deep & below & (v <= vm)
    out[below_front] = P["body"]
    if not sacrum:
        out[iap] = side("inferior articular process")[iap]
        tp = ~medial & ~above & ~below & (au > po)
        out[tp] = side("transverse process")[tp]
        # above the transverse process, beyond the pedicle and behind the body: the SAP
        tt = np.where(left, g.tp_top_mm.get("left", np.inf), g.tp_top_mm.get("right", np.inf))
        sap_lat = tp & (w > tt) & (v > va + 2.0)
        out[sap_lat] = side("superior articular process")[sap_lat]
        out[body] = P["body"]
        return out
    # S1: the ala lateral to the body, the rest of the sacrum below it
    out[iap] = P["lamina"]
    # S1's pedicle runs ≈ 40° posterolaterally (ANATOMY.md): beside its lamina, which
    # covers the canal and the pedicle's medial half, the bone behind the canal at the
    # pedicle's height is still pedicle (the lateral mass under the SAP)
    ped_back = (~medial & (v > vp + 1.5) & (au > cw + 0.5 * (po - cw))
                & (w >= pb - 1.0) & (w <= pt))
    out[ped_back] = side("pedicle")[ped_back]
    h = g.w_upper_mm - g.w_lower_mm if np.isfinite(g.w_upper_mm - g.w_lower_mm) else 28.0
    w_top = g.w_upper_mm if np.isfinite(g.w_upper_mm) else 0.5 * h
    # the ala lies lateral to the body, in front of the pedicles and below the endplate
    # level, where the superior articular processes rise
    ala = (au > g.body_half_width_mm) & (v < va - 2.0) & (w > w_top - h - 8.0) & (w <= w_top)
    out[ala] = side("sacral ala")[ala]
    # the S1 body merges into S2 below its middle; the sacral canal is behind
    upper = w > w_top - 0.55 * h
    out[body & ~ala & upper & (w <= w_top + 3.0)] = P["body"]
    # S1's superior articular processes rise above its endplate, lateral to the canal
    sap = ~medial & (w > w_top + 2.0) & (v > va - 8.0)
    out[sap] = side("superior articular process")[sap]
    low = (w < w_top - h - 8.0) | ((v < vm) & ~ala & ~upper)
    out[low] = P["sacrum below S1"]
    return out


#: How far (mm) unlabelled bone continuing a vertebra's label is taken as its own when
#: finding S1's endplate: the working labels stop at the disc planes, up to a wedge
#: disc's half-height (≈ 5-9 mm at L5-S1, ANATOMY.md) short of the endplate behind.
_OWN_BONE_REACH_MM = 10.0


def _with_own_bone(label: np.ndarray, free_bone: np.ndarray, spacing_mm: float) -> np.ndarray:
    """``label`` grown through ``free_bone`` (unlabelled bone) by up to ``_OWN_BONE_REACH_MM``."""
    steps = max(int(round(_OWN_BONE_REACH_MM / spacing_mm)), 1)
    grown = ndi.binary_dilation(label, iterations=steps, mask=label | free_bone)
    return grown


def label_parts(vert: np.ndarray, grid: WorkGrid, spans: Dict[int, VertebraSpan],
                bone: Optional[np.ndarray] = None
                ) -> Tuple[np.ndarray, Dict[str, ArchGeometry], List[str]]:
    """Part codes of every named vertebra on the working grid.

    Parameters
    ----------
    vert : numpy.ndarray
        Vertebra labels on ``grid`` (0 = none).
    grid : WorkGrid
        The working grid.
    spans : dict
        ``label value in vert → VertebraSpan`` of the vertebrae to process
        (:func:`spans_from_segments` in the pipeline).
    bone : numpy.ndarray, optional
        Bone on ``grid``.  The walls are then measured on the vertebra's label
        *or* bone, so that an arch the whole-vertebra step gave to a neighbour
        (or left out) still bounds the canal; the parts stay within the label.

    Returns
    -------
    parts : numpy.ndarray
        uint8 part codes on ``grid`` (0 outside the vertebrae).
    arches : dict
        ``name → ArchGeometry``.
    findings : list of str
        Vertebrae whose arch could not be measured (fallback sizes used).
    """
    parts = np.zeros(vert.shape, np.uint8)
    arches: Dict[str, ArchGeometry] = {}
    findings = []
    objects = ndi.find_objects(vert.astype(np.int32))
    for n, span in spans.items():
        name = span.name
        if n > len(objects) or objects[n - 1] is None:
            continue
        sl = objects[n - 1]
        # probe in a box larger than the label: rays must leave it cleanly, and an arch
        # missing from the label is still found in the bone around it
        m = 2 if bone is None else int(np.ceil(_PROBE_PAD_MM / grid.spacing_mm))
        pad = tuple(slice(max(s.start - m, 0), min(s.stop + m, dim))
                    for s, dim in zip(sl, vert.shape))
        sub = vert[pad] == n
        probe_mask = sub if bone is None else (sub | bone[pad])
        origin = grid.index_to_lps(np.array([s.start for s in pad], float))
        sub_grid = WorkGrid(origin, grid.spacing_mm, sub.shape)
        if name == "S1":
            # the endplate is the top of S1's bone, which the label may stop short of
            # (a wedge L5-S1 disc's plane cut through the body's back): the unlabelled
            # bone continuing the label counts too
            top = sub if bone is None else _with_own_bone(sub, bone[pad] & (vert[pad] == 0),
                                                           grid.spacing_mm)
            span = sacral_span(span, top, sub_grid)
        g = measure_arch(span, probe_mask, sub_grid)
        arches[name] = g
        missing = {"canal walls", "pedicle left wall", "pedicle right wall"} - set(g.measured)
        if missing:
            findings.append(f"{name}: the {', '.join(sorted(missing))} could not be measured; "
                            "its sub-regions use average lumbar sizes")
        kji = np.argwhere(sub)
        d = sub_grid.index_to_lps(kji) - g.frame.origin_lps
        codes = classify_parts(g, d @ g.frame.lr, d @ g.frame.ap, d @ g.frame.si, name == "S1")
        view = parts[pad]
        view[sub] = codes
    return parts, arches, findings
