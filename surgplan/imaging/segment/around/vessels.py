"""Great vessels in front of the lumbar spine: segmented where the image shows them
(with contrast, or as unenhanced blood outlined by fat), modelled from anatomy where it
does not.

*Segmented.*  With arterial contrast the aorta is the brightest non-bone tube
(290–360 HU) in front of the vertebral bodies, a little to the left; it divides at
the bifurcation (usually at L4) into the common iliac arteries.  Opacified veins
(portal phase ≈ 150 HU; in an arterial phase the IVC is only ≈ 90–100 HU) form the
IVC on the right and the common iliac veins below its confluence.  Each is the
connected bright region grown from the expected position beside the body, confined
to a corridor in front of the spine; the bifurcation is the highest slice below
which the arterial tree is two separate sections.

*Unenhanced.*  Without contrast the vessels are blood-density tubes outlined by fat:
:mod:`surgplan.imaging.segment.around.vessels_plain` follows each near where the model below
places it, and a vessel followed over at least half its modelled length is
``segmented`` (continued by the model, moved onto its course, where it was not seen).

*Modelled.*  Where the image does not show a vessel, it becomes a
no-go tube placed from the vertebral bodies found in the image, with the figures of
``/work/shared/ANATOMY.md``: the aorta left anterolateral and the IVC right
anterolateral, 1–3 mm in front of the bodies and discs; the aortic bifurcation at
the lower third of L4; the IVC confluence one segment lower, at the upper third of
L5; the common iliac arteries 3–8 mm in front of L5-S1 and the veins behind and
medial to them, on the bone.  Radii are those of an average adult: aorta 10 mm (infrarenal
diameter ≈ 2 cm), IVC 10 mm, common iliac arteries 6 mm, veins 7 mm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from surgplan.imaging.segment.grid import WorkGrid
from surgplan.imaging.segment.spine_frame import SliceFrames
from surgplan.imaging.segment.around.vessels_plain import MIN_COVER, complete_from_model, plain_vessels

#: Opacified artery (HU, smoothed): arterial phase 290–360, blurred at its wall.
ARTERY_HU = 200.0
#: Opacified vein (HU, smoothed): above muscle/unenhanced blood (40–50) and discs (60–80).
VEIN_HU = 85.0
#: Modelled radii (mm) and gaps to the bone (mm).
AORTA_R_MM, IVC_R_MM, CIA_R_MM, CIV_R_MM = 10.0, 10.0, 6.0, 7.0
#: Length of the common iliac vessels followed below the fork (mm): 4–6 cm in adults,
#: counted from where the two lumina part, ≈ 1 cm below the bifurcation at 1.5 mm voxels.
COMMON_ILIAC_MM = 65.0
AORTA_GAP_MM = 2.0  # artery–disc 1–3 mm at L1/2–L3/4 (Kot 2022)
CIA_GAP_MM = 5.0  # common iliacs 3–8 mm
#: The common iliac veins lie on the L5 body and the L5-S1 disc, behind the arteries (the
#: left one is pressed against L5 by the right artery): no gap.
CIV_GAP_MM = 0.0
SOURCE = ("ANATOMY.md: aorta left and IVC right anterolateral, 1–3 mm from the discs "
          "(Kot 2022); bifurcation at L4 (55–70 %), confluence 1–2 segments lower (CTA n=100)")


@dataclass
class VesselResult:
    """Vessel masks on the working grid: ``{name: (mask, provenance, notes)}`` and findings."""

    masks: dict = field(default_factory=dict)
    findings: list = field(default_factory=list)


def _seed_section(cand: np.ndarray, window: np.ndarray, px: float, area_mm2: tuple):
    """The component of ``cand`` (2D) that best fills ``window``, within ``area_mm2``."""
    lab, n = ndi.label(cand)
    if n == 0:
        return None
    hits = np.bincount(lab[window & cand], minlength=n + 1)
    sizes = np.bincount(lab.ravel(), minlength=n + 1) * px
    hits[0] = 0
    hits[(sizes < area_mm2[0]) | (sizes > area_mm2[1])] = 0
    if hits.max() == 0:
        return None
    return lab == int(np.argmax(hits))


def _track(cand: np.ndarray, k0: int, start: np.ndarray, px: float, max_mm2: float,
           ok: np.ndarray) -> np.ndarray:
    """Follow a tube slice by slice up and down from ``start`` (slice ``k0``).

    In each slice the sections of ``cand`` that touch the previous slice's sections are
    kept, each no larger than ``max_mm2`` (a larger one is bone or an organ the vessel
    touches there: the branch stops).  ``ok`` marks the slices that may be entered.
    """
    out = np.zeros(cand.shape, bool)
    out[k0] = start
    for step in (1, -1):
        prev = start
        k = k0 + step
        gap = 0
        while 0 <= k < cand.shape[0] and ok[k]:
            lab, n = ndi.label(cand[k])
            sizes = np.bincount(lab.ravel(), minlength=n + 1) * px
            ids = np.zeros(0, int)
            # look close first; where a crossing vessel hides the section, a little wider
            for reach in (2, 5):
                near = ndi.binary_dilation(prev, iterations=reach)
                ids = np.unique(lab[near & cand[k]])
                ids = ids[(ids > 0)]
                ids = ids[sizes[ids] <= max_mm2]
                if len(ids):
                    break
            if len(ids) == 0:
                # a slice or two may miss the lumen (a crossing artery, noise)
                gap += 1
                if gap > 2:
                    break
                k += step
                continue
            gap = 0
            prev = np.isin(lab, ids)
            out[k] = prev
            k += step
    return out


def _to_half_max(tube: np.ndarray, hu_s: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Grow a lumen found with a strict threshold out to its wall: one voxel into
    neighbours brighter than half-way between the lumen and fat (−100 HU)."""
    if not tube.any():
        return tube
    half = 0.5 * (float(np.median(hu_s[tube])) - 100.0)
    ring = ndi.binary_dilation(tube) & ~tube & allowed & (hu_s >= half)
    return tube | ring


