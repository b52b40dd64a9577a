"""Rasterise the phantom layout into label, part and tissue arrays.

Structures are painted from the outside in (skin, fat, organs, muscles,
vessels, bones, canal, dura, roots): a later structure overwrites an earlier
one, which is how the bones make room for themselves inside the muscles and the
canal carves itself out of the bone ring.  Each structure is evaluated only in
its own bounding box (:meth:`Grid.block`).
"""

from __future__ import annotations

from typing import Callable, List, Optional

import numpy as np
from scipy import ndimage

from surgplan.core.progress import CancelToken, ProgressCallback, check, no_progress
from surgplan.imaging.structures import PART_CODES, PART_NAMES
from surgplan.imaging.phantom_anatomy import (
    FACET_GAP_MM,
    SI_GAP_MM,
    SIDE_SIGN,
    SIDES,
    Layout,
    VertebraSpec,
    sap_thickness,
)
from surgplan.imaging.phantom_shapes import (
    Grid,
    frame_bounds,
    polyline_bounds,
    relative,
    resample_polyline,
    smin,
    superellipse,
    superellipsoid,
    tube,
    tube_on_grid,
)

# --- tissue classes (what a voxel is made of; CT and MR values come from these) ----------
TISSUES = (
    "air", "subcutaneous fat", "visceral fat", "skin", "muscle", "cancellous bone",
    "cortical bone", "disc nucleus", "disc annulus", "csf", "nerve", "epidural fat",
    "artery", "vein", "kidney", "bowel wall", "bowel fluid", "gas", "ligament", "liver",
    "stool", "renal sinus fat",
)
T = {name: i for i, name in enumerate(TISSUES)}

P = dict(PART_CODES)
#: How much lower (mm, along its axis) the sacrum's lamina begins than a lumbar one.
SACRAL_LAMINA_DROP_MM = 6.0


class Canvas:
    """The arrays being painted, plus the name → label value table."""

    def __init__(self, grid: Grid, label_names: List[str]):
        self.grid = grid
        self.labels = np.zeros(grid.shape_kji, np.uint8)
        self.parts = np.zeros(grid.shape_kji, np.uint8)
        self.tissue = np.zeros(grid.shape_kji, np.uint8)
        self.value = {name: i + 1 for i, name in enumerate(label_names)}

    def put(self, name: str, sl, mask, tissue: int, protect=None) -> None:
        """Label ``mask`` (inside block ``sl``) as ``name`` made of ``tissue``."""
        m = mask if protect is None else (mask & ~protect)
        self.labels[sl][m] = self.value[name]
        self.tissue[sl][m] = tissue
        self.parts[sl][m] = 0


