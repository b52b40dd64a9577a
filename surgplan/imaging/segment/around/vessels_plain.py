"""The great vessels on CT without contrast: blood-density tubes outlined by fat.

Unenhanced blood reads ≈ 35–55 HU, like muscle, so a threshold alone does not tell
the aorta from the psoas or a bowel loop; its shape and surroundings do.  The aorta
is a round 15–25 mm tube left-anterior of the vertebral bodies, the IVC a flatter one
right-anterior, the common iliac vessels 8–14 mm tubes diverging below the
bifurcation, and retroperitoneal fat (or the bone they lie on) surrounds them.  So,
on each axial slice of the working grid and for each vessel:

1. *Circle search.*  Every centre and radius in the vessel's range is scored by the
   fraction of a disk that holds blood density times the fraction of the 3 mm ring
   around it that does not (fat, bone, a calcified wall; partial-volume voxels count
   in proportion).  The disk sums are FFT convolutions over the box the vessel can
   occupy.
2. *Expected region.*  Only centres within a few centimetres of where the vessel is
   modelled from the vertebral bodies (:func:`vessels.modelled_vessels`, the figures
   of ``ANATOMY.md``) are candidates; the model says where to look, the image where
   the vessel is.
3. *Linking.*  The best few candidates of each slice are linked from slice to slice
   by dynamic programming (Viterbi): a tube moves little between slices and keeps its
   calibre, and a slice may hold no convincing section (a crossing vessel, the crura
   of the diaphragm around the aorta).  Short gaps are bridged by interpolation.
4. *Outline.*  Each found section is the blood-density region connected to the disk,
   no farther than a little more than its radius (the IVC is oval), never in bone.

The aortic bifurcation and the IVC confluence are where both common iliac sections
are found apart from each other: above them the trunk, below them the branches.
A vessel followed over less than half of its modelled length (:data:`MIN_COVER`) is
left to the model (:func:`vessels.segment_vessels` says so in the findings).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.fft import irfft2, next_fast_len, rfft2

from surgplan.imaging.segment.grid import WorkGrid

#: Unenhanced blood (smoothed HU): 35–55, with the partial volume of a thin wall.
BLOOD_HU = (15.0, 85.0)
#: Blood and fat (HU): a voxel bounds a vessel in proportion to how near fat it reads; above
#: :data:`WALL_HU` (bone, a calcified wall) it bounds it fully.
BLOOD_MID_HU, FAT_MID_HU = 45.0, -95.0
WALL_HU = 130.0
#: Width of the ring around a section that must be mostly not blood (mm).
RING_MM = 3.0
#: A section needs this much blood in its disk and this much non-blood in its ring.
MIN_FILL, MIN_RING = 0.85, 0.3
#: A section scoring more than this (fill × ring) is worth more than no section.
GAIN = 0.2
#: A vessel followed over less than this fraction of its modelled length is left to the model.
MIN_COVER = 0.5
#: Penalty on a section's score at the edge of its search radius around the model's centre.
PRIOR = 0.3


@dataclass(frozen=True)
class VesselSpec:
    """How one vessel is looked for: radii (mm) of its section, how far from the model's
    centre it may lie in a slice (mm), and how oval its outline may be (× radius)."""

    r_mm: tuple
    search_mm: float
    reach: float
    artery: bool


SPECS = {
    "aorta": VesselSpec((6.0, 13.5), 22.0, 1.35, True),
    "common iliac artery left": VesselSpec((3.5, 7.5), 16.0, 1.35, True),
    "common iliac artery right": VesselSpec((3.5, 7.5), 16.0, 1.35, True),
    "inferior vena cava": VesselSpec((5.0, 12.0), 22.0, 1.5, False),
    "common iliac vein left": VesselSpec((4.0, 8.5), 14.0, 1.6, False),
    "common iliac vein right": VesselSpec((4.0, 8.5), 14.0, 1.6, False),
}
BRANCHES = {"aorta": ("common iliac artery left", "common iliac artery right"),
            "inferior vena cava": ("common iliac vein left", "common iliac vein right")}
_BRANCH_OF = {b: t for t, bs in BRANCHES.items() for b in bs}


def _boundness(hu: np.ndarray, hard: np.ndarray) -> np.ndarray:
    """How much each voxel bounds a vessel, 0 (blood) … 1 (fat, bone, a calcified wall).

    Linear between blood (≈ 45 HU) and fat (≈ −95 HU): the voxels just outside a
    vessel hold both (partial volume) and count in proportion.
    """
    b = np.clip((BLOOD_MID_HU - hu) / (BLOOD_MID_HU - FAT_MID_HU), 0.0, 1.0)
    b[(hu > WALL_HU) | hard] = 1.0
    return b.astype(np.float32)


def _disk(r_vox: float) -> np.ndarray:
    n = int(np.ceil(r_vox))
    y, x = np.mgrid[-n:n + 1, -n:n + 1]
    return (x * x + y * y <= r_vox * r_vox).astype(np.float32)


def _section_scores(blood: np.ndarray, bound: np.ndarray, s: float, radii_mm: np.ndarray) -> tuple:
    """Best section score per voxel over ``radii_mm`` and the radius (mm) that gives it.

    The score of a disk centred on a voxel is its blood fraction times the boundness of the
    :data:`RING_MM` ring around it, zero unless the disk is ≥ :data:`MIN_FILL` blood and
    the ring ≥ :data:`MIN_RING` bounded.  Disk sums are products in Fourier space: each
    input is transformed once and every radius costs one inverse transform.
    """
    nz, ny, nx = blood.shape
    rmax = float(radii_mm.max()) / s + RING_MM / s
    pad = int(np.ceil(rmax)) + 1
    shape = (next_fast_len(ny + 2 * pad, real=True), next_fast_len(nx + 2 * pad, real=True))
    fb = rfft2(blood.astype(np.float32), s=shape, axes=(1, 2))
    fn = rfft2(np.asarray(bound, np.float32), s=shape, axes=(1, 2))
    cache: dict = {}

    def disk_sum(r_vox: float, f: np.ndarray, tag: str) -> tuple:
        key = (tag, round(r_vox, 3))
        if key not in cache:
            k = _disk(r_vox)
            h = k.shape[0] // 2
            ker = np.zeros(shape, np.float32)
            ker[:k.shape[0], :k.shape[1]] = k
            ker = np.roll(ker, (-h, -h), axis=(0, 1))  # centred: a "same" convolution
            out = irfft2(f * rfft2(ker)[None], s=shape, axes=(1, 2))[:, :ny, :nx]
            cache[key] = (out, float(k.sum()))
        return cache[key]

    best = np.zeros(blood.shape, np.float32)
    arg = np.zeros(blood.shape, np.float32)
    ring_vox = RING_MM / s
    for r in radii_mm:
        rv = r / s
        sb, ab = disk_sum(rv, fb, "b")
        sn0, a0 = disk_sum(rv, fn, "n")
        sn1, a1 = disk_sum(rv + ring_vox, fn, "n")
        fill = sb / ab
        ring = (sn1 - sn0) / max(a1 - a0, 1.0)
        sc = np.where((fill >= MIN_FILL) & (ring >= MIN_RING), fill * ring, 0.0)
        # among equal scores the larger disk fits the vessel: prefer it a little
        sc = (sc * (1.0 + 0.01 * r)).astype(np.float32)
        better = sc > best
        best[better] = sc[better]
        arg[better] = r
        cache.pop(("n", round(rv, 3)), None)  # the inner disk of this ring is not needed again
        cache.pop(("b", round(rv, 3)), None)
    return best, arg


def _centres(model: np.ndarray) -> np.ndarray:
    """``(nz, 2)`` in-slice centre (y, x index) of a modelled tube per slice, NaN where absent."""
    nz = model.shape[0]
    out = np.full((nz, 2), np.nan)
    for k in np.nonzero(model.reshape(nz, -1).any(1))[0]:
        yy, xx = np.nonzero(model[k])
        out[k] = yy.mean(), xx.mean()
    return out


def _viterbi(cands: list, s: float) -> list:
    """Link per-slice candidates ``[(score, y, x, r_mm), …]`` into one track.

    Returns the chosen candidate per slice (or None).  A section moves ≤ ≈ one voxel
    per slice without cost and keeps its radius; starting or ending a run costs a
    little, so that noise does not make one-slice tracks.
    """
    n = len(cands)
    if n == 0:
        return []
    start_cost = 0.25
    costs = []  # per slice: array of cost per state (state 0 = none)
    back = []
    prev_states = [None]
    prev_cost = np.array([0.0])
    for k in range(n):
        states = [None] + cands[k]
        cur = np.empty(len(states))
        bp = np.zeros(len(states), int)
        for j, st in enumerate(states):
            unary = 0.0 if st is None else -(st[0] - GAIN)
            best, arg = np.inf, 0
            for i, ps in enumerate(prev_states):
                if st is None and ps is None:
                    t = 0.0
                elif st is None or ps is None:
                    t = start_cost
                else:
                    d = np.hypot(st[1] - ps[1], st[2] - ps[2]) * s
                    t = 0.08 * max(0.0, d - 1.2 * s) ** 2 / s ** 2 + 0.05 * abs(st[3] - ps[3]) / s
                    if d > 4.0 * s:
                        t = np.inf
                c = prev_cost[i] + t
                if c < best:
                    best, arg = c, i
            cur[j] = best + unary
            bp[j] = arg
        costs.append(cur)
        back.append(bp)
        prev_states, prev_cost = states, cur
    # trace back
    j = int(np.argmin(costs[-1]))
    path = [None] * n
    for k in range(n - 1, -1, -1):
        states = [None] + cands[k]
        path[k] = states[j]
        j = back[k][j]
    return path


def _bridge(path: list, max_gap: int) -> list:
    """Fill gaps of ≤ ``max_gap`` slices between found sections by linear interpolation."""
    ks = [k for k, p in enumerate(path) if p is not None]
    out = list(path)
    for a, b in zip(ks[:-1], ks[1:]):
        if 1 < b - a <= max_gap + 1:
            pa, pb = np.array(path[a][1:]), np.array(path[b][1:])
            for k in range(a + 1, b):
                t = (k - a) / (b - a)
                y, x, r = pa + t * (pb - pa)
                out[k] = (0.0, y, x, r)
    return out


def _keep_runs(path: list, min_len: int) -> list:
    """Drop runs of found sections shorter than ``min_len`` slices."""
    out = list(path)
    k = 0
    while k < len(out):
        if out[k] is None:
            k += 1
            continue
        e = k
        while e < len(out) and out[e] is not None:
            e += 1
        if e - k < min_len:
            out[k:e] = [None] * (e - k)
        k = e
    return out


def track_vessel(best: np.ndarray, radius: np.ndarray, blood: np.ndarray, spec: VesselSpec,
                 centres: np.ndarray, s: float) -> list:
    """Per slice, the vessel's section ``(score, y, x, r_mm)`` or None.

    ``best`` and ``radius`` are :func:`_section_scores` on the same box as ``blood``;
    ``centres`` the model's centre per slice (NaN where it is not looked for).
    """
    nz, ny, nx = blood.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    nms = max(3, int(round(4.0 / s)) * 2 + 1)
    cands = []
    for k in range(nz):
        c = centres[k]
        if not np.all(np.isfinite(c)):
            cands.append([])
            continue
        window = np.hypot(yy - c[0], xx - c[1]) * s <= spec.search_mm
        sc = np.where(window & blood[k], best[k], 0.0)
        peak = (sc > 0) & (sc == ndi.maximum_filter(sc, size=nms))
        ys, xs = np.nonzero(peak)
        # the model's place is the likelier one: the psoas beside the upper lumbar bodies is
        # a fat-bounded tube of the same calibre and density as the IVC, farther back
        adj = sc[ys, xs] - PRIOR * (np.hypot(ys - c[0], xs - c[1]) * s / spec.search_mm) ** 2
        order = np.argsort(-adj)[:4]
        cands.append([(float(adj[j]), float(ys[j]), float(xs[j]),
                       float(radius[k, ys[j], xs[j]])) for j in order])
    path = _viterbi(cands, s)
    path = _bridge(path, int(round(6.0 / s)))
    return _keep_runs(path, int(round(15.0 / s)))


def _outline(path: list, blood: np.ndarray, allowed: np.ndarray, s: float,
             reach: float) -> np.ndarray:
    """The vessel's voxels in each slice where it was found (box coordinates)."""
    out = np.zeros(blood.shape, bool)
    ny, nx = blood.shape[1:]
    yy, xx = np.mgrid[0:ny, 0:nx]
    for k, p in enumerate(path):
        if p is None:
            continue
        _, y, x, r = p
        d = np.hypot(yy - y, xx - x) * s
        disk = (d <= r + 0.5 * s) & allowed[k]
        grow = blood[k] & (d <= reach * r + 0.5 * s) & allowed[k]
        lab, n = ndi.label(grow | disk)
        ids = np.unique(lab[disk])
        out[k] = np.isin(lab, ids[ids > 0]) if n else disk
    return out


