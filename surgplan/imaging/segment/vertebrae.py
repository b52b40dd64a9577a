"""Whole vertebrae, discs and the canal on the working grid.

1. *Bone*: smoothed CT ≥ :data:`BONE_HU` and above the local half-maximum
   edge level (:func:`bone_mask`), with the cancellous interiors filled slice
   by slice (only holes that are not dark: the canal is a hole too).
2. *Bodies*: the bone of the body column (within ≈ 25 mm of the spine curve and
   in front of the canal) cut between consecutive disc planes, minus a band of
   half the disc's height around each disc plane.
3. *Posterior elements*: a marker watershed with a flat elevation (a geodesic
   split of the bone), seeded from each body and each arch; bone far lateral
   (ilia, ribs) and in front of the bodies (contrast-filled vessels) gets its
   own marker and is dropped afterwards.
4. *Solid*: each label closed (≈ 3 mm) and its cavities filled; each body
   closed (≈ 5 mm) and filled slice by slice inside its own column, so the
   label is the whole vertebra, not its cortex.
5. *Joints at the input's resolution*: the sacroiliac joints and, for the
   rib-bearing vertebrae, the costovertebral and costotransverse joints are
   dark clefts a few millimetres wide that the working grid blurs shut; the
   sacrum and those vertebrae give back what they took across them
   (:func:`split_sacroiliac`, :func:`split_ribs`).
6. *Discs*: the non-bone band around each disc plane inside the body column.
7. *Canal*: non-bone, CSF/fat-density voxels within ≈ 11 mm of the canal track.
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
#: Lateral reach (mm) of a rib-bearing (thoracic) vertebra: T12's transverse
#: processes are rudimentary, T11's end ≈ 30 mm from the midline.
THORACIC_LATERAL_MM = 32.0
#: A joint space is at least this much darker (HU) than the bone closing over it.
JOINT_VALLEY_HU = 40.0
#: How far below its centre (mm, along the curve) the lowest segment may reach
#: when no disc bounds it: the sacrum is ≈ 100–120 mm long and curves backwards.
SACRUM_REACH_MM = 130.0
#: Soft tissue beside bone (muscle, fat-muscle mix) for the half-maximum edge (HU).
SOFT_TISSUE_HU = 40.0
#: The local peak for the half-maximum edge is capped here (HU): a small, very
#: bright spot (a facet's subchondral plate, a calcified ligament) would
#: otherwise push the edge of the faint bone around it inwards.
EDGE_PEAK_CAP_HU = 400.0
#: The same cap where the edges are settled at a finer input (≤ 1 mm voxels):
#: there the cortex is resolved and its blurred peak reads 500–1000 HU, so a
#: cap of 400 HU put the edge one voxel outside the bone (phantom at 0.8 mm:
#: the first voxel outside read ≈ 230 HU and was kept).
REFINE_PEAK_CAP_HU = 700.0
#: Bone farther than this (mm) from every vertebra's axis, at its height, is
#: ilium or rib: lumbar transverse processes end ≈ 45–50 mm from the midline.
LATERAL_MARKER_MM = 62.0


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
    out = lab.copy()
    if lab.max() <= 1:
        out[holes] = 1
        return out
    # several labels: each hole takes the label of the nearest labelled voxel,
    # looked up only in the box around the holes (a whole-grid feature
    # transform costs seconds on a 512 × 512 × 300 CT)
    nz = [np.nonzero(np.any(holes, axis=a))[0] for a in ((1, 2), (0, 2), (0, 1))]
    box = tuple(slice(max(int(z[0]) - 2, 0), int(z[-1]) + 3) for z in nz)
    sub = lab[box]
    _, (iz, iy, ix) = ndi.distance_transform_edt(sub == 0, return_indices=True)
    h = holes[box]
    filled = sub.copy()
    filled[h] = sub[iz[h], iy[h], ix[h]]
    out[box] = filled
    return out


def label_vertebrae(hu_s: np.ndarray, grid: WorkGrid, curve: SpineCurve, segs: list,
                    body: np.ndarray) -> np.ndarray:
    """Label each voxel with the 1-based index of its segment (0 = not vertebra).

    Parameters
    ----------
    hu_s : numpy.ndarray
        Smoothed CT (HU) on ``grid``, ``(z, y, x)``.
    grid : WorkGrid
        The LPS-aligned working grid.
    curve : SpineCurve
        The body-centre curve.
    segs : list of Segment
        Caudal → cranial; ``segs[0]`` may be the sacrum (no disc plane below it).
    body : numpy.ndarray of bool
        The body outline on ``grid``.

    Notes
    -----
    Every vertebra gets two kinds of marker: its body (the column between its
    disc planes) and its arch (bone behind the canal in the middle third of its
    slab: lamina and spinous root, which belong to this vertebra alone).  With
    only the bodies as markers, one flood runs along the bright cortex of all
    arches, which touch at the facet joints, and takes them all.  A third kind
    of marker, bone far lateral to the spine (ilia, ribs), competes for the
    bone it touches so that the sacroiliac joints and the rib heads become
    watershed lines instead of being flooded by a vertebra.
    """
    if not segs:
        return np.zeros(hu_s.shape, np.uint16)
    # Everything below happens inside the box that the segments' reach spans
    # (the working grid is wider, for the ilia, psoas and kidneys), and each
    # segment's own tests only on the axial slabs its reach can touch.
    corners = np.concatenate([_reach_corners(sg, SACRUM_REACH_MM if (n == 0 and sg.lower is None) else 45.0)
                              for n, sg in enumerate(segs)])
    lo = np.floor(grid.lps_to_index(corners.min(0))).astype(int) - 1
    hi = np.ceil(grid.lps_to_index(corners.max(0))).astype(int) + 2
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, np.array(hu_s.shape))
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    out = np.zeros(hu_s.shape, np.uint16)
    sub = WorkGrid(grid.index_to_lps(lo.astype(float)), grid.spacing_mm, tuple(int(v) for v in hi - lo))
    out[box] = _label_in_box(np.ascontiguousarray(hu_s[box]), sub, segs, body[box])
    return out


def half_disc(plane) -> float:
    """Half the height (mm) of the band around a disc plane that is disc whatever it reads."""
    return max(0.5 * plane.thickness_mm - 1.0, 1.5)


def _reach_corners(sg, reach_down_mm: float) -> np.ndarray:
    """LPS corners (8, 3) of the box (t, u, v) a segment's bone and markers can reach."""
    t = (-reach_down_mm - 15.0, 60.0)
    u = (-LATERAL_MARKER_MM - 20.0, LATERAL_MARKER_MM + 20.0)
    v = (-BODY_RADIUS_MM - 15.0, sg.canal_offset_mm + MAX_POSTERIOR_MM + 10.0)
    return np.array([sg.centre_lps + a * sg.t + b * sg.u + c * sg.v
                     for a in t for b in u for c in v])