# --- vertebrae ---------------------------------------------------------------------------
def vertebra_fields(v: VertebraSpec, lay: Layout, u, w_v, w):
    """Part distances (mm, approx.) of one vertebra at local points ``(u, v, w)``.

    Returns a list of ``(part_code, distance)``; points may be any broadcastable
    arrays, so the same function paints the voxels and walks a pedicle axis.
    """
    vv = w_v
    out = []
    D, H, W = v.depth, v.height, v.width
    cw, cd = v.canal_width, v.canal_ap
    # body: superelliptic section with a waist and a flattened posterior wall, slightly
    # concave endplates (1.2 mm)
    a = W / 2 * (1.0 - 0.06 * (1.0 - np.clip(2 * w / H, -1, 1) ** 2))
    p = 2.4
    rn = (np.abs(u / a) ** p + np.abs(vv / (D / 2)) ** p) ** (1 / p)
    xy = (rn - 1.0) * np.minimum(a, D / 2)
    xy = np.maximum(xy, vv - (D / 2 - 1.0 + 2.0 * (u / a) ** 2))
    if v.kind == "sacrum":
        # S1 has a free superior endplate only; below it is fused with the rest of the sacrum
        si = np.maximum(w - (H / 2 - 1.2 * (1 - np.clip(rn, 0, 1) ** 2)), -w - H / 2 - 6)
    else:
        si = np.abs(w) - (H / 2 - 1.2 * (1 - np.clip(rn, 0, 1) ** 2))
    out.append((P["body"], np.maximum(xy, si)))
    for side in SIDES:
        s = SIDE_SIGN[side]
        # pedicle: an elliptic bar along its axis, narrowest at the isthmus and flaring
        # toward the body and the posterior elements
        c = v.pedicle_isthmus(side)
        d = v.pedicle_direction(side)  # anteromedial
        lat = np.array([-d[1], d[0], 0.0])  # in the axial plane, perpendicular to the axis
        du, dv, dw = u - c[0], vv - c[1], w - c[2]
        t = -(du * d[0] + dv * d[1])  # + posterior
        xl = du * lat[0] + dv * lat[1]
        flare = 1.0 + np.minimum(0.35 * (t / 8.0) ** 2, 0.6)
        t_post = (0.55 * cd + 2.0) / np.cos(np.radians(v.ped_angle))
        sec = superellipse(xl, dw, v.ped_width / 2 * flare, v.ped_height / 2 * flare, 2.2)
        along = np.abs(t - (t_post - 12.0) / 2) - (t_post + 12.0) / 2
        out.append((P[f"pedicle {side}"], np.maximum(sec, along)))
        # superior articular process, facing the IAP of the vertebra above
        up = _neighbour(lay, v.name, -1)
        j = lay.facets.get((up, v.name, side))
        if j is not None:
            out.append((P[f"superior articular process {side}"],
                        _facet_slab(v, j, u, vv, w, -1, sap_thickness(v), v.ped_w,
                                    None)))
        low = _neighbour(lay, v.name, +1)
        j = lay.facets.get((v.name, low, side))
        if j is not None:
            out.append((P[f"inferior articular process {side}"],
                        _facet_slab(v, j, u, vv, w, +1, 5.5, None, -H / 2 + 6.0)))
        if v.kind != "sacrum" and v.tp_length > 0:
            base = [s * (cw / 2 + v.ped_width * 0.6), D / 2 + 0.6 * cd, v.ped_w]
            tip = [s * (cw / 2 + v.ped_width + v.tp_length), D / 2 + 0.6 * cd + 4.0,
                   v.ped_w + 1.0]
            hh = v.tp_half_height
            dist, _ = tube(u, vv, w, np.array([base, tip]),
                           np.array([[4.5, hh + 1.5], [3.2, hh]]), lateral_hint=(0, 1, 0))
            out.append((P[f"transverse process {side}"], dist))
    # lamina: a 6 mm plate (Wang 2024) roofing the canal, lower edge more posterior
    lam = 6.0
    half_u = cw / 2 + v.ped_width * 0.55
    # the two laminae meet at the midline like a roof, lower edge more posterior; the
    # gap they leave behind the canal holds the ligamentum flavum and epidural fat
    vl = D / 2 + 0.85 * cd + lam / 2 + 0.3 * np.clip(half_u - np.abs(u), 0, None) - 0.15 * w
    # from 4.5 mm below the body to 2.5 mm under its upper endplate; the sacrum's is lower,
    # or with the sacral slope its upper edge would rise onto L5's lamina and close the
    # L5-S1 interlaminar window (the usual route of IELD, DOMAIN.md; laminae never touch:
    # the ligamentum flavum spans the window between them)
    top = H / 2 - 2.5 - (SACRAL_LAMINA_DROP_MM if v.kind == "sacrum" else 0.0)
    bottom = -H / 2 - 4.5
    box = superellipse(u, w - (top + bottom) / 2, half_u, (top - bottom) / 2, 4.0)
    out.append((P["lamina"], np.maximum(np.abs(vv - vl) - lam / 2, box)))
    # spinous process: a hatchet-shaped plate sloping down as it runs back
    v0 = D / 2 + cd - 1.0  # starts inside the laminar roof so the two blend
    v1 = D / 2 + cd + lam + v.sp_length
    slope = 0.55 if v.kind == "thoracic" else 0.2
    wc = -4.0 - slope * np.maximum(vv - v0, 0)
    half_t = 4.5 if v.kind != "sacrum" else 3.0
    hh = 9.0 if v.kind != "sacrum" else 6.0
    out.append((P["spinous process"],
                superellipsoid(u, vv - (v0 + v1) / 2, w - wc, half_t, (v1 - v0) / 2, hh, 3.0)))
    if v.kind == "sacrum":
        for side in SIDES:
            s = SIDE_SIGN[side]
            out.append((P[f"sacral ala {side}"],
                        superellipsoid(u - s * 34.0, vv - 4.0, w + 4.0, 20.0, 16.0, 16.0, 2.6)))
        # S2–S5: tapering, curving forward (sacral kyphosis); its back holds the sacral canal
        pts = np.array([[0, 8.0, -10.0], [0, 8.0, -34.0], [0, 2.0, -58.0], [0, -8.0, -80.0]])
        rad = np.array([[44.0, 20.0], [36.0, 17.0], [24.0, 12.0], [14.0, 8.0]])
        dist, _ = tube(u, vv, w, pts, rad, lateral_hint=(1, 0, 0), p=2.5)
        out.append((P["sacrum below S1"], dist))
    return out