def plain_vessels(hu_s: np.ndarray, grid: WorkGrid, taken: np.ndarray, body: np.ndarray,
                  model: dict) -> tuple:
    """Follow the unenhanced vessels near where ``model`` places them.

    Parameters
    ----------
    hu_s : numpy.ndarray
        Smoothed CT (HU) on the working grid.
    grid : WorkGrid
    taken : numpy.ndarray of bool
        Bone, discs and canal already labelled (never part of a vessel; they bound one).
    body : numpy.ndarray of bool
        Body outline on the working grid.
    model : dict
        ``{name: mask}`` modelled vessel tubes on the working grid (:func:`modelled_vessels`).

    Returns
    -------
    (dict, dict)
        ``{name: mask}`` of the vessels followed in the image, and ``{name: fraction}`` of
        the modelled length (slices) each covers.
    """
    s = grid.spacing_mm
    order = [n for n in SPECS if n in model and model[n].any()]
    found, cover = {}, {}
    if not order:
        return found, cover
    allowed = body & ~taken
    arteries = np.zeros(grid.shape, bool)
    paths, boxes = {}, {}
    ext = int(round(20.0 / s))
    for n in order:
        spec = SPECS[n]
        # the box the vessel is looked for in: the model's slices (the trunk may end lower and
        # the branches start higher than the model says) and its centres ± the search radius
        pad = int(np.ceil((spec.search_mm + spec.r_mm[1] + RING_MM) / s)) + 1
        idx = np.nonzero(model[n])
        z0, z1 = int(idx[0].min()), int(idx[0].max()) + 1
        # (array axis 0 runs caudal → cranial)
        z0, z1 = (z0, min(z1 + ext, grid.shape[0])) if n in _BRANCH_OF else (max(z0 - ext, 0), z1)
        box = (slice(z0, z1),) + tuple(
            slice(max(int(idx[a].min()) - pad, 0), min(int(idx[a].max()) + pad + 1, grid.shape[a]))
            for a in (1, 2))
        boxes[n] = box
        cen = _centres(model[n][box])
        ks = np.nonzero(np.isfinite(cen[:, 0]))[0]
        cen[:ks.min()] = cen[ks.min()]
        cen[ks.max() + 1:] = cen[ks.max()]
        hu = hu_s[box]
        bone = ndi.binary_dilation(taken[box], iterations=1)
        blood = (hu >= BLOOD_HU[0]) & (hu <= BLOOD_HU[1]) & allowed[box] & ~bone
        hard = bone | ~body[box]
        if not spec.artery:  # a vein beside an artery of the same density: the artery bounds it
            blood &= ~arteries[box]
            hard |= arteries[box]
        radii = np.arange(spec.r_mm[0], spec.r_mm[1] + 0.01, 1.5)
        best, radius = _section_scores(blood, _boundness(hu, hard), s, radii)
        paths[n] = (track_vessel(best, radius, blood, spec, cen, s), blood)
        if spec.artery:
            arteries[box] |= _outline(paths[n][0], blood, allowed[box], s, spec.reach)
    # the fork: the highest slice where both branches are found apart from each other
    def covered(n: str) -> float:
        m = model[n][boxes[n]]
        modelled_k = m.reshape(m.shape[0], -1).any(1)
        found_k = np.array([p is not None for p in paths[n][0]])
        return float(np.count_nonzero(found_k & modelled_k)) / max(np.count_nonzero(modelled_k), 1)

    for trunk, (left, right) in BRANCHES.items():
        if trunk not in paths:
            continue
        pt, zt = paths[trunk][0], boxes[trunk][0].start
        k_fork = None
        if all(n in paths and covered(n) >= MIN_COVER for n in (left, right)):
            pl, pr = paths[left][0], paths[right][0]
            zl, zr = boxes[left][0].start, boxes[right][0].start
        else:
            pl = pr = []
            zl = zr = 0
        for z in range(max(zl, zr), min(zl + len(pl), zr + len(pr))):
            a, b = pl[z - zl], pr[z - zr]
            if a is not None and b is not None and \
                    np.hypot(a[1] - b[1] + (boxes[left][1].start - boxes[right][1].start),
                             a[2] - b[2] + (boxes[left][2].start - boxes[right][2].start)) * s \
                    > a[3] + b[3]:
                k_fork = z
        if k_fork is None:
            # the branches were not followed: the trunk ends where the model ends it, not on
            # whichever branch it was followed into
            z_end = int(np.nonzero(model[trunk].reshape(model[trunk].shape[0], -1).any(1))[0][0])
            for z in range(zt, min(z_end, zt + len(pt))):
                pt[z - zt] = None
            continue
        for z in range(zt, min(k_fork + 1, zt + len(pt))):
            pt[z - zt] = None
        for br, z0 in ((left, zl), (right, zr)):
            p = paths[br][0]
            for z in range(max(k_fork + 1, z0), z0 + len(p)):
                p[z - z0] = None
    for n, (path, blood) in paths.items():
        box = boxes[n]
        mask = _outline(path, blood, allowed[box], s, SPECS[n].reach)
        m = model[n][box]
        modelled_k = m.reshape(m.shape[0], -1).any(1)
        found_k = mask.reshape(mask.shape[0], -1).any(1)
        cover[n] = float(np.count_nonzero(found_k & modelled_k)) / max(
            np.count_nonzero(modelled_k), 1)
        full = np.zeros(grid.shape, bool)
        full[box] = mask
        found[n] = full
    return found, cover


