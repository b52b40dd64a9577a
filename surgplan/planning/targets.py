"""Targets and landmarks computed from the anatomy: disc targets, Kambin's triangle, pedicle axes.

Everything is measured on the label maps in the vertebra's own frame
(:class:`~surgplan.imaging.anatomy.VertebraFrame`: ``lr`` to the left, ``ap``
posterior, ``si`` superior); a local coordinate ``(u, v, w)`` means
``origin + u·lr + v·ap + w·si`` in LPS mm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from surgplan.core.errors import PlanningError
from surgplan.imaging.structures import PART_CODES
from surgplan.planning.context import PlanningContext
from surgplan.planning.procedures import SCREW_CHORD_FRACTION, Procedure, split_level

SIDE_SIGN = {"left": 1.0, "right": -1.0, "midline": 0.0}


@dataclass(frozen=True)
class Target:
    """A computed target and the frame it was computed in.

    Attributes
    ----------
    target_lps : numpy.ndarray
    frame_vertebra : str
        The vertebra whose frame gives the angles (the lower one of a disc level).
    description : str
        How it was found, for the user.
    direction : numpy.ndarray or None
        For a pedicle screw: the pedicle axis (unit, from the entry toward the target).
    """

    target_lps: np.ndarray
    frame_vertebra: str
    description: str
    direction: Optional[np.ndarray] = None


def _voxels_local(ctx: PlanningContext, mask_box: Tuple[np.ndarray, tuple], frame) -> np.ndarray:
    """Local (u, v, w) coordinates of the voxels of a boxed mask."""
    mask, box = mask_box
    idx = np.argwhere(mask)
    if not len(idx):
        return np.zeros((0, 3))
    idx = idx + np.array([box[0].start, box[1].start, box[2].start])
    aff = ctx.anatomy.ijk_to_lps
    lps = idx[:, ::-1].astype(float) @ aff[:3, :3].T + aff[:3, 3]
    rel = lps - frame.origin_lps
    return np.stack([rel @ frame.lr, rel @ frame.ap, rel @ frame.si], 1)


def _to_lps(frame, uvw) -> np.ndarray:
    u, v, w = uvw
    return frame.origin_lps + u * frame.lr + v * frame.ap + w * frame.si


def _boxed(ctx: PlanningContext, name: str, part: Optional[str] = None):
    """(mask, box) of a structure (and a part of it) inside its bounding box."""
    an = ctx.anatomy
    s = an.structure(name)
    arr = getattr(an, s.map)
    from scipy import ndimage as ndi

    key = ("box", name)
    box = ctx.cached(key, lambda: ndi.find_objects((arr == s.label).astype(np.uint8))[0])
    m = arr[box] == s.label
    if part is not None:
        m &= an.parts[box] == PART_CODES[part]
    return m, box


def disc_geometry(ctx: PlanningContext, upper: str, lower: str) -> dict:
    """Centre, frame axes and extents of the disc between ``upper`` and ``lower``.

    Returns a dict with ``frame`` (the lower vertebra's axes, origin at the disc
    centroid), ``uvw`` (disc voxels in that frame), and the posterior wall ``v_post``.
    """
    name = f"disc {upper}-{lower}"
    if not ctx.has(name):
        raise PlanningError(f"{name} is not in the anatomy: the target of this level cannot be "
                            f"found (structures: {', '.join(ctx.anatomy.names)})")

    def compute():
        from surgplan.imaging.anatomy import VertebraFrame

        lo = ctx.frame(lower) if lower in ctx.frames else ctx.frame(upper)
        up = ctx.frames.get(upper, lo)
        si = lo.si + up.si
        si /= np.linalg.norm(si)
        ap = lo.ap - (lo.ap @ si) * si
        ap /= np.linalg.norm(ap)
        lr = np.cross(ap, si)
        pts0 = _voxels_local(ctx, _boxed(ctx, name), VertebraFrame(np.zeros(3), si, ap, lr))
        centre = np.median(pts0, 0)
        origin = centre[0] * lr + centre[1] * ap + centre[2] * si
        frame = VertebraFrame(origin, si, ap, lr)
        uvw = pts0 - centre
        core = uvw[np.abs(uvw[:, 0]) < 5]
        v_post = float(np.percentile(core[:, 1], 99)) if len(core) else float(uvw[:, 1].max())
        return dict(frame=frame, uvw=uvw, v_post=v_post, name=name)

    return ctx.cached(("disc", name), compute)


def _disc_point(geo: dict, u: float, v: float) -> np.ndarray:
    """The disc's mid-height point at local (u, v) (LPS)."""
    uvw = geo["uvw"]
    near = uvw[(np.abs(uvw[:, 0] - u) < 3) & (np.abs(uvw[:, 1] - v) < 3)]
    w = float(np.median(near[:, 2])) if len(near) else 0.0
    return _to_lps(geo["frame"], (u, v, w))