def _neighbour(lay: Layout, name: str, step: int) -> Optional[str]:
    i = lay.order.index(name) + step
    if i < 0:
        return "T11"
    return lay.order[i] if i < len(lay.order) else None


def _facet_slab(v: VertebraSpec, joint, u, vv, w, sign: int, thick: float,
                w_bottom: Optional[float], w_top: Optional[float]):
    """A curved articular process on one side (``sign`` −1 SAP, +1 IAP) of a joint."""
    j = v.frame.point_to_local(joint.center)
    n = v.frame.vec_to_local(joint.normal)
    t = v.frame.vec_to_local(joint.tangent)
    du, dv, dw = u - j[0], vv - j[1], w - j[2]
    d = du * n[0] + dv * n[1] + dw * n[2]
    tt = du * t[0] + dv * t[1] + dw * t[2]
    # a gently C-shaped joint (lower lumbar facets are concave); both sides bend alike so
    # the gap stays FACET_GAP_MM wide
    d = d + 0.02 * tt**2
    lo = j[2] - joint.height / 2 if w_bottom is None else w_bottom
    hi = j[2] + joint.height / 2 if w_top is None else w_top
    dc = sign * (FACET_GAP_MM / 2 + thick / 2)
    return superellipsoid(d - dc, tt, w - (lo + hi) / 2, thick / 2, joint.length / 2,
                          max((hi - lo) / 2, 2.0), 3.0)


def paint_vertebra(cv: Canvas, lay: Layout, v: VertebraSpec) -> None:
    """Paint one vertebra (label, parts, cancellous bone) inside its bounding box."""
    ext_u = v.canal_width / 2 + v.ped_width + max(v.tp_length, 0) + 10.0
    if v.kind == "sacrum":
        ext_u = 60.0
    lo = [-ext_u, -v.depth / 2 - 4, -v.height / 2 - (92.0 if v.kind == "sacrum" else 20.0)]
    back = v.depth / 2 + v.canal_ap + 6 + v.sp_length + 14 + (30 if v.kind == "sacrum" else 0)
    hi = [ext_u, back, v.height / 2 + 40.0]
    blk = cv.grid.block(*frame_bounds(v.frame, lo, hi))
    if blk is None:
        return
    sl, X, Y, Z = blk
    u, vv, w = v.frame.to_local(X, Y, Z)
    fields = vertebra_fields(v, lay, u, vv, w)
    union = None
    best = None
    part = None
    for code, d in fields:
        if union is None:
            union, best = d, d
            part = np.full(d.shape, code, np.uint8)
        else:
            union = smin(union, d, 2.0)
            closer = d < best
            best = np.where(closer, d, best)
            part = np.where(closer, np.uint8(code), part)
    mask = union < 0
    cv.put(v.name, sl, mask, T["cancellous bone"])
    cv.parts[sl][mask] = part[mask]


def vertebra_distance(v: VertebraSpec, lay: Layout, pts_lps: np.ndarray) -> np.ndarray:
    """Blended distance (mm) of LPS points to a vertebra (negative inside)."""
    loc = v.frame.point_to_local(pts_lps)
    fields = vertebra_fields(v, lay, loc[:, 0], loc[:, 1], loc[:, 2])
    union = fields[0][1]
    for _, d in fields[1:]:
        union = smin(union, d, 2.0)
    return union


