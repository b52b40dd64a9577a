"""``segment_ct``: the whole classical CT pipeline, cancellable, with progress.

Steps (see ``/work/shared/APPROACHES.md``): body outline → canal slice by slice →
spine curve through the bodies → disc planes from the profile along the curve →
bodies cut between the planes → posterior elements by a marker watershed →
interiors filled → names from the sacrum and the ribs → discs and canal.
The scout steps run on a 2 mm grid, the rest on a 1.5 mm grid cropped around the
spine; labels go back to the input grid by nearest neighbour, where the edges and
the sacroiliac and costovertebral joints are settled at the input's resolution.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from scipy import ndimage as ndi

from surgplan.core.errors import SegmentationError
from surgplan.core.progress import CancelToken, ProgressCallback, check, no_progress
from surgplan.imaging.anatomy import Anatomy, Structure, VertebraFrame
from surgplan.imaging.segment.body import body_outline, hounsfield_problem
from surgplan.imaging.segment.canal import track_canal
from surgplan.imaging.segment.discs import find_disc_planes, label_discs, refine_discs_on_input
from surgplan.imaging.segment.grid import WorkGrid, label_centroids_lps, volume_box_lps
from surgplan.imaging.segment.naming import name_segments, rib_bearing_segments
from surgplan.imaging.segment.neural import model_neural
from surgplan.imaging.segment.parts import label_parts, spans_from_segments
from surgplan.imaging.segment.spine_curve import fit_spine_curve
from surgplan.imaging.segment.around.surroundings import SpineContext, segment_surroundings
from surgplan.imaging.segment.vertebrae import (
    BONE_HU, fill_unlabelled, label_canal, label_vertebrae, reclaim_own_bone, refine_on_input,
    segments_from_planes, split_ribs, split_sacroiliac, trim_ribs,
)
from surgplan.imaging.structures import disc_name, kind_of, level_of
from surgplan.imaging.volume import Volume

SCOUT_MM = 2.0
WORK_MM = 1.5
#: Largest voxel edge (mm) at which the costovertebral joints are looked for.
RIB_JOINT_VOXEL_MM = 2.0
#: Smallest field (mm) along each axis in which a vertebra could be separated.
MIN_FIELD_MM = 30.0
#: How far below the spine curve's lowest point (mm) the working grid reaches.
SACRUM_BELOW_CURVE_MM = 90.0
#: Length (mm, along the curve) of undivided bone below the lowest disc beyond which the
#: lowest segment is fused (the sacrum): a lumbar body is ≤ 30 mm tall and the next disc
#: would lie within ≈ 45 mm of the one above it.
FUSED_SEGMENT_MM = 50.0
#: Length (mm, along the curve below the L5-S1 disc) of the sacrum's first segment.
SACRAL_TOP_MM = 30.0


def segment_ct(volume: Volume, *, progress: Optional[ProgressCallback] = None,
               cancel: Optional[CancelToken] = None) -> Anatomy:
    """Segment and name the vertebrae, discs and spinal canal of a CT.

    Parameters
    ----------
    volume : Volume
        A CT in Hounsfield units, any orientation, voxels of 0.5–3 mm.
    progress : callable, optional
        ``progress(fraction, message)``, fraction in [0, 1].
    cancel : CancelToken, optional
        Checked between steps; cancelling raises and returns nothing.

    Returns
    -------
    Anatomy
        On the volume's grid.  Whatever could not be found (no spine in view, a
        field too small, MR intensities) is said in ``findings``; the maps may then
        be empty.

    Raises
    ------
    SegmentationError
        The input is not a volume, or its metadata says it is not a CT.
    OperationCancelled
        ``cancel`` was set; no partial result exists.
    """
    report = progress or no_progress
    if not isinstance(volume, Volume):
        raise SegmentationError(f"segment_ct needs a Volume, got {type(volume).__name__}")
    modality = (volume.metadata.modality or "").upper()
    if modality and modality != "CT":
        raise SegmentationError(
            f"{volume.source or 'the volume'} is a {modality} image; segment_ct segments CT only "
            "(load a CT series, or give --modality CT if the header is wrong)"
        )
    shape = volume.array.shape
    empty = lambda *why: Anatomy.empty(shape, volume.ijk_to_lps, why)  # noqa: E731
    extent = volume.spacing_mm * np.array(volume.shape_ijk)
    if min(volume.shape_ijk) < 3:
        raise SegmentationError(
            f"{volume.source or 'the volume'} has {volume.shape_ijk} voxels: a single slice or two "
            "is not a 3D CT; load the whole series"
        )
    check(cancel)
    report(0.0, "checking intensities")
    problem = hounsfield_problem(np.asarray(volume.array))
    if problem:
        return empty(problem)
    if np.any(extent < MIN_FIELD_MM):
        return empty(f"the field of view is {extent.round(0).tolist()} mm: too small to hold a "
                     f"vertebra (≥ {MIN_FIELD_MM:.0f} mm along every axis needed); nothing segmented")

    # --- scout: body, canal, curve -------------------------------------------------------
    image = volume.to_sitk()
    lo, hi = volume_box_lps(image)
    scout = WorkGrid.covering(lo, hi, SCOUT_MM)
    report(0.05, "body outline")
    hs = ndi.gaussian_filter(scout.sample(image), 1.0 / SCOUT_MM)
    body = body_outline(hs, SCOUT_MM)
    check(cancel)
    if not body.any():
        return empty("no body was found (nothing at or above −300 HU): the image is empty")
    report(0.15, "spinal canal")
    canal = track_canal(hs, body, SCOUT_MM)
    check(cancel)
    if len(canal.z) < 3:
        return empty("no spine was found: no spinal canal (a fluid-density tube enclosed by bone) "
                     "appears in the axial slices")
    report(0.25, "spine curve")
    curve = fit_spine_curve(hs, canal, scout.origin_lps, SCOUT_MM)
    check(cancel)
    if curve is None or curve.length_mm < 20.0:
        return empty("a spinal canal was seen but no vertebral bodies in front of it: the field "
                     "may cut the spine, or the bone is too faint; nothing segmented")
    findings = []
    # --- working grid around the spine ----------------------------------------------------------
    pts = np.concatenate([curve.points_lps, curve.canal_lps])
    blo = np.maximum(pts.min(0) - np.array([140.0, 80.0, 40.0]), lo)
    # Caudally the sacrum runs on ≈ 100 mm below S1, curving back, where neither the
    # canal nor the body walk may have followed it: reach further down, by whole
    # working voxels so that the lattice (and every label above) stays where it was.
    blo[2] -= np.floor(min(SACRUM_BELOW_CURVE_MM - 40.0, blo[2] - lo[2]) / WORK_MM) * WORK_MM
    bhi = np.minimum(pts.max(0) + np.array([140.0, 120.0, 40.0]), hi)
    work = WorkGrid.covering(blo, bhi, WORK_MM)
    report(0.35, "resampling around the spine")
    hw = ndi.gaussian_filter(work.sample(image), 0.5)
    body_w = ndi.binary_fill_holes(hw >= -300.0)
    check(cancel)
    report(0.45, "discs")
    planes = find_disc_planes(hw, work, curve)
    check(cancel)
    at_edge = curve.points_lps[0][2] - lo[2] < 25.0
    if at_edge and len(planes) >= 2 and planes[1].s_mm - planes[0].s_mm >= FUSED_SEGMENT_MM:
        # a 'disc' below a fused segment, with only the field's edge beneath it, is the
        # junction of two sacral segments (the curve followed the sacral canal down)
        planes = planes[1:]
    segs = segments_from_planes(curve, planes)
    if not planes:
        findings.append("no disc was found along the spine: the vertebrae could not be "
                        "separated (fused spine, field too short, or too little contrast)")
    report(0.55, "vertebrae")
    vert_w = label_vertebrae(hw, work, curve, segs, body_w)
    check(cancel)
    present = [n for n in range(1, len(segs) + 1) if np.any(vert_w == n)]
    report(0.8, "names")
    zyx = np.indices(hw.shape, dtype=np.float32).reshape(3, -1).T
    pts_w = work.index_to_lps(zyx).astype(np.float32)
    # The curve running out at the bottom of the field may mean the spine is cut there
    # (the lowest segment could be a lumbar vertebra with the iliac crests beside it),
    # unless that segment runs on, undivided, farther below its upper disc than any
    # lumbar body and disc reach: then it is fused bone, the sacrum, followed down its
    # canal towards the edge of the field.
    fused_below = bool(planes) and planes[0].s_mm >= FUSED_SEGMENT_MM
    bottom_cut = at_edge and not fused_below
    bone_w = (hw >= BONE_HU) & body_w
    ribs = rib_bearing_segments(hw, body_w, vert_w, pts_w, segs, WORK_MM)
    vert_w = trim_ribs(vert_w, work, segs, ribs)
    naming = name_segments(bone_w.ravel(), pts_w, segs, WORK_MM**3 / 1000.0, bottom_cut,
                           rib_levels=ribs)
    del bone_w
    findings.extend(naming.findings)
    discs = label_discs(hw, work, segs, vert_w)
    check(cancel)
    taken = vert_w.astype(np.int32).copy()
    for m in discs.values():
        taken[m] = 1
    canal_w = label_canal(hw, work, curve, taken, body_w)
    check(cancel)
    report(0.82, "vertebral parts, dural sac, nerve roots")
    spans = spans_from_segments(segs, {n: naming.names[n - 1] for n in present
                                       if naming.names[n - 1]})
    parts_w, arches, part_findings = label_parts(vert_w, work, spans, bone=hw >= BONE_HU)
    findings.extend(part_findings)
    neural = model_neural(hw, work, curve, arches, taken)
    canal_w = neural.canal if neural.canal.any() else canal_w
    check(cancel)
    report(0.85, "skin, ilium, psoas, vessels, kidneys, bowel")
    # The structures around the spine are placed slice by slice beside the lumbar column;
    # where the curve followed the sacral canal down and back, the psoas and the iliac
    # vessels run on forward over the pelvic brim: beside the sacrum below its first
    # segment they are looked for as below the curve's end.
    around_curve = curve.from_s(planes[0].s_mm - SACRAL_TOP_MM) \
        if naming.sacrum_found and planes else curve
    around = segment_surroundings(SpineContext(
        scout, hs, body, work, hw, body_w, vert_w, (taken > 0) | canal_w, around_curve, segs,
        naming.names), cancel=cancel)
    report(0.9, "mapping labels to the image grid")
    # --- assemble on the input grid (caudal → cranial segments; labels cranial first) ---
    vert_map = np.zeros(hw.shape, np.uint16)
    items = []
    order = [n for n in reversed(present) if naming.names[n - 1]]
    dropped = [n for n in present if not naming.names[n - 1]]
    if dropped:
        findings.append(f"{len(dropped)} vertebra(e) above T10 were separated but not named or kept")
    for value, n in enumerate(order, start=1):
        vert_map[vert_w == n] = value
    struct_map = np.zeros(hw.shape, np.uint16)
    value = 0
    disc_items = []
    for n, m in sorted(discs.items(), reverse=True):
        lower, upper = naming.names[n - 1], naming.names[n] if n < len(naming.names) else ""
        if not (lower and upper) or not _known(disc_name(upper, lower)):
            continue  # thoracic discs have no shared name yet
        value += 1
        struct_map[m] = value
        disc_items.append((disc_name(upper, lower), value, naming.provisional[n - 1]))
    canal_value = 0
    if canal_w.any():
        value += 1
        canal_value = value
        struct_map[canal_w] = value
    neural_values = []
    for name, m, prov, note in neural.labels():  # inside the canal: the inner label wins
        value += 1
        struct_map[m] = value
        neural_values.append((name, value, prov, note))
    vert_in = work.labels_onto(vert_map, image)
    struct_in = work.labels_onto(struct_map, image)
    # edges at the input's resolution where it is finer than the working grid
    vert_in = refine_on_input(vert_in, np.asarray(volume.array), volume.spacing_mm[::-1],
                              struct_in == 0, WORK_MM)
    # the sacroiliac and costovertebral joints, resolved at the input's own resolution
    has_sacrum = bool(order) and order[-1] == 1 and segs[0].lower is None \
        and naming.names[0] == "S1"
    sacrum_value = len(order) if has_sacrum else None  # its label on the input grid
    rib_values = {k: order.index(k + 1) + 1 for k in ribs if k + 1 in order}
    if sacrum_value is not None:
        vert_in = split_sacroiliac(vert_in, np.asarray(volume.array), volume.ijk_to_lps,
                                   sacrum_value, segs[0].centre_lps, segs[0].u, segs[0].v)
    # (a rib's joints show only in voxels of ≤ 2 mm; at 3 mm the cut by distance stands:
    # the real CT's T12 lost Dice with it, 0.886 -> 0.883)
    if float(np.max(volume.spacing_mm)) <= RIB_JOINT_VOXEL_MM:
        for k, value in rib_values.items():
            sg = segs[k]
            vert_in = split_ribs(vert_in, np.asarray(volume.array), volume.ijk_to_lps,
                                 value, sg.centre_lps, sg.u, sg.v)
    # the cancellous bone the labels left behind their own cortex (pedicles, body walls
    # past a disc plane); not for the sacrum or rib-bearing vertebrae, whose unlabelled
    # neighbour bone (ilium, ribs) lies only a joint away
    joints = ([sacrum_value] if sacrum_value is not None else []) + list(rib_values.values())
    vert_in = reclaim_own_bone(vert_in, np.asarray(volume.array), volume.spacing_mm[::-1],
                               struct_in == 0, WORK_MM, skip=joints)
    # the discs' endplate edges at the input's resolution, against the final vertebrae
    struct_in = refine_discs_on_input(struct_in, [v for _, v, _ in disc_items],
                                      np.asarray(volume.array), volume.spacing_mm[::-1],
                                      vert_in, WORK_MM)
    parts_in = np.where(vert_in > 0, work.labels_onto(parts_w, image), 0).astype(np.uint8)
    parts_in = fill_unlabelled(parts_in, vert_in > 0)
    check(cancel)
    aff = volume.ijk_to_lps
    vert_c = label_centroids_lps(vert_in, aff)
    struct_c = label_centroids_lps(struct_in, aff)
    for value, n in enumerate(order, start=1):
        sg = segs[n - 1]
        name = naming.names[n - 1]
        centroid = vert_c.get(value)
        si = _endplate_axis(sg)
        ap = sg.v - (sg.v @ si) * si
        ap /= np.linalg.norm(ap)
        frame = VertebraFrame(sg.centre_lps.copy(), si, ap, np.cross(ap, si))
        note = "; ".join(naming.findings) if naming.provisional[n - 1] else ""
        if centroid is None:
            note = (note + "; " if note else "") + "too small to show on the input grid"
        items.append(Structure(name, value, "vertebrae", "vertebra", "segmented",
                               naming.provisional[n - 1], note, centroid, frame))
    for name, v, prov in disc_items:
        c = struct_c.get(v)
        items.append(Structure(name, v, "structures", "disc", "segmented", prov,
                               "named from its vertebrae (provisional)" if prov else "", c))
    if canal_value:
        c = struct_c.get(canal_value)
        items.append(Structure("spinal canal", canal_value, "structures", "spinal canal",
                               "segmented", False, "", c))
    else:
        findings.append("the spinal canal could not be outlined")
    provisional = {naming.names[n - 1]: naming.provisional[n - 1] for n in order}

    def level_provisional(level) -> bool:  # "L4" or, for a foramen, "L4-L5"
        return any(provisional.get(v, False) for v in (level or "").split("-"))

    for name, v, prov, note in neural_values:  # roots and foramina: named after vertebrae
        c = struct_c.get(v)
        items.append(Structure(name, v, "structures", kind_of(name), prov,
                               level_provisional(level_of(name)), note, c))
    struct_in, around_items, around_findings = around.assemble(image, vert_in, struct_in, items, aff)
    items.extend(around_items)
    findings.extend(around_findings)
    if not order:
        findings.append("a spine curve was found but no vertebra could be outlined on it")
    else:
        findings.insert(0, f"found {len(order)} vertebrae: "
                           + ", ".join(naming.names[n - 1] for n in order))
    report(1.0, "done")
    return Anatomy(shape, aff, vert_in, struct_in, tuple(items), tuple(findings), parts_in,
                   root_paths=neural.root_paths())


def _known(name: str) -> bool:
    try:
        kind_of(name)
    except ValueError:
        return False
    return True


def _endplate_axis(sg) -> np.ndarray:
    """SI axis of a vertebra: the mean of its disc-plane normals, else the curve tangent."""
    normals = [p.normal for p in (sg.lower, sg.upper) if p is not None]
    a = np.mean(normals, axis=0) if normals else sg.t
    return a / np.linalg.norm(a)