def compute_target(ctx: PlanningContext, procedure: Procedure, level: str, side: str) -> Target:
    """The target of ``procedure`` at ``level`` on ``side`` (see ``procedure.target_rule``).

    Raises
    ------
    PlanningError
        The level's disc or vertebra (or, for a screw or a facet, the vertebral parts) is
        not in the anatomy.
    """
    upper, lower = split_level(procedure, level)
    s = SIDE_SIGN[side]
    key = procedure.key
    if key in ("teld", "ield", "intradiscal"):
        geo = disc_geometry(ctx, upper, lower)
        uvw = geo["uvw"]
        if key == "intradiscal":
            return Target(_disc_point(geo, 0.0, 0.0), lower, f"centre of {geo['name']}")
        if key == "teld":
            sidepts = uvw[uvw[:, 0] * (s or 1) > 0]
            edge = float(np.percentile(np.abs(sidepts[:, 0]), 98)) if len(sidepts) else 20.0
            return _teld_target(ctx, geo, upper, lower, side, s, edge)
        u = s * 8.0
        col = uvw[np.abs(uvw[:, 0] - u) < 3]
        v_post = float(np.percentile(col[:, 1], 99)) if len(col) else geo["v_post"]
        return Target(_disc_point(geo, u, v_post - 3.0), lower,
                      f"posterior {geo['name']} ({side}) through the interlaminar window")
    if key == "facet":
        return _facet_target(ctx, upper, lower, side)
    if key == "pedicle-screw":
        ax = pedicle_axis(ctx, upper, side)
        return Target(ax["target_lps"], upper,
                      f"{upper} {side} pedicle axis, {100 * SCREW_CHORD_FRACTION:.0f} % of the "
                      f"way from the posterior bone to the anterior cortex "
                      f"({ax['chord_mm']:.0f} mm)", ax["direction"])
    raise PlanningError(f"no target rule for {key!r}")


#: Clearance (mm) from the nerves a TELD target should keep: the widest catalogue cannula's
#: radius (4 mm) plus the 2 mm root margin.
TELD_TARGET_CLEARANCE_MM = 6.0


def _teld_target(ctx, geo, upper, lower, side, s, edge) -> Target:
    """The posterolateral disc target, moved within the disc when a nerve lies too close.

    The default is halfway from the midline to the disc's edge, 5 mm in front of its
    posterior wall.  When the exiting or traversing root or the dural sac lies closer
    than :data:`TELD_TARGET_CLEARANCE_MM` to it, the point of the posterolateral disc
    (0.3–0.6 of the way to the edge, 4–10 mm in front of the wall) farthest from them is
    taken instead, and the description says so.
    """
    uvw = geo["uvw"]
    nerves = [ctx.fields[n] for n in (f"nerve root {upper} {side}", f"nerve root {lower} {side}",
                                      "dural sac") if n in ctx.fields]

    def point(frac, back):
        u = s * edge * frac
        col = uvw[np.abs(uvw[:, 0] - u) < 3]
        v_post = float(np.percentile(col[:, 1], 99)) if len(col) else geo["v_post"]
        return _disc_point(geo, u, v_post - back)

    def clearance(p):
        return min((float(f.sample(p[None])[0]) for f in nerves), default=np.inf)

    p0 = point(0.5, 5.0)
    what = (f"posterolateral {geo['name']} ({side}), 5 mm in front of its posterior wall, "
            f"halfway to its lateral edge")
    if clearance(p0) >= TELD_TARGET_CLEARANCE_MM:
        return Target(p0, lower, what)
    best, bc = p0, clearance(p0)
    for frac in (0.3, 0.375, 0.45, 0.525, 0.6):
        for back in (4.0, 6.0, 8.0, 10.0):
            p = point(frac, back)
            c = clearance(p)
            if c > bc + 0.25:
                best, bc = p, c
    return Target(best, lower, f"posterolateral {geo['name']} ({side}), moved within the disc "
                  f"to keep {bc:.1f} mm from the nerves (the default point had "
                  f"{clearance(p0):.1f} mm)")