def _split_below_fork(tree: np.ndarray, frames: SliceFrames, grid: WorkGrid, min_mm2: float):
    """(trunk, left, right, k_fork): split a vessel tree at the highest slice below which
    the slices hold two separate sections, one each side of the curve."""
    nz = tree.shape[0]
    px = grid.spacing_mm ** 2
    two = np.zeros(nz, bool)
    for k in range(nz):
        if not tree[k].any():
            continue
        lab, n = ndi.label(tree[k])
        if n < 2:
            continue
        sizes = np.bincount(lab.ravel())[1:] * px
        a_u, _ = frames.in_slice(grid, k)
        big = [i + 1 for i in range(n) if sizes[i] >= min_mm2]
        sides = {float(a_u[lab == i].mean()) > 0 for i in big}
        two[k] = len(sides) == 2
    present = np.nonzero(tree.reshape(nz, -1).any(1))[0]
    if len(present) == 0:
        return tree, np.zeros_like(tree), np.zeros_like(tree), None
    # the fork: the top of the lowest run of two-sided slices (≥ 4 slices long); a slice or
    # two where noise bridges or breaks the sections does not end a run
    two = ndi.binary_closing(two, structure=np.ones(5, bool)) | two
    k_fork = None
    run = 0
    for k in range(present.min(), present.max() + 1):
        run = run + 1 if two[k] else 0
        if run >= 4:
            k_fork = k
        elif run == 0 and k_fork is not None:
            break
    if k_fork is None:
        return tree, np.zeros_like(tree), np.zeros_like(tree), None
    # Just below the fork the two lumina still touch (one figure-of-eight section): the
    # fork is where the trunk's section starts to widen sideways beyond its usual shape
    k_fork_lumina = k_fork
    ratio = np.full(nz, np.nan)
    for k in range(k_fork + 1, present.max() + 1):
        if tree[k].sum() >= 5:
            a_u, a_v = frames.in_slice(grid, k)
            ev = np.linalg.eigvalsh(np.cov(np.stack([a_u[tree[k]], a_v[tree[k]]])))
            ratio[k] = np.sqrt(ev[1] / max(ev[0], 1e-6))
    usual = np.nanmedian(ratio[k_fork + int(round(20.0 / grid.spacing_mm)):]) \
        if np.isfinite(ratio[k_fork + int(round(20.0 / grid.spacing_mm)):]).any() else np.nan
    if np.isfinite(usual):
        k = k_fork + 1
        while k <= min(present.max(), k_fork_lumina + int(round(25.0 / grid.spacing_mm))) \
                and ratio[k] >= 1.25 * usual:
            k_fork = k
            k += 1
    trunk = tree.copy()
    trunk[:k_fork + 1] = False
    left = np.zeros_like(tree)
    right = np.zeros_like(tree)
    # the common iliac vessels are ≈ 4–6 cm long: below that they are the external and
    # internal iliacs, which run into the pelvis away from the spine
    k_end = max(0, k_fork_lumina - int(round(COMMON_ILIAC_MM / grid.spacing_mm)))
    for k in range(k_end, k_fork + 1):
        if not tree[k].any():
            continue
        a_u, _ = frames.in_slice(grid, k)
        lab, n = ndi.label(tree[k])
        if n == 1:  # the figure-of-eight above the parting: split at its middle
            mid = float(a_u[tree[k]].mean())
            left[k] |= tree[k] & (a_u > mid)
            right[k] |= tree[k] & (a_u <= mid)
            continue
        for i in range(1, n + 1):
            m = lab == i
            (left if float(a_u[m].mean()) > 0 else right)[k] |= m
    return trunk, left, right, k_fork