# --- the whole phantom --------------------------------------------------------------------
def label_name_list(lay: Layout) -> List[str]:
    """Every structure name in label-value order (value = index + 1)."""
    names = [nm for nm in lay.order]
    names += [d["name"] for d in lay.discs]
    names += ["spinal canal", "dural sac"]
    names += list(lay.roots)
    names += list(lay.ribs)
    names += ["ilium left", "ilium right", "psoas left", "psoas right",
              "paraspinal muscle left", "paraspinal muscle right", "aorta",
              "common iliac artery left", "common iliac artery right", "inferior vena cava",
              "common iliac vein left", "common iliac vein right", "kidney left",
              "kidney right", "bowel", "subcutaneous fat", "skin", "body"]
    return names


def paint_all(lay: Layout, grid: Grid, *, progress: Optional[ProgressCallback] = None,
              cancel: Optional[CancelToken] = None) -> Canvas:
    """Paint every structure of ``lay`` on ``grid``; returns the filled canvas."""
    progress = progress or no_progress
    cv = Canvas(grid, label_name_list(lay))
    steps: List[tuple] = [
        ("body outline", _paint_torso), ("organs", _paint_organs), ("bowel", _paint_bowel),
        ("muscles", _paint_muscles), ("vessels", _paint_vessels), ("ilium", _paint_ilium),
        ("discs", _paint_discs), ("vertebrae", _paint_spine), ("canal", _paint_canal),
        ("nerve roots", _paint_roots), ("cortical shell", _paint_shell),
    ]
    for i, (what, fn) in enumerate(steps):
        check(cancel)
        progress(i / len(steps), f"phantom: {what}")
        fn(cv, lay)
    return cv


