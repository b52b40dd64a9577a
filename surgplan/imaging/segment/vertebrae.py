"""Whole vertebrae, discs and the canal on the working grid.

1. *Bone*: smoothed CT ≥ :data:`BONE_HU`, with the cancellous interiors filled
   slice by slice (only holes that are not dark: the canal is a hole too).
2. *Bodies*: the bone of the body column (within ≈ 25 mm of the spine curve and
   in front of the canal) cut between consecutive disc planes.
3. *Posterior elements*: a marker watershed on the inverted CT, seeded from the
   bodies and confined to bone.  Pedicles connect each body to its own arch;
   facet joints, where neighbours touch, are dark gaps and so become the ridges
   at which neighbouring floods meet.
4. *Discs*: the non-bone band around each disc plane inside the body column.
5. *Canal*: non-bone, CSF/fat-density voxels within ≈ 11 mm of the canal track.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from surgplan.imaging.segment.body import IN_SLICE
from surgplan.imaging.segment.discs import DiscPlane
from surgplan.imaging.segment.grid import WorkGrid
from surgplan.imaging.segment.spine_curve import SpineCurve

#: Smoothed HU of bone for the watershed's domain.  Elderly cancellous bone is
#: lower (≈ 90–150 HU) but is recovered by filling the interiors.
BONE_HU = 120.0
#: Inside the body column (between disc planes, in front of the canal) this is
#: enough to be bone: muscle and unenhanced blood are 40–50 HU, discs are cut away
#: by the planes, and cancellous bone of the elderly is ≈ 90–150 HU.
COLUMN_HU = 100.0
#: Radius of the body column around the curve (mm); lumbar bodies are 36–46 mm wide.
BODY_RADIUS_MM = 25.0
#: Lateral and posterior reach of a lumbar vertebra from its body centre (mm).
MAX_LATERAL_MM = 65.0
MAX_POSTERIOR_MM = 100.0
#: How far (mm) beyond its disc planes a vertebra's arch may reach.
SLAB_MARGIN_MM = 20.0


@dataclass(frozen=True)
class Segment:
    """One vertebra's span along the curve (between two disc planes or a plane and an end)."""

    lower: "DiscPlane | None"
    upper: "DiscPlane | None"
    centre_lps: np.ndarray
    t: np.ndarray
    u: np.ndarray
    v: np.ndarray
    canal_offset_mm: float


def segments_from_planes(curve: SpineCurve, planes: list) -> list:
    """Spans between consecutive disc planes, plus a partial one at each end."""
    s_cuts = [p.s_mm for p in planes]
    bounds = [(None, planes[0] if planes else None, 0.0, s_cuts[0] if planes else curve.length_mm)]
    for a, b in zip(planes[:-1], planes[1:]):
        bounds.append((a, b, a.s_mm, b.s_mm))
    if planes:
        bounds.append((planes[-1], None, planes[-1].s_mm, curve.length_mm))
    segs = []
    for lower, upper, s0, s1 in bounds:
        if s1 - s0 < 8.0:
            continue  # a sliver at the edge of the field
        # the centre of an end segment lies at most ≈ 15 mm beyond its one plane
        if lower is None:
            s0 = max(s0, s1 - 30.0)
        if upper is None:
            s1 = min(s1, s0 + 30.0)
        k = int(round(0.5 * (s0 + s1) / curve.step_mm))
        k = min(max(k, 0), len(curve.points_lps) - 1)
        off = float((curve.canal_lps[k] - curve.points_lps[k]) @ curve.v[k])
        segs.append(Segment(lower, upper, curve.points_lps[k], curve.t[k], curve.u[k], curve.v[k],
                            off))
    return segs