def _find_tube(cand: np.ndarray, window: np.ndarray, levels: np.ndarray, ok: np.ndarray,
               px: float, area_mm2: tuple, max_mm2: float) -> np.ndarray:
    """A tube of ``cand`` through ``window`` at the slices ``levels``; empty if none."""
    ks = np.nonzero(levels)[0]
    if len(ks) == 0:
        return np.zeros(cand.shape, bool)
    # start at the middle slice of the levels where the window holds a plausible section
    for k0 in sorted(ks, key=lambda k: abs(k - int(np.median(ks)))):
        start = _seed_section(cand[k0], window[k0], px, area_mm2)
        if start is not None:
            return _track(cand, k0, start, px, max_mm2, ok)
    return np.zeros(cand.shape, bool)


def segment_vessels(hu_s: np.ndarray, grid: WorkGrid, frames: SliceFrames, taken: np.ndarray,
                    body: np.ndarray, names: tuple, au: np.ndarray, av: np.ndarray,
                    segs: list, vertebrae=None) -> VesselResult:
    """Aorta, IVC and common iliac vessels on the working grid.

    Parameters
    ----------
    hu_s : numpy.ndarray
        Smoothed CT (HU) on the working grid.
    grid : WorkGrid
    frames : SliceFrames
        The spine frame per slice.
    taken : numpy.ndarray of bool
        Bone and structures already labelled (never overwritten).
    body : numpy.ndarray of bool
        Body outline on the working grid.
    names : tuple of str
        Names of the segments (caudal → cranial; ``""`` when unnamed).
    au, av : numpy.ndarray
        In-slice offsets of every voxel from the curve (mm), from ``frames.offsets``.
    segs : list of Segment
    vertebrae : numpy.ndarray, optional
        Segment index per voxel (1-based): the bodies the modelled vessels are placed on.
    """
    out = VesselResult()
    s = grid.spacing_mm
    px = s * s
    seg = frames.segment
    lumbar = np.isin(seg, [i + 1 for i, n in enumerate(names) if n.startswith("L")])
    below_curve = np.arange(len(seg)) < np.argmax(frames.on_curve)
    lower = np.isin(seg, [i + 1 for i, n in enumerate(names) if n in ("L4", "L5", "L6", "S1")]) \
        | below_curve
    upper = lumbar & ~lower
    fr = frames.front_mm[:, None, None]
    # corridor in front of the spine: up to 60 mm ahead of the body, 50 mm to each side
    # (75 mm from L4 down, where the iliac vessels diverge over the pelvic brim); it ends
    # 3 mm behind the body's front, so that bone the vertebra step left unlabelled (a
    # sacrum it did not reach) is not taken for an opacified vessel
    lat = np.where(lower[:, None, None], 75.0, 50.0)
    corridor = body & ~ndi.binary_dilation(taken, iterations=1) & (np.abs(au) < lat) \
        & (av < fr + 3.0) & (av > fr - 60.0)
    ok = frames.on_curve | below_curve
    art = corridor & (hu_s >= ARTERY_HU)
    # the aorta beside L1–L3, left anterolateral: a section of ≈ 1–10 cm²
    window = (au > -20.0) & (au < 35.0) & (av < fr)
    tree = _find_tube(art, window, upper, ok, px, (60.0, 1000.0), 1200.0)
    min_len = 30.0 / s
    if np.count_nonzero(tree.reshape(tree.shape[0], -1).any(1)) >= min_len:
        tree = _to_half_max(tree, hu_s, corridor)
        trunk, left, right, k_fork = _split_below_fork(tree, frames, grid, 20.0)
        note = "opacified lumen (≥ %.0f HU)" % ARTERY_HU
        out.masks["aorta"] = (trunk, "segmented", note)
        if k_fork is not None:
            out.masks["common iliac artery left"] = (left, "segmented", note)
            out.masks["common iliac artery right"] = (right, "segmented", note)
            lvl = names[seg[k_fork] - 1] if seg[k_fork] else "below the curve"
            out.findings.append(f"aortic bifurcation at {lvl} (segmented)")
        arteries = ndi.binary_dilation(tree, iterations=1)
        # opacified veins: the IVC right anterolateral, found beside L1–L3
        ven = corridor & (hu_s >= VEIN_HU) & (hu_s < ARTERY_HU) & ~arteries
        ven = ndi.binary_opening(ven, structure=ndi.generate_binary_structure(3, 1))
        vwin = (au < -5.0) & (au > -50.0) & (av < fr)
        vtree = _find_tube(ven, vwin, upper, ok, px, (80.0, 1200.0), 1400.0)
        if np.count_nonzero(vtree.reshape(vtree.shape[0], -1).any(1)) >= min_len:
            vtree = _to_half_max(vtree, hu_s, corridor & ~arteries)
            trunk, left, right, k_conf = _split_below_fork(vtree, frames, grid, 20.0)
            vnote = f"opacified lumen ({VEIN_HU:.0f}–{ARTERY_HU:.0f} HU)"
            out.masks["inferior vena cava"] = (trunk, "segmented", vnote)
            if k_conf is not None:
                out.masks["common iliac vein left"] = (left, "segmented", vnote)
                out.masks["common iliac vein right"] = (right, "segmented", vnote)
        else:
            out.findings.append("the veins are not opacified (arterial phase): the IVC and common "
                                "iliac veins are modelled from the vertebral bodies")
        unenhanced = False
    else:
        unenhanced = True
    missing = [n for n in ("aorta", "inferior vena cava", "common iliac artery left",
                           "common iliac artery right", "common iliac vein left",
                           "common iliac vein right") if n not in out.masks]
    if missing:
        model, why = modelled_vessels(grid, segs, names, frames, taken, body, vertebrae)
        if why:
            out.findings.append(why)
        seen, cover = {}, {}
        if unenhanced and model:
            # without contrast the vessels are blood-density tubes in the retroperitoneal fat
            seen, cover = plain_vessels(hu_s, grid, taken, body,
                                           {n: model[n] for n in missing if n in model})
        followed, left = [], []
        for n in missing:
            if n in seen and cover[n] >= MIN_COVER:
                mask, note = complete_from_model(seen[n], model[n], cover[n],
                                                 "branch" if "common" in n else "trunk")
                out.masks[n] = (mask, "segmented", note)
                followed.append(n)
            elif n in model and model[n].any():
                out.masks[n] = (model[n], "modelled", "modelled no-go zone; " + SOURCE)
                left.append(n)
        if unenhanced:
            msg = ("no contrast-filled aorta in front of the spine (a CT without contrast, or a "
                   "late phase)")
            if followed:
                msg += ": followed as blood-density tubes in the fat: " + ", ".join(followed)
            if left:
                msg += ("; " if followed else ": ") + "not seen in the image, so modelled no-go " \
                    "zones from the vertebral bodies (ANATOMY.md): " + ", ".join(left)
            out.findings.append(msg)
            if {"aorta", "common iliac artery left", "common iliac artery right"} <= set(followed):
                # both branches followed: the trunk ends where they part (else at the model's fork)
                zs = np.nonzero(out.masks["aorta"][0].reshape(grid.shape[0], -1).any(1))[0]
                k = int(zs.min())
                lvl = names[seg[k] - 1] if seg[k] else "below the curve"
                out.findings.append(f"aortic bifurcation at {lvl} (followed without contrast)")
    return out