def _paint_torso(cv: Canvas, lay: Layout) -> None:
    g = cv.grid
    nk, nj, ni = g.shape_kji
    x = (g.origin_lps[0] + g.spacing_mm[0] * np.arange(ni)).astype(np.float32)[None, :]
    y = (g.origin_lps[1] + g.spacing_mm[1] * np.arange(nj)).astype(np.float32)[:, None]
    zs = g.origin_lps[2] + g.spacing_mm[2] * np.arange(nk)
    vz = np.array([lay.vertebrae[nm].frame.origin[2] for nm in lay.order])
    # half-width: lower chest ≈ 160 mm, waist ≈ 152 mm, hips ≈ 172 mm (one average adult)
    prof_z = [vz[-1] - 60.0, vz[-1], vz[len(vz) // 2], vz[0], vz[0] + 40.0]
    prof_a = [175.0, 170.0, 152.0, 160.0, 162.0]
    bz, by = lay.back_skin[:, 0], lay.back_skin[:, 1]
    for k, z in enumerate(zs):
        a = float(np.interp(z, prof_z, prof_a))
        y_post = float(np.interp(z, bz, by))
        ap = 230.0
        yc = y_post - 0.42 * ap
        bp, ba = 0.42 * ap, 0.58 * ap
        dy = y - yc
        post = dy > 0
        b = np.where(post, bp, ba)
        pw = np.where(post, 3.0, 2.2)
        r = (np.abs(x / a) ** pw + np.abs(dy / b) ** pw) ** (1 / pw)
        skin = r <= 1.0
        # subcutaneous fat: ≈ 12 mm on the back, 28 mm at the flanks, 22 mm in front
        bi = np.where(post, bp - 14.0, ba - 24.0)
        ri = (np.abs(x / (a - 28.0)) ** pw + np.abs(dy / bi) ** pw) ** (1 / pw)
        inner = ri <= 1.0
        bm = np.where(post, bp - 14.0, ba - 36.0)
        rm = (np.abs(x / (a - 42.0)) ** pw + np.abs(dy / bm) ** pw) ** (1 / pw)
        cavity = rm <= 1.0
        lab = cv.labels[k]
        tis = cv.tissue[k]
        lab[skin] = cv.value["skin"]
        tis[skin] = T["skin"]
        # the skin is the outer ≈ 2 mm
        fat = (r <= 1.0 - 2.0 / np.minimum(a, b)) & skin
        lab[fat] = cv.value["subcutaneous fat"]
        tis[fat] = T["subcutaneous fat"]
        lab[inner] = cv.value["body"]
        tis[inner] = T["muscle"]  # the abdominal wall, overwritten inside the cavity
        inside = cavity & (dy < 0.3 * bp) | (inner & (dy >= 0.3 * bp))
        tis[inside] = T["visceral fat"]


def _ellipsoid_block(cv: Canvas, center, radii, axes=None):
    rmax = float(np.max(radii))
    c = np.asarray(center, float)
    blk = cv.grid.block(c - rmax, c + rmax)
    if blk is None:
        return None
    sl, X, Y, Z = blk
    ax = np.eye(3) if axes is None else np.asarray(axes, float)
    d = [X - c[0], Y - c[1], Z - c[2]]
    loc = [ax[i, 0] * d[0] + ax[i, 1] * d[1] + ax[i, 2] * d[2] for i in range(3)]
    r = sum((loc[i] / radii[i]) ** 2 for i in range(3))
    return sl, r, loc


def _paint_organs(cv: Canvas, lay: Layout) -> None:
    t12 = lay.vertebrae["T12"].frame.origin
    inside = cv.labels == cv.value["body"]
    # liver (right, reaching down to ≈ L2) and spleen (left, behind): context, label "body"
    for c, rad, tis in (((-80.0, t12[1] - 55.0, t12[2] + 20.0), (80.0, 75.0, 95.0), "liver"),
                        ((95.0, t12[1] + 10.0, t12[2] + 25.0), (28.0, 45.0, 55.0), "liver")):
        e = _ellipsoid_block(cv, c, rad)
        if e is None:
            continue
        sl, r, _ = e
        m = (r <= 1.0) & inside[sl]
        cv.tissue[sl][m] = T[tis]
    for side in SIDES:
        s = SIDE_SIGN[side]
        k = lay.kidney[side]
        # long axis tilted: upper pole medial and posterior; hilum facing anteromedially
        tz, tx = np.radians(15.0), np.radians(30.0)
        si = np.array([-s * np.sin(tz), np.sin(np.radians(10)), np.cos(tz)])
        si /= np.linalg.norm(si)
        lr = np.array([np.cos(tx), -s * np.sin(tx), 0.0])
        lr -= np.dot(lr, si) * si
        lr /= np.linalg.norm(lr)
        ap = np.cross(si, lr)
        axes = np.array([lr, ap, si])
        e = _ellipsoid_block(cv, k["center"], k["radii"], axes)
        if e is None:
            continue
        sl, r, loc = e
        m = r <= 1.0
        cv.put(f"kidney {side}", sl, m, T["kidney"])
        # renal sinus fat opening at the hilum (medial)
        sinus = m & (((loc[0] * s + 14.0) / 14.0) ** 2 + (loc[1] / 8.0) ** 2
                     + (loc[2] / 28.0) ** 2 <= 1.0)
        cv.tissue[sl][sinus] = T["renal sinus fat"]


def _paint_bowel(cv: Canvas, lay: Layout) -> None:
    vs = lay.vertebrae
    rng = np.random.default_rng(20240601)  # anatomy seed: fixed, independent of the noise seed
    lumbar = [nm for nm in lay.order if nm.startswith("L")]
    z_top = vs["L2"].frame.origin[2]
    z_bot = vs["S1"].frame.origin[2] - 45.0
    y_front = vs[lumbar[len(lumbar) // 2]].frame.origin[1] - 30.0
    y_ant = float(np.interp(vs["L3"].frame.origin[2], lay.back_skin[:, 0],
                            lay.back_skin[:, 1])) - 230.0
    loops = []
    zl1 = vs["L1"].frame.origin[2]
    # colon: ascending (right), transverse, descending (left), sigmoid
    loops.append(("colon", 21.0, np.array([
        [-105, y_front - 5, z_bot + 25], [-108, y_front - 10, z_top], [-80, y_ant + 45, zl1 - 5],
        [0, y_ant + 40, zl1 - 25], [80, y_ant + 45, zl1 - 5], [108, y_front, zl1]])))
    loops.append(("colon", 18.0, np.array([
        [108, y_front, zl1], [105, y_front - 5, z_bot + 40], [60, y_front - 40, z_bot + 5],
        [10, y_front - 10, z_bot]])))
    for _ in range(30):
        c = np.array([rng.uniform(-70, 70), rng.uniform(y_ant + 35, y_front - 15),
                      rng.uniform(z_bot + 10, z_top - 20)])
        pts = [c]
        d = rng.normal(size=3)
        for _ in range(2):
            d = d / np.linalg.norm(d)
            pts.append(pts[-1] + rng.uniform(30, 50) * d)
            d = d + rng.normal(size=3) * 0.9
        loops.append(("small", float(rng.uniform(11.0, 15.0)), np.array(pts)))
    cavity = (cv.labels == cv.value["body"]) & (cv.tissue == T["visceral fat"])
    for kind, r, pts in loops:
        pts = resample_polyline(pts, 10.0)
        res = tube_on_grid(cv.grid, pts, np.full(len(pts), r))
        if res is None:
            continue
        sl, d, _ = res
        _, X, Y, Z = cv.grid.block(*polyline_bounds(pts, r + 1.0))
        inside = (d < 0) & cavity[sl]
        cv.put("bowel", sl, inside, T["bowel wall"])
        lumen = inside & (d < -2.5)
        # supine: gas floats to the front (−y), above a horizontal fluid level
        level = float(np.mean(pts[:, 1])) - (0.2 if kind == "colon" else 0.45) * r
        gas = lumen & (Y < level) & (rng.uniform() < (0.9 if kind == "colon" else 0.55))
        cv.tissue[sl][lumen] = T["stool"] if kind == "colon" else T["bowel fluid"]
        cv.tissue[sl][gas] = T["gas"]
        if kind == "colon":
            # stool is mottled with small gas bubbles
            cell = (np.floor(X / 4.0) * 73856093.0 + np.floor(Y / 4.0) * 19349663.0
                    + np.floor(Z / 4.0) * 83492791.0)
            bub = lumen & (np.abs(np.sin(cell)) < 0.25) & ~gas
            cv.tissue[sl][bub] = T["gas"]


def _paint_tube(cv: Canvas, name: str, pts, radii, tissue: int, hint=(1, 0, 0), p=2.0,
                protect: Optional[Callable] = None, step: float = 6.0):
    pts = np.asarray(pts, float)
    radii = np.asarray(radii, float)
    if len(pts) > 2 and step:
        # smooth the path; radii follow by nearest control point
        fine = resample_polyline(pts, step)
        idx = np.array([np.argmin(np.linalg.norm(pts - q, axis=1)) for q in fine])
        cum = np.r_[0, np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))]
        cf = np.r_[0, np.cumsum(np.linalg.norm(np.diff(fine, axis=0), axis=1))]
        rr = np.stack([np.interp(cf / cf[-1] * cum[-1], cum, radii[:, k] if radii.ndim == 2
                                 else radii) for k in range(2)], axis=1)
        pts, radii = fine, rr
        del idx
    res = tube_on_grid(cv.grid, pts, radii, lateral_hint=hint, p=p)
    if res is None:
        return None
    sl, d, s = res
    m = d < 0
    prot = protect(sl) if protect else None
    cv.put(name, sl, m, tissue, protect=prot)
    return sl, d, s


def _paint_muscles(cv: Canvas, lay: Layout) -> None:
    body = cv.value["body"]
    for side in SIDES:
        pts, rad = lay.paraspinal[side]
        _paint_tube(cv, f"paraspinal muscle {side}", pts, rad, T["muscle"], p=2.0,
                    protect=lambda sl: cv.labels[sl] != body)
    for side in SIDES:
        pts, rad = lay.psoas[side]
        _paint_tube(cv, f"psoas {side}", pts, rad, T["muscle"])


def _paint_vessels(cv: Canvas, lay: Layout) -> None:
    art = T["artery"]
    vein = T["vein"]
    r = 10.0
    _paint_tube(cv, "inferior vena cava", lay.ivc, [[12.0, 8.5]] * len(lay.ivc), vein)
    for side in SIDES:
        _paint_tube(cv, f"common iliac vein {side}", lay.iliac_veins[side],
                    [[7.5, 6.5]] * len(lay.iliac_veins[side]), vein)
    rad = np.full(len(lay.aorta), r)
    rad[-1] = 8.0
    _paint_tube(cv, "aorta", lay.aorta, rad, art)
    for side in SIDES:
        a = lay.iliac_arteries[side]
        _paint_tube(cv, f"common iliac artery {side}", a, [6.5, 6.0, 5.5, 5.0], art)


def _paint_ilium(cv: Canvas, lay: Layout) -> None:
    for side in SIDES:
        il = ilium_geometry(lay, side)
        c = il["center"]
        A, B, C = il["radii"]
        lo = c - [A + 30, B + 30, C]
        hi = c + [A + 30, B + 30, 20]
        blk = cv.grid.block(lo, hi)
        if blk is None:
            continue
        sl, X, Y, Z = blk
        s = SIDE_SIGN[side]
        dx, dy, dz = (X - c[0]) * s, Y - c[1], Z - c[2]
        taper = np.sqrt(np.clip(1 - (dz / C) ** 2, 0.05, 1))
        rr = np.sqrt((dx / (A * taper)) ** 2 + (dy / (B * taper)) ** 2)
        dist = (rr - 1.0) * B * taper  # mm, roughly, from the wing's mid-surface
        theta = np.degrees(np.arctan2(dx, dy))  # 0 posterior, 90 lateral, 180 anterior
        crest = il["z_crest"] - 28.0 * ((theta - il["theta_top"]) / 90.0) ** 2
        sector = (theta > -15.0) & (theta < 150.0) & (Z <= crest)
        thick = 3.5 + 2.5 * np.clip((Z - crest + 15.0) / 15.0, 0, 1)  # thicker at the crest
        wing = sector & (np.abs(dist) < thick)
        post = ((X - il["post"][0]) / 16.0) ** 2 + ((Y - il["post"][1]) / 26.0) ** 2 + \
            ((Z - il["post"][2]) / 40.0) ** 2 <= 1.0
        bone = wing | post
        free = ~np.isin(cv.labels[sl], [cv.value[nm] for nm in ("skin", "subcutaneous fat")])
        # iliacus on the inner face, gluteal muscles on the outer face of the wing
        mus = sector & (dist > -18.0) & (dist < 22.0) & free & (Z > crest - 160)
        mus &= cv.labels[sl] == cv.value["body"]
        cv.tissue[sl][mus] = T["muscle"]
        cv.put(f"ilium {side}", sl, bone & free, T["cancellous bone"])


def ilium_geometry(lay: Layout, side: str) -> dict:
    """Parameters of one iliac wing (LPS mm): centre, radii, crest height, SI block."""
    s1 = lay.vertebrae["S1"]
    s = SIDE_SIGN[side]
    e = s1.to_lps([0, 0, s1.height / 2])  # S1 superior endplate centre
    z_crest = lay.crest_top[side][2]
    center = np.array([s * 38.0, e[1] - 15.0, z_crest - 10.0])
    return dict(center=center, radii=(88.0, 62.0, 125.0), z_crest=z_crest, theta_top=55.0,
                post=np.array([s * 60.0, e[1] + 22.0, e[2] - 30.0]))


def _paint_discs(cv: Canvas, lay: Layout) -> None:
    vs = lay.vertebrae
    for d in lay.discs:
        up, lo = vs[d["upper"]], vs[d["lower"]]
        f = d["frame"]
        blk = cv.grid.block(*frame_bounds(f, [-d["width"] / 2 - 3, -d["depth"] / 2 - 3, -20],
                                          [d["width"] / 2 + 3, d["depth"] / 2 + 3, 20]))
        if blk is None:
            continue
        sl, X, Y, Z = blk
        u, v, w = f.to_local(X, Y, Z)
        # between the two endplates (extended 1.5 mm into the concavities)
        above_lo = lo.frame.to_local(X, Y, Z)[2] - lo.height / 2
        below_up = up.frame.to_local(X, Y, Z)[2] + up.height / 2
        sec = superellipse(u, v, d["width"] / 2, d["depth"] / 2, 2.4)
        sec = np.maximum(sec, v - (d["depth"] / 2 - 1.0 + 2.0 * (u / (d["width"] / 2)) ** 2))
        m = (sec < 0) & (above_lo > -1.5) & (below_up < 1.5)
        cv.put(d["name"], sl, m, T["disc annulus"])
        nuc = m & (superellipse(u, v + 2.0, d["width"] * 0.3, d["depth"] * 0.28, 2.0) < 0)
        cv.tissue[sl][nuc] = T["disc nucleus"]


def _paint_spine(cv: Canvas, lay: Layout) -> None:
    for nm in lay.order:
        paint_vertebra(cv, lay, lay.vertebrae[nm])
    verts = [cv.value[nm] for nm in lay.order]
    for name, pts in lay.ribs.items():
        # the rib head abuts the vertebra; it never takes over its voxels
        _paint_tube(cv, name, pts, [[5.5, 8.0]] * len(pts), T["cancellous bone"],
                    hint=(0, 0, 1), step=4.0, protect=lambda sl: np.isin(cv.labels[sl], verts))
    # sacroiliac joints: keep a thin gap between the sacrum and the ilium
    s1v = cv.value["S1"]
    for side in SIDES:
        iv = cv.value[f"ilium {side}"]
        il = ilium_geometry(lay, side)
        blk = cv.grid.block(il["post"] - 60, il["post"] + 60)
        if blk is None:
            continue
        sl = blk[0]
        n_it = max(1, int(round(SI_GAP_MM / float(np.min(cv.grid.spacing_mm)))))
        near = ndimage.binary_dilation(cv.labels[sl] == s1v, iterations=n_it)
        gap = near & (cv.labels[sl] == iv)
        cv.labels[sl][gap] = cv.value["body"]
        cv.tissue[sl][gap] = T["visceral fat"]


def _paint_canal(cv: Canvas, lay: Layout) -> None:
    bone_vals = [cv.value[nm] for nm in lay.order]
    # ligamentum flavum: a 3 mm band behind the canal, where no lamina covers it
    rad = lay.canal_radii + 3.0
    res = tube_on_grid(cv.grid, lay.canal_path, rad, p=2.5)
    if res is None:
        return
    sl, d, _ = res
    _, X, Y, Z = cv.grid.block(*polyline_bounds(lay.canal_path, float(rad.max()) + 1.0))
    dc = np.full_like(d, 1e6)
    res = tube_on_grid(cv.grid, lay.canal_path, lay.canal_radii, p=2.5)
    dc[relative(res[0], sl)] = res[1]
    # "posterior" half: beyond the canal's centre along the local AP direction
    post = _posterior_of_path(X, Y, Z, lay.canal_path)
    flav = (d < 0) & (dc >= 0) & post & ~np.isin(cv.labels[sl], bone_vals)
    cv.tissue[sl][flav] = T["ligament"]
    canal = dc < 0
    cv.put("spinal canal", sl, canal, T["epidural fat"])
    _paint_tube(cv, "dural sac", lay.sac_path, lay.sac_radii, T["csf"], step=0)


def _posterior_of_path(X, Y, Z, path):
    """True where a point lies behind the canal centre line (y larger at that height)."""
    zz = path[:, 2]
    o = np.argsort(zz)
    yc = np.interp(Z, zz[o], path[o, 1])
    return Y > yc + 2.0


def _paint_roots(cv: Canvas, lay: Layout) -> None:
    keep = [cv.value[nm] for nm in list(lay.order) + ["dural sac"]] + \
           [cv.value[nm] for nm in lay.ribs] + [cv.value["ilium left"], cv.value["ilium right"]]
    for name, r in lay.roots.items():
        _paint_tube(cv, name, r["points"], r["radii"], T["nerve"], step=2.0,
                    protect=lambda sl: np.isin(cv.labels[sl], keep))


def _paint_shell(cv: Canvas, lay: Layout) -> None:
    """Mark the outer voxel layer of every bone as cortex (thin shell, partial volume)."""
    bone = cv.tissue == T["cancellous bone"]
    lab = cv.labels
    edge = np.zeros_like(bone)
    for ax in range(3):
        for sh in (1, -1):
            nb = np.roll(lab, sh, axis=ax)
            edge |= nb != lab
    cv.tissue[bone & edge] = T["cortical bone"]