def _need_parts(ctx: PlanningContext, what: str) -> None:
    if not ctx.anatomy.has_parts:
        raise PlanningError(f"{what} needs the vertebral parts (pedicles, articular processes), "
                            "which this anatomy does not have; segment them first or give the "
                            "entry and the target yourself")


def _facet_target(ctx: PlanningContext, upper: str, lower: str, side: str) -> Target:
    _need_parts(ctx, f"the facet joint {upper}-{lower} {side}")
    from scipy import ndimage as ndi

    an = ctx.anatomy
    iap = an.part_mask(f"inferior articular process {side}", upper)
    sap = an.part_mask(f"superior articular process {side}", lower)
    if not iap.any() or not sap.any():
        raise PlanningError(f"the {side} facet joint {upper}-{lower} is not in the anatomy "
                            f"(no {'IAP of ' + upper if not iap.any() else 'SAP of ' + lower})")
    near = ndi.binary_dilation(sap, iterations=2) & iap
    near |= ndi.binary_dilation(iap, iterations=2) & sap
    pts = np.argwhere(near if near.any() else (iap | sap))
    aff = an.ijk_to_lps
    c = aff[:3, :3] @ pts.mean(0)[::-1] + aff[:3, 3]
    return Target(c, lower, f"{side} facet joint {upper}-{lower} (where the IAP of {upper} "
                            f"meets the SAP of {lower})")