def _fill_interiors(lab: np.ndarray, hu_s: np.ndarray, dark_hu: float) -> np.ndarray:
    """Fill in-slice holes of the labelled bone that are not dark (cancellous, not canal)."""
    union = lab > 0
    filled = ndi.binary_fill_holes(union, structure=IN_SLICE)
    holes = filled & ~union
    if not holes.any():
        return lab
    hl, n = ndi.label(holes, structure=IN_SLICE)
    mean = ndi.mean(hu_s, hl, np.arange(1, n + 1))
    keep = np.concatenate([[False], mean >= dark_hu])
    holes = keep[hl]
    if not holes.any():
        return lab
    _, (iz, iy, ix) = ndi.distance_transform_edt(~union, return_indices=True)
    out = lab.copy()
    out[holes] = lab[iz[holes], iy[holes], ix[holes]]
    return out


def label_vertebrae(hu_s: np.ndarray, grid: WorkGrid, curve: SpineCurve, segs: list,
                    body: np.ndarray) -> np.ndarray:
    """Label each voxel with the 1-based index of its segment (0 = not vertebra)."""
    zyx = np.indices(hu_s.shape, dtype=np.float32).reshape(3, -1).T
    pts = grid.index_to_lps(zyx).astype(np.float32)
    bone = (hu_s >= BONE_HU) & body
    # fill closed cortical rings (bodies) before seeding; dark holes (canal) stay open
    bone = _fill_interiors(bone.astype(np.int32), hu_s, 90.0) > 0
    flat_bone = bone.ravel()
    flat_hu = hu_s.ravel()
    seeds = np.zeros(hu_s.size, np.uint16)
    not_disc = np.ones(hu_s.size, bool)
    allowed = np.zeros(hu_s.size, np.uint16)
    for n, sg in enumerate(segs, start=1):
        d = pts - sg.centre_lps.astype(np.float32)
        inside = np.ones(len(pts), bool)
        if sg.lower is not None:
            inside &= sg.lower.signed_mm(pts) > 0
        else:
            inside &= d @ sg.t > -30.0
        if sg.upper is not None:
            inside &= sg.upper.signed_mm(pts) < 0
        else:
            inside &= d @ sg.t < 30.0
        a_t, a_u, a_v = d @ sg.t, d @ sg.u, d @ sg.v
        radial = np.sqrt(a_u**2 + a_v**2)
        column = inside & (radial < BODY_RADIUS_MM) & (a_v < sg.canal_offset_mm - 7.0)
        # near a disc plane only what is clearly denser than that disc is endplate;
        # the rest is disc (annulus blurred with the endplates reads 80–110 HU)
        for plane in (sg.lower, sg.upper):
            if plane is not None:
                near_disc = np.abs(plane.signed_mm(pts)) < 10.0
                column &= ~near_disc | (flat_hu >= plane.endplate_hu)
                flat_bone_seg = ~(near_disc & (radial < BODY_RADIUS_MM + 5) & (flat_hu < plane.endplate_hu))
                not_disc &= flat_bone_seg
        seeds[column & (flat_bone | (flat_hu >= COLUMN_HU))] = n
        near = (np.abs(a_u) < MAX_LATERAL_MM) & (a_v < sg.canal_offset_mm + MAX_POSTERIOR_MM) \
            & (a_v > -BODY_RADIUS_MM) & (np.abs(a_t) < 45.0)
        allowed[near] = 1
    seeds = seeds.reshape(hu_s.shape)
    domain = (bone | (seeds > 0)) & (allowed.reshape(hu_s.shape) > 0) & not_disc.reshape(hu_s.shape)
    seeds[~domain] = 0
    if not seeds.any():
        return seeds
    # keep bone components that hold a seed (kidneys, vessels, ilia have none)
    comp, _ = ndi.label(domain)
    hit = np.unique(comp[seeds > 0])
    domain &= np.isin(comp, hit[hit > 0])
    elevation = np.where(domain, -hu_s, 5000.0).astype(np.float32)
    ws = sitk.MorphologicalWatershedFromMarkers(
        grid.to_image(elevation), grid.to_image(seeds), markWatershedLine=False, fullyConnected=False
    )
    lab = sitk.GetArrayFromImage(ws).astype(np.uint16)
    lab[~domain] = 0
    # A flood may run on through a facet joint into the neighbour's arch when the
    # joint space is blurred (3 mm voxels).  A vertebra's arch does not reach
    # more than ≈ 20 mm beyond its disc planes (inferior articular processes),
    # so clip each label to that slab; what it held is left unlabelled.
    flat = lab.ravel()
    for n, sg in enumerate(segs, start=1):
        sel = np.nonzero(flat == n)[0]
        if len(sel) == 0:
            continue
        q = pts[sel]
        bad = np.zeros(len(sel), bool)
        if sg.lower is not None:
            bad |= sg.lower.signed_mm(q) < -SLAB_MARGIN_MM
        else:
            bad |= (q - sg.centre_lps) @ sg.t < -90.0
        if sg.upper is not None:
            bad |= sg.upper.signed_mm(q) > SLAB_MARGIN_MM
        flat[sel[bad]] = 0
    lab = flat.reshape(hu_s.shape)
    # each vertebra is one piece: drop fragments a flood reached through a narrow contact
    out = np.zeros_like(lab)
    for n in range(1, len(segs) + 1):
        m = lab == n
        if not m.any():
            continue
        cl, k = ndi.label(m)
        if k > 1:
            sizes = np.bincount(cl.ravel())
            sizes[0] = 0
            m = cl == int(np.argmax(sizes))
        out[m] = n
    out = _fill_interiors(out.astype(np.int32), hu_s, 90.0).astype(np.uint16)
    return out