def _label_in_box(hu_s: np.ndarray, grid: WorkGrid, segs: list, body: np.ndarray) -> np.ndarray:
    """:func:`label_vertebrae` on a grid cropped to the spine."""
    shape = hu_s.shape
    nyx = shape[1] * shape[2]
    zyx = np.indices(shape, dtype=np.float32).reshape(3, -1).T
    pts = grid.index_to_lps(zyx).astype(np.float32)
    del zyx
    bone = bone_mask(hu_s, grid.spacing_mm) & body
    # fill closed cortical rings (bodies) before seeding; dark holes (canal) stay open
    bone = _fill_interiors(bone.astype(np.int32), hu_s, 90.0) > 0
    flat_bone = bone.ravel()
    flat_hu_all = hu_s.ravel()
    column_ok = (hu_s >= np.maximum(COLUMN_HU, _half_max(hu_s, grid.spacing_mm))).ravel()
    n_seg = len(segs)
    other = n_seg + 1
    seeds = np.zeros(hu_s.size, np.uint16)
    not_disc = np.ones(hu_s.size, bool)
    allowed = np.zeros(hu_s.size, bool)
    lateral = np.ones(hu_s.size, bool)
    outside = np.zeros(hu_s.size, bool)
    col_of = np.zeros(hu_s.size, np.uint16)
    for n, sg in enumerate(segs, start=1):
        reach_down = SACRUM_REACH_MM if (n == 1 and sg.lower is None) else 45.0
        zc = grid.lps_to_index(_reach_corners(sg, reach_down))[:, 0]
        z0 = int(np.clip(np.floor(zc.min()) - 1, 0, shape[0]))
        z1 = int(np.clip(np.ceil(zc.max()) + 2, 0, shape[0]))
        if z1 <= z0:
            continue
        sl = slice(z0 * nyx, z1 * nyx)
        p = pts[sl]
        flat_hu = flat_hu_all[sl]
        d = p - sg.centre_lps.astype(np.float32)
        a_t, a_u, a_v = d @ sg.t, d @ sg.u, d @ sg.v
        del d
        inside = np.ones(len(p), bool)
        below = above = None
        if sg.lower is not None:
            below = sg.lower.signed_mm(p)
            inside &= below > 0
        else:
            inside &= a_t > -30.0
        if sg.upper is not None:
            above = -sg.upper.signed_mm(p)
            inside &= above > 0
        else:
            inside &= a_t < 30.0
        radial = np.sqrt(a_u**2 + a_v**2)
        column = inside & (radial < BODY_RADIUS_MM) & (a_v < sg.canal_offset_mm - 7.0)
        # Near a disc plane only what is clearly denser than that disc is
        # endplate; the rest is disc (annulus blurred with the endplates reads
        # 80–110 HU).  Within half the disc's own height of its mid-plane it is
        # disc whatever it reads: a 3 mm voxel across an endplate is bright.
        for plane, dist in ((sg.lower, below), (sg.upper, above)):
            if plane is None:
                continue
            dist = np.abs(dist)
            soft = flat_hu < plane.endplate_hu
            disc = (dist < 10.0) & (radial < BODY_RADIUS_MM + 5.0) & (soft | (dist < half_disc(plane)))
            column &= ~disc
            not_disc[sl] &= ~disc
        s_seeds = seeds[sl]
        s_seeds[column & (flat_bone[sl] | column_ok[sl])] = n
        # the body's own column (to its posterior wall) for the solid fill below
        s_col = col_of[sl]
        s_col[inside & (radial < BODY_RADIUS_MM) & (a_v < sg.canal_offset_mm - 5.0)
              & (s_col == 0)] = n
        # arch marker: behind the canal, near the midline, in the middle third
        # of the slab (the laminae of the neighbours reach only its outer thirds)
        if below is not None and above is not None:
            frac = below / np.maximum(below + above, 1.0)
            middle = (frac > 0.33) & (frac < 0.67)
        else:
            middle = np.abs(a_t) < 5.0
        arch = middle & (np.abs(a_u) < 12.0) & (a_v > sg.canal_offset_mm + 6.0) \
            & (a_v < sg.canal_offset_mm + 45.0) & flat_bone[sl]
        s_seeds[arch & (s_seeds == 0)] = n
        if reach_down == SACRUM_REACH_MM and above is not None:
            # The sacrum: fused and long, with the ilia beside it.  Seeded from
            # its body alone, the ilium markers (nearer along the bone) would take
            # its alae and lower segments; its middle 80 mm is sacrum throughout,
            # except just below the disc, behind the canal, where L5's inferior
            # articular processes come down.
            sacral = (np.abs(a_u) < 40.0) & (a_t > -reach_down) & flat_bone[sl] \
                & ((above > 20.0) | (a_v < sg.canal_offset_mm - 7.0)) & (above > half_disc(sg.upper))
            s_seeds[sacral & (s_seeds == 0)] = n
        near = (np.abs(a_u) < MAX_LATERAL_MM) & (a_v < sg.canal_offset_mm + MAX_POSTERIOR_MM) \
            & (a_v > -BODY_RADIUS_MM) & (a_t < 45.0) & (a_t > -reach_down)
        allowed[sl] |= near
        # in front of and beside the body nothing belongs to a vertebra (contrast-
        # filled iliac arteries and the aorta touch the bodies and read as bone)
        # (the sacral alae reach forward beside the S1 body: only well in front there)
        front = -15.0 if reach_down == SACRUM_REACH_MM else 0.0
        outside[sl] |= inside & (a_v < front) & (radial > BODY_RADIUS_MM + 3.0) & (np.abs(a_t) < 45.0)
        # far lateral of every segment (within its height): ilium or rib
        lateral[sl] &= ~((np.abs(a_u) < LATERAL_MARKER_MM) & (a_t < 60.0)
                         & (a_t > -reach_down - 15.0))
    lateral = (lateral | outside) & flat_bone & (seeds == 0)
    seeds[lateral] = other
    seeds = seeds.reshape(shape)
    domain = (bone | (seeds > 0)) & (allowed.reshape(shape) | (seeds == other)) \
        & not_disc.reshape(shape)
    seeds[~domain] = 0
    if not np.any((seeds > 0) & (seeds < other)):
        return np.zeros(shape, np.uint16)
    # keep bone components that hold a vertebra seed (kidneys, vessels have none)
    comp, _ = ndi.label(domain)
    hit = np.unique(comp[(seeds > 0) & (seeds < other)])
    domain &= np.isin(comp, hit[hit > 0])
    seeds[~domain] = 0
    # A flat elevation makes the marker watershed a geodesic Voronoi split of
    # the bone: each voxel goes to the marker nearest along the bone.  Any
    # ordering by CT number or depth lets one flood race along the bright,
    # thick cortex that joins neighbours at blurred facet joints (3 mm voxels)
    # and take the arches of the vertebrae above it before their own floods
    # start; with an arch marker per vertebra the nearest marker is its own.
    # Joint spaces (facet, sacroiliac, costovertebral) are narrow valleys,
    # darker than the bone within ≈ 3 mm on both sides: they are raised one
    # level, so each side first takes all the bone it reaches without crossing one.
    k = 2 * max(1, int(round(3.0 / grid.spacing_mm))) + 1
    valley = (ndi.grey_closing(hu_s, size=(k, k, k)) - hu_s) > JOINT_VALLEY_HU
    elevation = np.where(domain, valley.astype(np.float32), 2.0).astype(np.float32)
    del valley
    ws = sitk.MorphologicalWatershedFromMarkers(
        grid.to_image(elevation), grid.to_image(seeds), markWatershedLine=False, fullyConnected=False
    )
    lab = sitk.GetArrayFromImage(ws).astype(np.uint16)
    lab[~domain | (lab == other)] = 0
    del elevation
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
            bad |= (q - sg.centre_lps) @ sg.t < -SACRUM_REACH_MM
        if sg.upper is not None:
            bad |= sg.upper.signed_mm(q) > SLAB_MARGIN_MM
        flat[sel[bad]] = 0
    lab = flat.reshape(shape)
    # each vertebra is one piece: drop fragments a flood reached through a narrow contact
    out = np.zeros_like(lab)
    for n in range(1, n_seg + 1):
        m = lab == n
        if not m.any():
            continue
        cl, k = ndi.label(m)
        if k > 1:
            sizes = np.bincount(cl.ravel())
            sizes[0] = 0
            m = cl == int(np.argmax(sizes))
        out[m] = n
    out = _close_labels(out, not_disc.reshape(shape), grid.spacing_mm)
    out = _solid_bodies(out, col_of.reshape(shape), not_disc.reshape(shape), grid.spacing_mm)
    out = _fill_interiors(out.astype(np.int32), hu_s, 90.0).astype(np.uint16)
    return out