# --- pedicle ---------------------------------------------------------------------------------
def pedicle_axis(ctx: PlanningContext, vertebra: str, side: str) -> dict:
    """The best screw axis through a pedicle, found from the masks.

    The axis passes through the centroid of the pedicle part, parallel to the
    endplates, along the long axis of the pedicle's voxels in the vertebra's axial plane
    (their principal component, refined to the line through the centroids of their
    posterior and anterior thirds), then shifted across itself to its deepest passage.

    Returns
    -------
    dict
        ``centre_lps``, ``direction`` (unit, posterior → anterior), ``medial_angle_deg``,
        ``bone_entry_lps`` (where the axis enters bone posteriorly), ``anterior_lps``
        (where it leaves the anterior cortex), ``chord_mm`` (between the two),
        ``target_lps`` (the screw's tip, :data:`~surgplan.planning.procedures.
        SCREW_CHORD_FRACTION` of the chord from the bone entry), ``isthmus_width_mm``
        (narrowest outer width of the pedicle ⟂ the axis: the screw is sized on it),
        ``min_depth_mm`` (least depth of the axis inside the bone from 5 mm past the bone
        entry to the tip: the largest screw radius that stays in bone there).
    """
    _need_parts(ctx, f"a {vertebra} pedicle screw")

    def compute():
        part = f"pedicle {side}"
        m, box = _boxed(ctx, vertebra, part)
        if not m.any():
            raise PlanningError(f"the {side} pedicle of {vertebra} is not in the anatomy")
        fr = ctx.frame(vertebra)
        s = SIDE_SIGN[side]
        loc = _voxels_local(ctx, (m, box), fr)
        centre = loc.mean(0)
        f = ctx.fields[vertebra]
        # first guess: the long axis of the pedicle's voxels in the axial plane
        uv = loc[:, :2] - centre[:2]
        _, vecs = np.linalg.eigh(np.cov(uv.T))
        major = vecs[:, -1]
        if major[1] > 0:
            major = -major  # point anteriorly
        # a short, wide pedicle (L5, S1) has its largest spread across, not along, its axis:
        # the line through the centroids of its posterior and anterior thirds along the
        # current axis is the bar's axis whatever its flare; three rounds settle it
        for _ in range(3):
            t = uv @ major
            lo, hi = np.percentile(t, [33.3, 66.7])
            a, b = uv[t <= lo].mean(0), uv[t >= hi].mean(0)
            if not np.all(np.isfinite(b - a)) or np.linalg.norm(b - a) < 1e-6:
                break
            major = (b - a) / np.linalg.norm(b - a)
            if major[1] > 0:
                major = -major
        ang = float(np.degrees(np.arctan2(-s * major[0], -major[1])))
        R = np.stack([fr.lr, fr.ap, fr.si])
        a = np.radians(ang)
        d_loc = np.array([-s * np.sin(a), -np.cos(a), 0.0])
        ts = np.arange(-30.0, 70.0, 0.25)
        i0 = int(np.argmin(np.abs(ts)))
        # the pedicle's centroid need not be its best passage: shift the axis across
        # itself (±3 mm, lateral and cranio-caudal) to the line that stays deepest in
        # bone from the isthmus to the front of the body (max-min depth)
        lat = np.array([-d_loc[1], d_loc[0], 0.0])
        sd0 = f.sample(fr.origin_lps + (centre[None, :] + ts[:, None] * d_loc[None, :]) @ R)
        if not sd0[i0] < 0:
            raise PlanningError(f"the centre of the {side} pedicle of {vertebra} is not in bone")
        t_body = float((-centre) @ d_loc)  # the body's centre (local origin) along the axis
        best = None
        for dl in np.arange(-3.0, 3.01, 0.5):
            for dw in np.arange(-3.0, 3.01, 0.5):
                c = centre + dl * lat + np.array([0.0, 0.0, dw])
                sd = f.sample(fr.origin_lps + (c[None, :] + ts[:, None] * d_loc[None, :]) @ R)
                inside = sd < 0
                if not inside[i0]:
                    continue
                a0 = i0
                while a0 > 0 and inside[a0 - 1]:
                    a0 -= 1
                b0 = i0
                while b0 < len(ts) - 1 and inside[b0 + 1]:
                    b0 += 1
                # the screw must reach past the body's centre; it runs from the posterior
                # bone to SCREW_CHORD_FRACTION of the chord and is judged, as its breach is,
                # past its first 5 mm in bone: its least depth there is the radius it can take
                if ts[b0] < t_body:
                    continue
                tip = a0 + int(round(SCREW_CHORD_FRACTION * (b0 - a0)))
                seg = sd[min(a0 + 20, tip):tip + 1]
                score = -float(seg.max())
                if best is None or score > best[0]:
                    best = (score, c, ts[a0], ts[b0])
        if best is None:
            raise PlanningError(f"the axis of the {side} pedicle of {vertebra} is not in bone")
        min_depth, centre, t_in, t_out = best
        best = (0.0, ang, d_loc, t_in, t_out)
        _, ang, d_loc, t_in, t_out = best
        R = np.stack([fr.lr, fr.ap, fr.si])
        c_lps = fr.origin_lps + centre @ R
        d = d_loc @ R
        entry = c_lps + t_in * d
        anterior = c_lps + t_out * d
        chord = float(t_out - t_in)
        target = entry + SCREW_CHORD_FRACTION * chord * d
        width = isthmus_width(ctx, vertebra, side, c_lps, d)
        return dict(centre_lps=c_lps, direction=d, medial_angle_deg=float(ang),
                    bone_entry_lps=entry, anterior_lps=anterior, target_lps=target,
                    chord_mm=chord, isthmus_width_mm=width, min_depth_mm=float(min_depth))

    return ctx.cached(("pedicle", vertebra, side), compute)


def _run_length(flags: np.ndarray, centre: int) -> int:
    """Length of the run of True values through index ``centre`` (0 if it is False)."""
    if not flags[centre]:
        return 0
    a = centre
    while a > 0 and flags[a - 1]:
        a -= 1
    b = centre
    while b < len(flags) - 1 and flags[b + 1]:
        b += 1
    return b - a + 1