# --- modelled vessels --------------------------------------------------------------------------
def _body_front(sg, n: int, vertebrae, grid: WorkGrid, frames: SliceFrames) -> float:
    """Offset (mm, < 0) of the body's anterior surface from its centre along the segment's
    own posterior axis: measured on its label near the mid-sagittal line, where the
    sacrum's tilt would make an axial slice misleading; else from the axial slices."""
    if vertebrae is not None:
        zyx = np.argwhere(vertebrae == n)
        if len(zyx):
            d = grid.index_to_lps(zyx) - sg.centre_lps
            near = (np.abs(d @ sg.t) < 6.0) & (np.abs(d @ sg.u) < 10.0)
            if np.count_nonzero(near) >= 10:
                return float(np.percentile(d[near] @ sg.v, 2))
    k = int(np.argmin(np.abs(frames.z_mm - sg.centre_lps[2])))
    return float(frames.front_mm[k])


def _tube(grid: WorkGrid, pts: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Voxels of ``grid`` within the linearly varying radius of a polyline (LPS mm)."""
    out = np.zeros(grid.shape, bool)
    rmax = float(np.max(radii))
    lo = np.floor(grid.lps_to_index(pts.min(0) - rmax)).astype(int)
    hi = np.ceil(grid.lps_to_index(pts.max(0) + rmax)).astype(int) + 1
    # lps_to_index returns (z, y, x); min/max may swap per axis
    a, b = np.minimum(lo, hi), np.maximum(lo, hi)
    a = np.clip(a, 0, np.array(grid.shape))
    b = np.clip(b, 0, np.array(grid.shape))
    if np.any(b <= a):
        return out
    zz, yy, xx = np.meshgrid(*[np.arange(a[i], b[i]) for i in range(3)], indexing="ij")
    q = grid.index_to_lps(np.stack([zz, yy, xx], -1).reshape(-1, 3))
    best = np.full(len(q), np.inf)
    for p0, p1, r0, r1 in zip(pts[:-1], pts[1:], radii[:-1], radii[1:]):
        d = p1 - p0
        L2 = float(d @ d) or 1e-9
        t = np.clip((q - p0) @ d / L2, 0.0, 1.0)
        dist = np.linalg.norm(q - (p0 + t[:, None] * d), axis=1) - (r0 + t * (r1 - r0))
        best = np.minimum(best, dist)
    out[a[0]:b[0], a[1]:b[1], a[2]:b[2]] = (best <= 0).reshape(zz.shape)
    return out


def modelled_vessels(grid: WorkGrid, segs: list, names: tuple, frames: SliceFrames,
                     taken: np.ndarray, body: np.ndarray, vertebrae=None) -> tuple:
    """Modelled vessel tubes ``{name: mask}`` on ``grid`` and a finding (or ``""``).

    Placed in each vertebra's frame (origin at the body centre, ``u`` left, ``v``
    posterior, ``t`` superior) at offsets from the body's front measured in the image.
    """
    idx = {n: i for i, n in enumerate(names) if n}
    lumbar = [n for n in ("T12", "L1", "L2", "L3", "L4") if n in idx]
    if "L4" not in idx or len(lumbar) < 2:
        return {}, ("the vessels could not be modelled: L4 and a level above it are needed to "
                    "place the aorta and its bifurcation")

    def at(name: str, u: float, gap: float, r: float, w: float) -> np.ndarray:
        sg = segs[idx[name]]
        front = _body_front(sg, idx[name] + 1, vertebrae, grid, frames)
        h = 28.0
        if sg.lower is not None and sg.upper is not None:
            h = float(abs(sg.upper.signed_mm(sg.lower.point_lps[None])[0]))
        return sg.centre_lps + u * sg.u + (front - gap - r) * sg.v + w * h * sg.t

    aorta = [at(n, 12.0, AORTA_GAP_MM, AORTA_R_MM, w) for n in lumbar for w in (0.4, 0.0)]
    fork = at("L4", 6.0, AORTA_GAP_MM, AORTA_R_MM, -0.33)
    aorta.append(fork)
    ivc = [at(n, -22.0, AORTA_GAP_MM, IVC_R_MM, w) for n in lumbar for w in (0.4, 0.0)]
    ivc.append(at("L4", -20.0, AORTA_GAP_MM, IVC_R_MM, -0.4))
    model = {
        "aorta": _tube(grid, np.array(aorta), np.full(len(aorta), AORTA_R_MM)),
    }
    low = "L5" if "L5" in idx else None
    if low is not None:
        conf = at(low, -8.0, AORTA_GAP_MM, IVC_R_MM, 0.33)
        ivc.append(conf)
    model["inferior vena cava"] = _tube(grid, np.array(ivc), np.full(len(ivc), IVC_R_MM))
    if low is not None:
        sg5 = segs[idx[low]]
        below = "S1" if "S1" in idx else None
        for side, sgn in (("left", 1.0), ("right", -1.0)):
            a = [fork, at(low, sgn * 16.0, CIA_GAP_MM, CIA_R_MM, 0.0)]
            vv = [conf, at(low, sgn * 18.0, CIV_GAP_MM, CIV_R_MM, -0.33)]
            if below is not None:
                a += [at(below, sgn * 38.0, CIA_GAP_MM, CIA_R_MM, 0.45),
                      at(below, sgn * 55.0, CIA_GAP_MM, CIA_R_MM, -0.3)]
                vv += [at(below, sgn * 36.0, CIV_GAP_MM, CIV_R_MM, 0.2),
                       at(below, sgn * 50.0, CIV_GAP_MM, CIV_R_MM, -0.45)]
            else:  # sacrum out of view: continue along L5's axis
                a.append(a[-1] + 25.0 * sgn * sg5.u - 30.0 * sg5.t)
                vv.append(vv[-1] + 25.0 * sgn * sg5.u - 30.0 * sg5.t)
            model[f"common iliac artery {side}"] = _tube(grid, np.array(a),
                                                         np.full(len(a), CIA_R_MM))
            model[f"common iliac vein {side}"] = _tube(grid, np.array(vv),
                                                       np.full(len(vv), CIV_R_MM))
    keep = body & ~taken
    model = {n: m & keep for n, m in model.items()}
    # the artery lies in front where tubes cross: veins give way to arteries
    arteries = np.zeros(grid.shape, bool)
    for n in model:
        if "artery" in n or n == "aorta":
            arteries |= model[n]
    for n in model:
        if "vein" in n or "vena" in n:
            model[n] &= ~arteries
    why = "" if low is not None else "L5 is not in view: the common iliac vessels are not modelled"
    return model, why