def refine_on_input(vert: np.ndarray, hu: np.ndarray, spacing_kji_mm, free: np.ndarray,
                    work_mm: float) -> np.ndarray:
    """Settle the vertebra edges at the input's own resolution.

    Labels come back from the working grid by nearest neighbour, a staircase of
    ``work_mm`` steps.  Where the input is finer, the voxels within half a
    working voxel of a label's edge are re-decided by the input's own bone edge
    (:func:`bone_mask` at its resolution): bone joins the nearest label, soft
    tissue leaves it.  Only the box around the vertebrae is touched.

    Parameters
    ----------
    vert : numpy.ndarray
        Vertebra labels on the input grid ``[k, j, i]``.
    hu : numpy.ndarray
        The input CT (HU), same shape.
    spacing_kji_mm : sequence of float
        Voxel size along k, j, i (mm).
    free : numpy.ndarray of bool
        Voxels a vertebra may grow into (not disc, canal or other structures).
    work_mm : float
        Voxel edge of the working grid (mm).
    """
    sp = np.asarray(spacing_kji_mm, float)
    if np.all(sp >= 0.9 * work_mm) or not vert.any():
        return vert
    nz = [np.nonzero(np.any(vert, axis=a))[0] for a in ((1, 2), (0, 2), (0, 1))]
    pad = np.ceil(6.0 / sp).astype(int)
    box = tuple(slice(max(int(z[0]) - p, 0), int(z[-1]) + p + 1) for z, p in zip(nz, pad))
    lab = vert[box]
    hu_s = ndi.gaussian_filter(np.asarray(hu[box], np.float32), 0.5 * work_mm / 1.5 / sp)
    size = [2 * max(1, int(round(2.5 / s))) + 1 for s in sp]
    peak = np.minimum(ndi.maximum_filter(hu_s, size=size), REFINE_PEAK_CAP_HU)
    bone = (hu_s >= BONE_HU) & (hu_s >= 0.5 * (peak + SOFT_TISSUE_HU))
    del peak
    reach = max(1, int(round(0.5 * work_mm / sp.min())))
    union = lab > 0
    band = ndi.binary_dilation(union, iterations=reach) & ~ndi.binary_erosion(union, iterations=reach)
    out = lab.copy()
    # what is below the half-maximum in the label's outer layer leaves: the
    # outer layer is cortex or outside it, never cancellous bone behind the cortex
    out[band & union & ~bone] = 0
    grow = band & ~union & bone & free[box]
    if grow.any():
        out[grow] = ndi.grey_dilation(lab, size=(2 * reach + 1,) * 3)[grow]
    res = vert.copy()
    res[box] = out
    return res