def isthmus_width(ctx: PlanningContext, vertebra: str, side: str, point_lps: np.ndarray,
                  direction: np.ndarray) -> float:
    """Narrowest outer width (mm) of the pedicle across an axis, ⟂ the axis and the SI axis.

    At stations 0.5 mm apart where the axis lies in the pedicle part, the chord of
    the vertebra (its distance field's zero level) along the horizontal direction
    across the axis is measured; the smallest chord is the isthmus.
    """
    fr = ctx.frame(vertebra)
    f = ctx.fields[vertebra]
    d = direction / np.linalg.norm(direction)
    e = np.cross(fr.si, d)
    e /= np.linalg.norm(e)
    ts = np.arange(-20.0, 20.0, 0.5)
    axis = point_lps[None, :] + ts[:, None] * d[None, :]
    code = PART_CODES[f"pedicle {side}"]
    on = ctx.lookup(ctx.anatomy.parts, axis) == code
    on &= ctx.lookup(ctx.anatomy.vertebrae, axis) == ctx.anatomy.structure(vertebra).label
    if not on.any():
        return float("nan")
    ss = np.arange(-20.0, 20.01, 0.1)
    pts = axis[on][:, None, :] + ss[None, :, None] * e[None, None, :]
    sd = f.sample(pts)  # (stations, offsets)
    widths = []
    mid = len(ss) // 2
    for row in sd:
        if row[mid] >= -1.0:  # the axis must be inside the bone for a chord to mean anything
            continue
        left = mid
        while left > 0 and row[left - 1] < 0:
            left -= 1
        right = mid
        while right < len(ss) - 1 and row[right + 1] < 0:
            right += 1
        # sub-step zero crossings
        lo = ss[left] - 0.1 * (row[left] / (row[left] - row[left - 1])) if left > 0 else ss[0]
        hi = ss[right] + 0.1 * (row[right] / (row[right] - row[right + 1])) \
            if right < len(ss) - 1 else ss[-1]
        widths.append(hi - lo)
    return float(min(widths)) if widths else float("nan")


# --- Kambin's triangle ---------------------------------------------------------------------
@dataclass(frozen=True)
class KambinTriangle:
    """Kambin's triangle computed from the anatomy, projected on the posterior disc wall.

    ``corners_lps`` rows: base–medial (SAP edge on the endplate), base–lateral (where
    the exiting root comes down to the endplate), apex (where the root passes over the
    SAP edge).  ``inscribed_diameter_mm`` is the diameter of its inscribed circle and
    ``incentre_lps`` that circle's centre.
    """

    level: str
    side: str
    corners_lps: np.ndarray
    inscribed_diameter_mm: float
    incentre_lps: np.ndarray
    base_mm: float
    height_mm: float
    plane_point_lps: np.ndarray
    plane_normal: np.ndarray
    frame: object

    def to_dict(self) -> dict:
        return {"level": self.level, "side": self.side,
                "corners_lps": np.round(self.corners_lps, 2).tolist(),
                "inscribed_diameter_mm": round(self.inscribed_diameter_mm, 2),
                "incentre_lps": np.round(self.incentre_lps, 2).tolist(),
                "base_mm": round(self.base_mm, 2), "height_mm": round(self.height_mm, 2)}


#: Least volume (ml) of a superior articular process that can bound Kambin's triangle: a
#: fifth of a small lumbar SAP (≈ 15 × 12 × 10 mm, 1–2 ml).
MIN_SAP_ML = 0.3


def kambin_triangle(ctx: PlanningContext, level: str, side: str) -> Tuple[Optional[KambinTriangle],
                                                                           str]:
    """Kambin's triangle at a disc ``level`` (``L4-L5``) and ``side``, or None and why not.

    Worked in the lower vertebra's frame and projected on the coronal plane of the
    posterior disc wall: the base is the upper endplate of the lower vertebra, the
    medial side the anterior edge of the lower vertebra's superior articular process,
    the hypotenuse the lower edge of the exiting root (``nerve root {upper} {side}``).
    """
    return ctx.cached(("kambin", level, side), lambda: _kambin(ctx, level, side))