def label_discs(hu_s: np.ndarray, grid: WorkGrid, segs: list, vert: np.ndarray) -> dict:
    """Disc masks: the non-bone band (≤ 10 mm from a plane) inside the body column.

    Returns ``{index_of_lower_segment: mask}`` for each plane that has a body on
    both sides (segments are 1-based, caudal to cranial).
    """
    out = {}
    zyx = None
    for n in range(1, len(segs)):
        lower, upper = segs[n - 1], segs[n]
        plane = lower.upper
        if plane is None or upper.lower is not plane:
            continue
        if zyx is None:
            zyx = np.indices(hu_s.shape, dtype=np.float32).reshape(3, -1).T
            pts = grid.index_to_lps(zyx).astype(np.float32)
        d = pts - plane.point_lps.astype(np.float32)
        along = d @ plane.normal
        radial = np.linalg.norm(d - along[:, None] * plane.normal, axis=1)
        back = d @ lower.v
        off = 0.5 * (lower.canal_offset_mm + upper.canal_offset_mm)
        m = (np.abs(along) < 10.0) & (radial < 22.0) & (back < off - 7.0)
        m &= (hu_s.ravel() >= 20.0) & (hu_s.ravel() < plane.endplate_hu) & (vert.ravel() == 0)
        m = m.reshape(hu_s.shape)
        cl, k = ndi.label(m)
        if k > 1:
            sizes = np.bincount(cl.ravel())
            sizes[0] = 0
            m = cl == int(np.argmax(sizes))
        if m.any():
            out[n] = m
    return out


def label_canal(hu_s: np.ndarray, grid: WorkGrid, curve: SpineCurve, taken: np.ndarray,
                body: np.ndarray) -> np.ndarray:
    """Canal: CSF/fat-density voxels within 10 mm of the canal track, not bone or disc."""
    line = np.zeros(hu_s.shape, bool)
    idx = np.round(grid.lps_to_index(curve.canal_lps)).astype(int)
    ok = np.all((idx >= 0) & (idx < np.array(hu_s.shape)), axis=1)
    idx = idx[ok]
    if len(idx) == 0:
        return line
    line[idx[:, 0], idx[:, 1], idx[:, 2]] = True
    dist = ndi.distance_transform_edt(~line, sampling=grid.spacing_mm)
    m = (dist <= 10.0) & (taken == 0) & (hu_s < 100.0) & (hu_s > -60.0) & body
    cl, k = ndi.label(m)
    if k > 1:
        hit = np.unique(cl[line & m])
        m = np.isin(cl, hit[hit > 0])
    return m