#: How far (mm) a vertebra reclaims unlabelled bone of its own beyond its label's edge.
OWN_BONE_REACH_MM = 3.0
#: Lowest smoothed HU (within ≈ 1 mm all round) of the cancellous bone reclaimed: marrow-rich
#: adult cancellous bone is ≈ 150–250 HU; at 120 the phantom's L1 took ≈ 30 voxels of
#: psoas beside its transverse processes, at 180 none, with the same gain for L5.
OWN_BONE_HU = 180.0


def reclaim_own_bone(vert: np.ndarray, hu: np.ndarray, spacing_kji_mm, free: np.ndarray,
                     work_mm: float, skip=()) -> np.ndarray:
    """Give a vertebra the unlabelled bone behind its own cortex, at the input's resolution.

    The working-grid labels stop at the disc planes and at the watershed lines,
    and :func:`refine_on_input` drops what lies below the half-maximum in their
    outer layer: where a pedicle or the posterior body wall is only a few voxels
    thick, or runs on past the plane beside a wedge-shaped disc, its cancellous
    core is left with no label though its own cortex surrounds it (phantom 0.8 mm:
    ≈ 2,500 voxels inside L5's pedicles).  Such voxels are bone all round (the
    lowest smoothed HU within ≈ 1 mm is at least :data:`OWN_BONE_HU`, which the
    soft tissue against a cortex never is), so each label grows through them
    geodesically for up to :data:`OWN_BONE_REACH_MM`, then takes the one layer
    of cortex (above the half-maximum, as in :func:`refine_on_input`) around
    what it gained.  Only voxels no structure holds are taken.

    Parameters
    ----------
    vert : numpy.ndarray
        Vertebra labels on the input grid ``[k, j, i]``.
    hu : numpy.ndarray
        The input CT (HU), same shape.
    spacing_kji_mm : sequence of float
        Voxel size along k, j, i (mm).
    free : numpy.ndarray of bool
        Voxels no disc, canal or other structure holds.
    work_mm : float
        Voxel edge of the working grid (mm); coarser inputs are returned as they are.
    skip : iterable of int
        Labels that do not grow: the sacrum and rib-bearing vertebrae, whose
        neighbouring bone (ilium, ribs) is unlabelled here and only a joint away.
    """
    sp = np.asarray(spacing_kji_mm, float)
    if np.all(sp >= 0.9 * work_mm) or not vert.any():
        return vert
    nz = [np.nonzero(np.any(vert, axis=a))[0] for a in ((1, 2), (0, 2), (0, 1))]
    pad = np.ceil((OWN_BONE_REACH_MM + 3.0) / sp).astype(int)
    box = tuple(slice(max(int(z[0]) - p, 0), int(z[-1]) + p + 1) for z, p in zip(nz, pad))
    lab = vert[box]
    skipped = np.isin(lab, list(skip))
    hu_s = ndi.gaussian_filter(np.asarray(hu[box], np.float32), 0.5 * work_mm / 1.5 / sp)
    around = [2 * max(1, int(round(1.0 / s))) + 1 for s in sp]
    open_ = free[box] & (lab == 0)
    inner = open_ & (ndi.minimum_filter(hu_s, size=around) >= OWN_BONE_HU)
    out = np.where(skipped, 0, lab)
    for _ in range(max(1, int(round(OWN_BONE_REACH_MM / sp.min())))):
        reach = ndi.grey_dilation(out, size=(3, 3, 3))
        add = inner & (out == 0) & (reach > 0)
        if not add.any():
            break
        out[add] = reach[add]
    gained = (out > 0) & (lab == 0)
    if gained.any():
        size = [2 * max(1, int(round(2.5 / s))) + 1 for s in sp]
        peak = np.minimum(ndi.maximum_filter(hu_s, size=size), REFINE_PEAK_CAP_HU)
        cortex = (hu_s >= BONE_HU) & (hu_s >= 0.5 * (peak + SOFT_TISSUE_HU))
        reach = ndi.grey_dilation(np.where(gained, out, 0), size=(3, 3, 3))
        add = cortex & open_ & (out == 0) & (reach > 0)
        out[add] = reach[add]
    out[skipped] = lab[skipped]
    res = vert.copy()
    res[box] = out
    return res