def _kambin(ctx: PlanningContext, level: str, side: str):
    upper, lower = level.split("-")
    root = f"nerve root {upper} {side}"
    disc = f"disc {upper}-{lower}"
    missing = [n for n in (root, disc, lower) if not ctx.has(n)]
    if missing:
        return None, (f"Kambin's triangle not computed: {', '.join(missing)} not in the anatomy")
    if not ctx.anatomy.has_parts:
        return None, ("Kambin's triangle not computed: the superior articular process of "
                      f"{lower} is not in the anatomy (no vertebral parts)")
    s = SIDE_SIGN[side]
    fr = ctx.frame(lower)
    sap = _voxels_local(ctx, _boxed(ctx, lower, f"superior articular process {side}"), fr)
    body = _voxels_local(ctx, _boxed(ctx, lower, "body"), fr)
    rootp = _voxels_local(ctx, _boxed(ctx, root), fr)
    discp = _voxels_local(ctx, _boxed(ctx, disc), fr)
    if not len(sap) or not len(body) or not len(rootp):
        return None, f"Kambin's triangle not computed: the SAP of {lower} ({side}) is empty"
    voxvol = float(np.prod(ctx.anatomy.ijk_spacing_mm))  # mm³
    sap_ml = len(sap) * voxvol / 1000.0
    if sap_ml < MIN_SAP_ML:
        # A few stray voxels would set the triangle's medial side wherever they lie and
        # call it closed or open by chance (real 3 mm CT: L5's SAPs held 5 and 2 voxels,
        # the rest of the articular bone sitting in L4's label across the facet joint).
        return None, (f"Kambin's triangle not computed: the superior articular process of "
                      f"{lower} ({side}) holds only {sap_ml:.2f} ml, too little to "
                      "place the triangle's medial side (a lumbar SAP is ≈ 1–2 ml; at this "
                      "resolution its bone may be counted with the vertebra above)")
    sp = float(np.min(ctx.anatomy.ijk_spacing_mm))
    half = sp / 2
    # base: the upper endplate of the lower vertebra, at its posterior part
    post_body = body[body[:, 1] > np.percentile(body[:, 1], 70)]
    w_b = float(np.percentile(post_body[:, 2], 97)) + half
    core = discp[np.abs(discp[:, 0]) < 6]
    v_wall = float(np.percentile(core[:, 1], 99)) + half if len(core) else float(
        post_body[:, 1].max())
    # medial side: the SAP's anterior (foraminal) edge, from its most anterior layer
    sap_side = sap[sap[:, 0] * s > 0]
    if not len(sap_side):
        return None, f"Kambin's triangle not computed: no {side} SAP of {lower}"
    front = sap_side[sap_side[:, 1] <= sap_side[:, 1].min() + max(sp, 1.0)]
    u_m = float(np.median(np.abs(front[:, 0])))
    # hypotenuse: the root's lower edge as a function of |u|: its centre line (mean w of
    # the root's voxels per |u| bin) minus its radius (from its volume and length)
    us = np.abs(rootp[:, 0]) * (np.sign(rootp[:, 0]) == s)
    bins = np.arange(np.floor(u_m) - 2, us.max() + sp, sp / 2)
    cen = []
    for b in bins:
        sel = (us >= b - sp / 2) & (us < b + sp / 2)
        cen.append(rootp[sel].mean(0) if sel.any() else np.full(3, np.nan))
    cen = np.array(cen)
    okb = ~np.isnan(cen[:, 0])
    if okb.sum() < 2:
        return None, f"Kambin's triangle not computed: {root} does not cross the foramen"
    bins, cen = bins[okb], cen[okb]
    seg = np.linalg.norm(np.diff(cen, axis=0), axis=1).sum()
    inb = (us >= bins[0] - sp / 2) & (us < bins[-1] + sp / 2)
    radius = float(np.sqrt(inb.sum() * voxvol / (np.pi * max(seg, sp))))
    lows = cen[:, 2] - radius
    w_a = float(np.interp(u_m, bins, lows))
    below = np.nonzero((bins > u_m) & (lows <= w_b))[0]
    if not len(below):
        return None, f"Kambin's triangle not computed: {root} never comes down to the endplate"
    kb = below[0]
    if kb > 0 and lows[kb - 1] > w_b:
        f = (lows[kb - 1] - w_b) / (lows[kb - 1] - lows[kb])
        u_r = float(bins[kb - 1] + f * (bins[kb] - bins[kb - 1]))
    else:
        u_r = float(bins[kb])
    a = max(u_r - u_m, 0.0)
    b = max(w_a - w_b, 0.0)
    c = float(np.hypot(a, b))
    diam = a + b - c
    if diam < 0.5:
        return None, (f"Kambin's triangle closed at {level} {side}: {root} comes down to the "
                      f"upper endplate of {lower} at the edge of its superior articular process "
                      f"(base {a:.1f} mm, height {b:.1f} mm in the labels); no window without "
                      f"foraminoplasty")
    base_m = np.array([s * u_m, v_wall, w_b])
    lat = np.array([s * u_r, v_wall, w_b])
    apex = np.array([s * u_m, v_wall, w_a])
    rin = diam / 2
    inc = np.array([s * (u_m + rin), v_wall, w_b + rin])
    corners = np.stack([_to_lps(fr, p) for p in (base_m, lat, apex)])
    return KambinTriangle(level, side, corners, float(diam), _to_lps(fr, inc), a, b,
                          _to_lps(fr, (0.0, v_wall, 0.0)), fr.ap.copy(), fr), ""
