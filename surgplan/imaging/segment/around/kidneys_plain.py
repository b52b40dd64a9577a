"""Kidneys on CT without contrast: parenchyma inside the perirenal fat.

Unenhanced renal parenchyma reads ≈ 30 HU (ANATOMY.md), a little below muscle
(≈ 45 HU, less in fatty muscle) and the liver and spleen (≈ 55 HU), and the perirenal
fat outlines it.  So the kidney is looked for as the large soft-tissue body of
parenchyma density lateral to the psoas at T11–L3:

1. voxels of the smoothed CT in :data:`PARENCHYMA_HU`, beside the spine (lateral to
   the bodies, in front of the back muscles, no farther forward than the kidneys
   reach), not bone, vessel or anything already labelled;
2. an opening with a ball of :data:`OPEN_MM` (5 mm, else 3.5 mm) cuts the thin bridges
   partial volume makes to the liver, spleen, muscles and bowel;
3. per side, among the pieces of kidney size (:data:`KIDNEY_ML`) whose centre lies
   3.5–11 cm from the midline, the one that is most kidney for its place: its volume
   weighted by how near its centre lies to where the kidney's centre lies
   (:data:`CENTRE_U_MM`, :data:`CENTRE_V_MM`: the hilum ≈ 5 cm from the midline and
   the organ ≈ 5 cm wide, on the psoas and quadratus lumborum beside the bodies).
   The largest piece alone is not the kidney: the spleen's lower pole and rim (less
   dense than its bulk on a noisy 3 mm scan) and the colon's fluid-filled flexures
   reach the parenchyma band too, but lie farther out (the spleen posterolateral,
   against the ribs) or farther forward (the colon, in front of the kidney);
4. it is found again with the band closed :data:`OWN_HU` above its own median (the
   edges of the liver and muscles may bridge to it); its sinus (fat, pelvis and
   vessels opening medially) is filled by the convex hull of each slice where that
   adds no more than a sinus would, else by a closing; and it is grown to half-way
   between parenchyma and fat, never into tissue denser than the parenchyma band
   (the liver and spleen, ≈ 45–55 HU, touch the kidney without fat between).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull, QhullError


#: Unenhanced parenchyma (HU, smoothed with σ ≈ 1.5 mm): ≈ 30, noise and partial volume
#: around it; muscle (≈ 45) and liver (≈ 45–55 unenhanced) lie above, but for their edges.
PARENCHYMA_HU = (-5.0, 37.0)
#: Opening radii (mm), tried in turn: bridges thinner than ≈ 2 × the radius are cut.  The
#: larger one parts the kidney from the liver's partial-volume edge; a thin kidney (a large
#: sinus, atrophy) survives only the smaller.
OPEN_MM = (5.0, 3.5)
KIDNEY_ML = (40.0, 600.0)
#: A section whose centre lies this far (mm) behind the median section's is back muscle.
TAIL_MM = 12.0
#: Parenchyma reads no more than this above the median of the kidney first found (HU).
OWN_HU = 15.0
#: Lateral offset of the kidney's centre from the spine's midline (mm): a piece whose centre
#: lies outside this range is not the kidney.
CENTRE_U_RANGE_MM = (35.0, 110.0)
#: Where the kidney's centre usually lies, and how far it strays (mm): laterally the hilum
#: at ≈ 5 cm from the midline plus half the ≈ 5 cm width (ANATOMY.md); along ``v`` level
#: with the vertebral body's centre (the kidney lies on the psoas and quadratus lumborum,
#: beside the bodies and in front of the transverse processes).
CENTRE_U_MM, CENTRE_V_MM, CENTRE_SPREAD_MM = 75.0, 0.0, 20.0


def _hull_per_slice(m: np.ndarray, closed: np.ndarray) -> np.ndarray:
    """Per axial slice, the convex hull of ``m`` where it adds no more than a sinus would
    (≤ 35 % of the section), else ``closed`` (a closing, which bridges less)."""
    out = closed.copy()
    for k in np.nonzero(m.reshape(m.shape[0], -1).any(1))[0]:
        yx = np.argwhere(m[k])
        if len(yx) < 4 or np.linalg.matrix_rank(yx - yx.mean(0)) < 2:
            continue
        lo, hi = yx.min(0), yx.max(0) + 1
        yy, xx = np.mgrid[lo[0]:hi[0], lo[1]:hi[1]]
        try:
            eq = ConvexHull(yx).equations  # inside: n·p + d ≤ 0 for every facet
        except QhullError:
            continue
        pts = np.stack([yy.ravel(), xx.ravel()], 1).astype(float)
        inside = np.all(pts @ eq[:, :2].T + eq[:, 2] <= 1e-6, axis=1)
        if np.count_nonzero(inside) <= 1.35 * len(yx):
            out[k, lo[0]:hi[0], lo[1]:hi[1]] |= inside.reshape(yy.shape)
    return out


def plain_kidneys(hu_s: np.ndarray, spacing_mm: float, body: np.ndarray, free: np.ndarray,
                  zrange: np.ndarray, au: np.ndarray, av: np.ndarray, front_mm: np.ndarray,
                  half_width_mm: np.ndarray, canal_v_mm: np.ndarray, sides: tuple) -> dict:
    """``{side: mask}`` of the unenhanced kidneys found on the working grid.

    Parameters
    ----------
    hu_s : numpy.ndarray
        Smoothed CT (HU) on the working grid.
    spacing_mm : float
        Voxel edge of the working grid (mm).
    body, free : numpy.ndarray of bool
        Body outline; voxels not yet labelled (bone, discs, canal, vessels excluded).
    zrange : numpy.ndarray of bool
        ``(nz,)`` the slices at T11–L3 (and a margin) where kidneys are looked for.
    au, av : numpy.ndarray
        In-slice offsets from the spine curve (mm): left and posterior.
    front_mm, half_width_mm, canal_v_mm : numpy.ndarray
        ``(nz,)`` the body's front and half-width and the canal's offset per slice (mm).
    sides : tuple of str
        ``"left"`` and/or ``"right"``: the sides still to find.
    """
    s = spacing_mm
    ks = np.nonzero(zrange)[0]
    if len(ks) == 0 or not sides:
        return {}
    z0, z1 = int(ks.min()), int(ks.max()) + 1
    sl = slice(z0, z1)
    hu = ndi.gaussian_filter(hu_s[sl].astype(np.float32), 1.5 / s)
    a_u, a_v = au[sl], av[sl]
    fr = front_mm[sl, None, None]
    hw = half_width_mm[sl, None, None]
    cv = canal_v_mm[sl, None, None]
    # lateral to the bodies and the psoas beside them, in front of the back muscles (which lie
    # behind the transverse processes, at the canal's depth), behind the bowel
    region = (np.abs(a_u) > hw + 12.0) & (np.abs(a_u) < 140.0) & (a_v > fr - 50.0) \
        & (a_v < cv + 15.0)
    cand = (hu >= PARENCHYMA_HU[0]) & (hu <= PARENCHYMA_HU[1]) & body[sl] & free[sl] & region
    out = {}
    todo = list(sides)
    # noise leaves pinholes where parenchyma reads a little above the band: close them first
    img = sitk.BinaryMorphologicalClosing(sitk.GetImageFromArray(cand.astype(np.uint8)), [1] * 3)
    for open_mm in OPEN_MM:
        r = max(1, int(round(open_mm / s)))
        opened = sitk.GetArrayFromImage(sitk.BinaryMorphologicalOpening(img, [r] * 3)) > 0
        for side, m in _pick(opened, a_u, a_v, s, list(todo)).items():
            # the kidney's own density, then again with the band closed above it: the
            # liver's and muscles' edges read a little lower than their bulk and may bridge
            # to it; parenchyma reads within ≈ 15 HU of its median
            own = float(np.median(hu[m]))
            idx = np.nonzero(m)
            box = tuple(slice(max(int(v.min()) - r - 2, 0), int(v.max()) + r + 3) for v in idx)
            tight = (cand[box] & (hu[box] <= own + OWN_HU)).astype(np.uint8)
            again = np.zeros_like(m)
            again[box] = sitk.GetArrayFromImage(sitk.BinaryMorphologicalOpening(
                sitk.BinaryMorphologicalClosing(sitk.GetImageFromArray(tight), [1] * 3),
                [r] * 3)) > 0
            m2 = _pick(again & ndi.binary_dilation(m, iterations=1), a_u, a_v, s,
                       [side]).get(side)
            m = _drop_back_tail(m if m2 is None else m2, a_v, cv)
            out[side] = _finish(m, hu, body[sl] & free[sl] & region, r, hu_s.shape, sl, s,
                                own + OWN_HU)
            todo.remove(side)
        if not todo:
            break
    return out


def _drop_back_tail(m: np.ndarray, a_v: np.ndarray, cv: np.ndarray) -> np.ndarray:
    """Drop the slices whose section lies far behind the kidney's usual depth.

    The kidney lies on the psoas and quadratus lumborum, its sections' centres ≈ 2 cm in
    front of the canal; where parenchyma-density muscle (a fatty quadratus lumborum)
    touches a pole, the piece runs on behind it.  Sections whose centre lies more than
    :data:`TAIL_MM` behind the median section's are that muscle; what remains is the
    largest connected piece.
    """
    nz = m.shape[0]
    depth = np.full(nz, np.nan)
    for k in np.nonzero(m.reshape(nz, -1).any(1))[0]:
        depth[k] = float(a_v[k][m[k]].mean() - cv[k, 0, 0])
    ok = np.isfinite(depth)
    if ok.sum() < 3:
        return m
    back = ok & (depth > np.nanmedian(depth) + TAIL_MM)
    if not back.any():
        return m
    m = m & ~back[:, None, None]
    lab, n = ndi.label(m)
    if n > 1:
        m = lab == int(np.argmax(np.bincount(lab.ravel())[1:])) + 1
    return m


def _pick(cand: np.ndarray, a_u: np.ndarray, a_v: np.ndarray, s: float, sides: list) -> dict:
    """Per side, the piece of ``cand`` of kidney size that is most kidney for its place.

    Each piece centred 3.5–11 cm from the midline is scored by its volume times
    ``exp(-d² / 2σ²)``, ``d`` the distance (mm, in the slice's u-v plane) of its centre
    from where the kidney's centre usually lies (:data:`CENTRE_U_MM`,
    :data:`CENTRE_V_MM`), σ = :data:`CENTRE_SPREAD_MM`.  A piece at the usual place
    wins over a larger one 3–4 cm off it (the spleen's rim, a colonic flexure), while
    a kidney a little out of place still beats small scraps at the usual place.
    """
    lab, n = ndi.label(cand)
    out = {}
    if n == 0:
        return out
    vox_ml = s ** 3 / 1000.0
    flat = lab.ravel()
    count = np.bincount(flat, minlength=n + 1)[1:]
    ml = count * vox_ml
    u = np.bincount(flat, weights=a_u.ravel(), minlength=n + 1)[1:] / np.maximum(count, 1)
    v = np.bincount(flat, weights=a_v.ravel(), minlength=n + 1)[1:] / np.maximum(count, 1)
    fits = (ml >= KIDNEY_ML[0]) & (ml <= KIDNEY_ML[1])
    for side in sides:
        sgn = 1.0 if side == "left" else -1.0
        ok = fits & (sgn * u >= CENTRE_U_RANGE_MM[0]) & (sgn * u <= CENTRE_U_RANGE_MM[1])
        if ok.any():
            d2 = (sgn * u - CENTRE_U_MM) ** 2 + (v - CENTRE_V_MM) ** 2
            score = np.where(ok, ml * np.exp(-0.5 * d2 / CENTRE_SPREAD_MM ** 2), -1.0)
            out[side] = lab == int(np.argmax(score)) + 1
    return out


def _finish(m: np.ndarray, hu: np.ndarray, ok: np.ndarray, r: int, shape: tuple,
            sl: slice, s: float, top_hu: float) -> np.ndarray:
    """Sinus filled and surface grown back; on the whole working grid.

    ``top_hu`` is the densest parenchyma (HU, smoothed): the growth never enters
    denser tissue, so a liver or spleen lying on the kidney without fat between stays out.
    """
    # the parenchyma's own density, before the sinus (fat) is filled in
    own = float(np.median(hu[m]))
    # the renal sinus (fat, pelvis, vessels) opens medially, up to ≈ 3 cm wide: the
    # kidney is its convex hull in each slice (a bean's hull is the bean and its hilum)
    rc = max(1, int(round(10.0 / s)))
    idx = np.nonzero(m)
    box = tuple(slice(max(int(v.min()) - rc - 1, 0), int(v.max()) + rc + 2) for v in idx)
    sub = sitk.GetImageFromArray(m[box].astype(np.uint8))
    closed = np.zeros_like(m)
    closed[box] = ndi.binary_fill_holes(
        sitk.GetArrayFromImage(sitk.BinaryMorphologicalClosing(sub, [rc] * 3)) > 0,
        structure=np.array([[[0, 0, 0], [0, 0, 0], [0, 0, 0]], [[0, 1, 0], [1, 1, 1], [0, 1, 0]],
                            [[0, 0, 0], [0, 0, 0], [0, 0, 0]]], bool))
    m = _hull_per_slice(m, closed | m) & ok
    # the opening shaved the surface: grow back to half-way between parenchyma and fat
    half = 0.5 * (own + -95.0)
    idx = np.nonzero(m)
    box = tuple(slice(max(int(v.min()) - r - 2, 0), int(v.max()) + r + 3) for v in idx)
    grow = (hu[box] >= half) & (hu[box] <= top_hu) & ok[box]
    m[box] = ndi.binary_dilation(m[box], mask=grow | m[box], iterations=r + 1)
    full = np.zeros(shape, bool)
    full[sl] = m
    return full