def fill_unlabelled(values: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Give the voxels of ``where`` whose value is 0 the value of the nearest non-zero voxel.

    Used for the vertebral parts of the voxels :func:`refine_on_input` added.
    Only the box around ``where`` is touched.
    """
    hole = where & (values == 0)
    if not hole.any() or not values.any():
        return values
    nz = [np.nonzero(np.any(hole, axis=a))[0] for a in ((1, 2), (0, 2), (0, 1))]
    box = tuple(slice(max(int(z[0]) - 3, 0), int(z[-1]) + 4) for z in nz)
    sub = values[box]
    if not sub.any():
        return values
    _, idx = ndi.distance_transform_edt(sub == 0, return_indices=True)
    h = hole[box]
    out = values.copy()
    filled = sub.copy()
    filled[h] = sub[idx[0][h], idx[1][h], idx[2][h]]
    out[box] = filled
    return out


def _half_max(hu_s: np.ndarray, spacing_mm: float) -> np.ndarray:
    """Half-maximum edge level (HU) per voxel: halfway from soft tissue to the local peak.

    The edge of a blurred bone lies where the CT number is halfway between
    the soft tissue beside it (≈ 40 HU) and the brightest bone within ≈ 2.5 mm
    (its cortex).  A fixed threshold puts the edge a voxel or more outside a
    bright cortex and inside a faint one.
    """
    size = 2 * max(1, int(round(2.5 / spacing_mm))) + 1
    peak = np.minimum(ndi.maximum_filter(hu_s, size=size), EDGE_PEAK_CAP_HU)
    return 0.5 * (peak + SOFT_TISSUE_HU)


def bone_mask(hu_s: np.ndarray, spacing_mm: float) -> np.ndarray:
    """Bone on an LPS work grid: ≥ :data:`BONE_HU` and ≥ the local half-maximum edge level.

    Cancellous bone next to a bright cortex falls below the half-maximum and is
    left out here; the interior fills (in-slice and 3D) put it back.
    """
    return (hu_s >= BONE_HU) & (hu_s >= _half_max(hu_s, spacing_mm))


def _solid_bodies(lab: np.ndarray, col_of: np.ndarray, free: np.ndarray,
                  spacing_mm: float) -> np.ndarray:
    """Make each vertebral body solid: close (≈ 5 mm) and fill it slice by slice in its column.

    The posterior wall of a body is thin and pierced by the basivertebral veins,
    and the cancellous bone behind it is often the faintest of the vertebra, so
    the bone leaves notches open towards the canal that a 3D fill cannot close.
    The body is a solid cylinder: within its own column (between its disc
    planes, in front of the canal) an axial closing and fill is safe.
    """
    r = max(1, int(round(5.0 / spacing_mm)))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    disk = (yy**2 + xx**2) <= r * r
    st = np.zeros((1,) + disk.shape, bool)
    st[0] = disk
    out = lab.copy()
    for n in np.unique(col_of):
        if n == 0:
            continue
        col = col_of == n
        m = (lab == n) & col
        if not m.any():
            continue
        zz, y, x = np.nonzero(col)
        box = (slice(zz.min(), zz.max() + 1), slice(max(y.min() - r, 0), y.max() + r + 1),
               slice(max(x.min() - r, 0), x.max() + r + 1))
        mb = m[box]
        closed = ndi.binary_closing(np.pad(mb, ((0, 0), (r, r), (r, r))), st)[:, r:-r, r:-r]
        closed = ndi.binary_fill_holes(closed | mb, structure=IN_SLICE)
        add = closed & col[box] & (out[box] == 0) & free[box]
        out[box][add] = n
    return out


def _close_labels(lab: np.ndarray, free: np.ndarray, spacing_mm: float) -> np.ndarray:
    """Close each label (≈ 3 mm) and fill its 3D cavities, taking only unlabelled voxels.

    A vertebra is a solid: the thresholded bone has notches where the cortex is
    thin or the cancellous bone faint (the basivertebral foramen, osteoporotic
    bone at 90–150 HU), which a reader and reference tools count as vertebra.
    ``free`` excludes the discs so that closing never bridges a disc.
    """
    r = max(1, int(round(3.0 / spacing_mm)))
    ball = ndi.generate_binary_structure(3, 1)
    out = lab.copy()
    for n in np.unique(lab):
        if n == 0:
            continue
        zz, yy, xx = np.nonzero(lab == n)
        lo = np.maximum([zz.min() - r - 1, yy.min() - r - 1, xx.min() - r - 1], 0)
        hi = np.minimum([zz.max() + r + 2, yy.max() + r + 2, xx.max() + r + 2], lab.shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        m = lab[box] == n
        closed = ndi.binary_closing(np.pad(m, r + 1), ball, iterations=r)[
            r + 1: -r - 1, r + 1: -r - 1, r + 1: -r - 1]
        closed = ndi.binary_fill_holes(closed | m)
        add = closed & (out[box] == 0) & free[box]
        out[box][add] = n
    return out


def trim_ribs(vert: np.ndarray, grid: WorkGrid, segs: list, rib_levels) -> np.ndarray:
    """Cut the rib necks off the rib-bearing vertebrae (labels on ``grid``, 1-based).

    Where a rib meets its vertebra without a visible joint space the geodesic
    split leaves the rib's head and neck in the vertebra.  The transverse
    processes of T11–T12 end within ≈ :data:`THORACIC_LATERAL_MM` of the
    midline, so whatever such a label holds farther out is rib.
    """
    if not rib_levels:
        return vert
    out = vert.copy()
    for k in rib_levels:
        n = k + 1
        idx = np.nonzero(out.ravel() == n)[0]
        if len(idx) == 0:
            continue
        zyx = np.stack(np.unravel_index(idx, out.shape), axis=1)
        a_u = (grid.index_to_lps(zyx) - segs[k].centre_lps) @ segs[k].u
        out.ravel()[idx[np.abs(a_u) > THORACIC_LATERAL_MM]] = 0
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


#: Bone within this distance (mm) of the midline plane is sacrum whatever it
#: touches (the S1 body is ≈ 45–50 mm wide); the sacroiliac joints lie
#: ≈ 35–55 mm from the midline.
SACRUM_CORE_MM = 20.0
#: Bone beyond this distance (mm) from the midline plane that no vertebra holds,
#: and more than :data:`NEIGHBOUR_DEPTH_MM` from the label, is ilium.
ILIUM_SEED_MM = 35.0
#: How far (mm) into a neighbouring bone its seed starts, as the vertebra's does
#: into the vertebra: where the two touch without a visible joint space (a
#: blurred or narrowed joint) the boundary then falls near the contact.
NEIGHBOUR_DEPTH_MM = 5.0


def split_sacroiliac(vert: np.ndarray, hu: np.ndarray, ijk_to_lps: np.ndarray, sacrum: int,
                     centre_lps: np.ndarray, lateral: np.ndarray,
                     posterior: np.ndarray) -> np.ndarray:
    """Cut the sacrum label at the sacroiliac joints, on the input's own grid.

    On the 1.5 mm working grid a 2–4 mm joint space between two cortices blurs
    into one bright ridge, and the geodesic split there hands the sacrum the
    medial, posterior part of each ilium (the part that wraps behind the alae).
    At the input's resolution the joint is a dark cleft (:func:`split_at_joint`).

    Parameters
    ----------
    vert : numpy.ndarray
        Vertebra labels on the input grid ``[k, j, i]``.
    hu : numpy.ndarray
        The input CT (HU), same shape.
    ijk_to_lps : numpy.ndarray
        4 × 4 affine of the input grid.
    sacrum : int
        The sacrum's value in ``vert``.
    centre_lps : numpy.ndarray
        A point on the sacrum's midline (LPS mm).
    lateral, posterior : numpy.ndarray
        The sacrum's left-right and antero-posterior unit vectors (LPS).

    Returns
    -------
    numpy.ndarray
        ``vert`` with the ilium voxels taken out of the sacrum.
    """
    return split_at_joint(vert, hu, ijk_to_lps, sacrum, centre_lps, lateral, posterior,
                          SACRUM_CORE_MM, ILIUM_SEED_MM)


#: Bone within this distance (mm) of the midline plane is the rib-bearing
#: vertebra's own (the middle of its body, its lamina and spinous process): the
#: rib heads meet the bodies' sides ≈ 15–20 mm from the midline.
RIB_CORE_MM = 10.0


def split_ribs(vert: np.ndarray, hu: np.ndarray, ijk_to_lps: np.ndarray, value: int,
               centre_lps: np.ndarray, lateral: np.ndarray, posterior: np.ndarray) -> np.ndarray:
    """Cut a rib-bearing vertebra's label at its costovertebral and costotransverse joints.

    :func:`trim_ribs` leaves the rib heads and necks within
    :data:`THORACIC_LATERAL_MM` of the midline in the vertebra; the rib beyond
    (no vertebra's) seeds the rib's side of :func:`split_at_joint`, run on the
    input's own grid, where the joints show.  Parameters as
    :func:`split_sacroiliac`.
    """
    return split_at_joint(vert, hu, ijk_to_lps, value, centre_lps, lateral, posterior,
                          RIB_CORE_MM, THORACIC_LATERAL_MM)


def split_at_joint(vert: np.ndarray, hu: np.ndarray, ijk_to_lps: np.ndarray, value: int,
                   centre_lps: np.ndarray, lateral: np.ndarray, posterior: np.ndarray,
                   core_mm: float, neighbour_mm: float) -> np.ndarray:
    """Give back to a lateral neighbour bone what a vertebra label took across their joint.

    A marker watershed on the input's own grid, in the label and the bone no
    vertebra holds: seeded with the label within ``core_mm`` of the midline
    plane and with the unlabelled bone beyond ``neighbour_mm``, behind the
    body's centre and more than :data:`NEIGHBOUR_DEPTH_MM` from the label (the
    ilium, the ribs; contrast-filled vessels lie in front and seed nothing).  The
    elevation is flat (each voxel goes to the side nearest along the bone)
    except in the joint space, a valley darker than the bone within ≈ 2.5 mm
    on both sides, raised one level, so each side first takes all it reaches
    without crossing a joint.  The label only loses voxels; it stays one piece.

    Parameters
    ----------
    vert, hu, ijk_to_lps
        Labels, CT (HU) and affine of the input grid.
    value : int
        The label to split.
    centre_lps, lateral, posterior : numpy.ndarray
        Its body's centre and its left-right and antero-posterior unit vectors (LPS).
    core_mm, neighbour_mm : float
        Distances (mm) from the midline plane of the two kinds of seed.
    """
    m = vert == value
    if not m.any():
        return vert
    aff = np.asarray(ijk_to_lps, float)
    sp = np.linalg.norm(aff[:3, :3], axis=0)[::-1]  # k, j, i
    nz = [np.nonzero(np.any(m, axis=a))[0] for a in ((1, 2), (0, 2), (0, 1))]
    pad = np.ceil(15.0 / sp).astype(int)
    box = tuple(slice(max(int(z[0]) - p, 0), int(z[-1]) + p + 1) for z, p in zip(nz, pad))
    lab = vert[box]
    own = lab == value
    hu_s = ndi.gaussian_filter(np.asarray(hu[box], np.float32), 0.5)
    # distance of each voxel from the midline plane, along the left-right axis
    kji0 = np.array([s.start for s in box], float)
    u = np.asarray(lateral, float)
    g = u @ aff[:3, :3]  # d(a_u)/d(i, j, k)
    a0 = (aff[:3, 3] + aff[:3, :3] @ kji0[::-1] - np.asarray(centre_lps, float)) @ u
    kk, jj, ii = np.ogrid[:lab.shape[0], :lab.shape[1], :lab.shape[2]]
    a_u = np.abs(a0 + g[2] * kk + g[1] * jj + g[0] * ii).astype(np.float32)
    w = np.asarray(posterior, float)
    gv = w @ aff[:3, :3]
    v0 = (aff[:3, 3] + aff[:3, :3] @ kji0[::-1] - np.asarray(centre_lps, float)) @ w
    behind = (v0 + gv[2] * kk + gv[1] * jj + gv[0] * ii) > 0.0
    free_bone = (hu_s >= BONE_HU) & (lab == 0)
    domain = own | free_bone
    seeds = np.zeros(lab.shape, np.uint8)
    seeds[own & (a_u < core_mm)] = 1
    away = ndi.distance_transform_edt(~own, sampling=sp) > NEIGHBOUR_DEPTH_MM
    seeds[free_bone & (a_u > neighbour_mm) & behind & away] = 2
    del away
    if not np.any(seeds == 1) or not np.any(seeds == 2):
        return vert
    # only bone joined to a seed takes part (a piece of the label joined to the
    # neighbour alone is the neighbour's)
    comp, _ = ndi.label(domain)
    hit = np.unique(comp[seeds > 0])
    domain &= np.isin(comp, hit[hit > 0])
    seeds[~domain] = 0
    size = [2 * max(1, int(round(2.5 / v))) + 1 for v in sp]
    valley = (ndi.grey_closing(hu_s, size=size) - hu_s) > JOINT_VALLEY_HU
    elev = np.where(domain, valley.astype(np.float32), 2.0).astype(np.float32)
    del valley
    ws = sitk.GetArrayFromImage(sitk.MorphologicalWatershedFromMarkers(
        sitk.GetImageFromArray(elev), sitk.GetImageFromArray(seeds),
        markWatershedLine=False, fullyConnected=False))
    ws[~domain] = 0
    other = ws == 2
    # pieces of the label joined to neither seed follow the nearest side
    loose = own & (ws == 0)
    if loose.any() and ws.any():
        _, idx = ndi.distance_transform_edt(ws == 0, sampling=sp, return_indices=True)
        other |= loose & (ws[idx[0], idx[1], idx[2]] == 2)
        del idx
    out = vert.copy()
    sub = out[box]
    sub[own & other] = 0
    keep = sub == value
    cl, k = ndi.label(keep)
    if k > 1:
        sizes = np.bincount(cl.ravel())
        sizes[0] = 0
        sub[keep & (cl != int(np.argmax(sizes)))] = 0
    out[box] = sub
    return out