def complete_from_model(found: np.ndarray, model: np.ndarray, cover: float,
                        part: str = "trunk") -> tuple:
    """``(mask, note)``: the vessel as followed, continued by the model where it was not seen.

    In each slice the model holds but the image did not show the vessel (the crura of
    the diaphragm around the aorta, a vessel crossing it), the model's section is moved
    by the offset between the found and modelled centres in the nearest slice where both
    exist, so the no-go zone has no hole and stays on the vessel's course.  A trunk
    (``part="trunk"``) is not continued below where it was found, nor a branch
    (``part="branch"``) above: the image placed the fork there.
    """
    out = found.copy()
    nz = found.shape[0]
    f_k = found.reshape(nz, -1).any(1)
    m_k = model.reshape(nz, -1).any(1)
    both = np.nonzero(f_k & m_k)[0]
    todo = np.nonzero(m_k & ~f_k)[0]
    if len(both):
        todo = todo[todo > both.min()] if part == "trunk" else todo[todo < both.max()]
    if len(both) == 0 or len(todo) == 0:
        return out, (f"followed in the image (blood density outlined by fat) over "
                     f"{100 * cover:.0f} % of its modelled length")
    fc, mc = _centres(found), _centres(model)
    for k in todo:
        j = both[np.argmin(np.abs(both - k))]
        dy, dx = (int(round(v)) for v in fc[j] - mc[j])
        out[k] |= ndi.shift(model[k], (dy, dx), order=0, mode="constant", cval=False)
    return out, (f"followed in the image (blood density outlined by fat) over {100 * cover:.0f} % "
                 "of its modelled length; the rest is the modelled no-go zone moved onto the "
                 "course found")
