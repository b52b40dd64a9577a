"""``segment_mr``: vertebral bodies, discs and the dural sac on a T2-weighted MR.

Steps (see ``/work/shared/APPROACHES.md``, MRI): resample onto an LPS-aligned
isotropic grid → patient outline and coil-shading correction (N4) → intensity
scale from percentiles inside the outline → the CSF column slice by slice →
the body curve in front of it → disc planes from the signal along the curve
(bright or dark against the marrow) → each body from its own marrow signal,
then a marker watershed onto its cortex → discs between the bodies → the dural
sac → names counted from the sacrum.  Labels go back to the input grid by
nearest neighbour.

Around the sac (:mod:`surgplan.imaging.segment.mr.neural`): the spinal canal,
modelled from the bodies' back wall, the sac and the dark tissue behind it, and
the exiting nerve roots, modelled as on CT and followed on the image in the
foramen where a dark root shows in bright fat (``segmented`` there).

In front of the bodies (:mod:`surgplan.imaging.segment.mr.vessels`): the aorta,
IVC and common iliac vessels, followed as dark flow voids where the image shows
them (``segmented``), else the CT pipeline's model placed from the MR bodies
(``modelled``); a vessel mostly outside a narrow sagittal field is not labelled
and the findings say so.

What MR does not give here: posterior elements and their parts (the arch is
thin and dark on T2 and is left to CT), the kidneys and the bowel.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from scipy import ndimage as ndi

from surgplan.core.errors import SegmentationError
from surgplan.core.progress import CancelToken, ProgressCallback, check, no_progress
from surgplan.imaging.anatomy import Anatomy, Structure, VertebraFrame
from surgplan.imaging.segment.mr import neural as mn
from surgplan.imaging.segment.mr import spine as ms
from surgplan.imaging.segment.mr import vessels as mv
from surgplan.imaging.segment.canal import CanalTrack
from surgplan.imaging.segment.grid import WorkGrid, volume_box_lps
from surgplan.imaging.segment.vertebrae import segments_from_planes
from surgplan.imaging.structures import disc_name, kind_of, level_of
from surgplan.imaging.volume import Volume

#: Voxel edge of the working grid (mm): the input's finest spacing, within these bounds.
FINEST_MM = 1.0
COARSEST_MM = 1.5
#: Smallest field (mm) along each axis that can hold a vertebral body.
MIN_FIELD_MM = 30.0
#: A lowest disc this much weaker than the median disc is the rudimentary S1–S2 disc.
RUDIMENTARY_SHARE = 0.4
#: The dural sac ends at S1–S3: a CSF column that stops this far (mm) above the
#: bottom of the field ends in view, so the view reaches the sacrum.
SAC_END_MARGIN_MM = 15.0
_NAMES_UP = ("S1", "L5", "L4", "L3", "L2", "L1", "T12", "T11", "T10")


def segment_mr(volume: Volume, *, progress: Optional[ProgressCallback] = None,
               cancel: Optional[CancelToken] = None) -> Anatomy:
    """Segment and name the vertebral bodies, discs and dural sac of a T2 MR.

    Parameters
    ----------
    volume : Volume
        A T2-weighted MR (sagittal or axial, any orientation and voxel size up
        to ≈ 2 mm; intensity in arbitrary scanner units).
    progress : callable, optional
        ``progress(fraction, message)``, fraction in [0, 1].
    cancel : CancelToken, optional
        Checked between steps; cancelling raises and returns nothing.

    Returns
    -------
    Anatomy
        On the volume's grid: ``vertebrae`` holds the vertebral *bodies* (one
        label each, named), ``structures`` the discs, the spinal canal
        (``modelled``), the dural sac (CSF, ``segmented``) and the exiting
        nerve roots (``segmented`` where the foramen shows them, else
        ``modelled``; each note says which), the great vessels (flow voids
        ``segmented``, else ``modelled``) inside the field of view.  What was
        not found or not attempted (arches, vessels outside the field) is said
        in ``findings``.

    Raises
    ------
    SegmentationError
        The input is not a 3D volume, or its metadata says it is a CT.
    OperationCancelled
        ``cancel`` was set; no partial result exists.
    """
    report = progress or no_progress
    if not isinstance(volume, Volume):
        raise SegmentationError(f"segment_mr needs a Volume, got {type(volume).__name__}")
    where = volume.source or "the volume"
    modality = (volume.metadata.modality or "").upper()
    if modality and modality != "MR":
        raise SegmentationError(
            f"{where} is a {modality} image; segment_mr segments MR only "
            "(use segment_ct / --modality ct for a CT, or --modality mr if the header is wrong)")
    if min(volume.shape_ijk) < 3:
        raise SegmentationError(
            f"{where} has {volume.shape_ijk} voxels: one or two slices are not a 3D MR; "
            "load the whole series")
    shape = volume.array.shape
    empty = lambda *why: Anatomy.empty(shape, volume.ijk_to_lps, why)  # noqa: E731
    extent = volume.spacing_mm * np.array(volume.shape_ijk)
    if np.any(extent < MIN_FIELD_MM):
        return empty(f"the field of view is {extent.round(0).tolist()} mm: too small to hold a "
                     f"vertebral body (≥ {MIN_FIELD_MM:.0f} mm along every axis needed); "
                     "nothing segmented")
    check(cancel)
    report(0.0, "resampling")
    image = volume.to_sitk()
    sp = float(np.clip(np.min(volume.spacing_mm), FINEST_MM, COARSEST_MM))
    lo, hi = volume_box_lps(image)
    grid = WorkGrid.covering(lo, hi, sp)
    raw = grid.sample(image, default=0.0)
    if float(np.ptp(raw)) <= 0.0:
        return empty(f"{where} has one value everywhere: there is nothing to segment")
    img = ndi.gaussian_filter(raw, 0.8 / sp)
    del raw
    check(cancel)
    report(0.1, "patient outline and coil shading")
    outline = ms.patient_outline(img)
    if outline.sum() * sp**3 < 50_000.0:  # 50 ml
        return empty("no patient was found in the image (the signal above the background "
                     "is smaller than 50 ml); nothing segmented")
    img = ms.bias_corrected(img, outline, sp)
    scale = ms.intensity_scale(img, outline)
    check(cancel)
    report(0.2, "CSF column")
    track = ms.track_csf(img, outline, scale, sp)
    if len(track.z) < 3:
        return empty("no spine was found: no column of bright CSF (the dural sac) runs through "
                     "the axial slices; is this a T2-weighted image of the spine?")
    marrow = ms.marrow_level(img, track, sp)
    check(cancel)
    report(0.3, "spine curve")
    curve = ms.fit_mr_curve(img, grid, track, marrow, scale) if np.isfinite(marrow) else None
    if curve is None or curve.length_mm < 20.0:
        return empty("a CSF column was seen but no vertebral bodies in front of it: the field "
                     "may cut the spine; nothing segmented")
    # --- crop the grid around the spine (the rest only costs time) ----------------------
    # the skin and the body are labelled on the whole field (the planner needs the skin)
    surface = (grid, surface_layers(outline, sp))
    img, grid, track, outline = _crop(img, grid, track, outline, curve)
    marrow = ms.marrow_level(img, track, sp)
    check(cancel)
    report(0.4, "discs")
    found = ms.find_mr_discs(img, grid, curve, marrow)
    discs, rudimentary = _drop_rudimentary(found)
    planes = [d.plane for d in discs]
    segs = segments_from_planes(curve, planes)
    findings = []
    if not discs:
        findings.append("no disc was found along the spine: the bodies could not be separated "
                        "(fused spine, field too short, or too little contrast)")
    check(cancel)
    report(0.5, "vertebral bodies")
    bodies, walls, fronts = ms.label_bodies(img, grid, segs, discs, marrow, scale)
    check(cancel)
    report(0.65, "vertebral bodies: edges")
    bodies = ms.refine_bodies(img, grid, segs, discs, bodies, walls, scale, marrow, fronts)
    bodies, cut = _drop_cut_top(bodies, segs)
    if cut:
        findings.append("a vertebral body cut by the top of the field (less than half the size "
                        "of the others) was left out")
    check(cancel)
    report(0.75, "discs and dural sac")
    disc_masks = ms.label_mr_discs(img, grid, segs, walls, bodies)
    taken = bodies > 0
    for m in disc_masks.values():
        taken |= m
    sac = ms.label_dural_sac(img, grid, curve, track, scale, taken)
    check(cancel)
    report(0.8, "names")
    naming = _names(segs, discs, rudimentary, track, grid, lo, bodies)
    findings.extend(naming[2])
    names, provisional = naming[0], naming[1]
    check(cancel)
    report(0.85, "spinal canal and nerve roots")
    arches = mn.mr_arches(img, grid, segs, names, walls, discs, sac, marrow)
    neural = mn.model_mr_neural(img, grid, curve, arches, sac, taken)
    check(cancel)
    report(0.87, "great vessels")
    vessels = mv.mr_vessels(img, grid, mv.field_mask(image, grid), curve, segs, names, bodies,
                            taken | sac | neural.canal, outline, marrow)
    findings.extend(vessels.findings)
    check(cancel)
    report(0.9, "mapping labels to the image grid")
    anatomy = _assemble(volume, image, grid, segs, names, provisional, bodies, disc_masks, sac,
                        neural, surface, findings, vessels.masks)
    check(cancel)
    report(1.0, "done")
    return anatomy


def _crop(img, grid: WorkGrid, track: CanalTrack, outline, curve):
    """Cut the arrays to a box around the curve (±70 mm across, 70 mm in front, 60 behind)."""
    pts = np.concatenate([curve.points_lps, curve.canal_lps])
    lo = pts.min(0) - np.array([70.0, 70.0, 20.0])
    hi = pts.max(0) + np.array([70.0, 60.0, 20.0])
    i0 = np.maximum(np.floor(grid.lps_to_index(lo)).astype(int), 0)
    i1 = np.minimum(np.ceil(grid.lps_to_index(hi)).astype(int) + 1, img.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(i0, i1))
    origin = grid.origin_lps + i0[::-1] * grid.spacing_mm
    sub = WorkGrid(origin, grid.spacing_mm, tuple(int(b - a) for a, b in zip(i0, i1)))
    keep = (track.z >= i0[0]) & (track.z < i1[0])
    tr = CanalTrack(track.z[keep] - i0[0], track.yx[keep] - i0[1:], track.area_mm2[keep],
                    track.mask[box])
    return np.ascontiguousarray(img[box]), sub, tr, outline[box]


def _drop_cut_top(bodies: np.ndarray, segs: list) -> tuple:
    """Remove the cranial end body when the field's edge leaves less than half of it.

    Its name would be a guess and its outline a sliver; the bottom end (the
    sacrum) is kept, since it anchors the names.  Returns ``(bodies, cut)``.
    """
    if len(segs) < 3 or segs[-1].upper is not None:
        return bodies, False
    sizes = np.bincount(bodies.ravel(), minlength=len(segs) + 1)
    inner = sizes[2:len(segs)]
    inner = inner[inner > 0]
    if len(inner) and sizes[len(segs)] < 0.5 * np.median(inner):
        bodies = np.where(bodies == len(segs), 0, bodies).astype(bodies.dtype)
        return bodies, bool(sizes[len(segs)] > 0)
    return bodies, False


def _drop_rudimentary(discs: list) -> tuple:
    """Drop a lowest disc much weaker than the rest: the rudimentary S1–S2 disc.

    Returns ``(discs, seen)`` where ``seen`` says one was dropped.
    """
    if len(discs) >= 3:
        others = np.median([d.plane.depth_hu for d in discs[1:]])
        if discs[0].plane.depth_hu < RUDIMENTARY_SHARE * others:
            return discs[1:], True
    return discs, False


def _names(segs, discs, rudimentary, track, grid, field_lo, bodies) -> tuple:
    """Names (caudal → cranial), provisional flags and findings.

    The lowest full disc of a lumbar MR is taken as L5–S1, so the segment below
    it is S1 and the ones above are L5, L4 … .  The sacrum is *seen* when a
    rudimentary S1–S2 disc shows below that disc, or when the dural sac ends
    inside the field (it ends at S1–S3); then the names stand, otherwise they
    are provisional.  Without a whole-spine view a sixth lumbar vertebra or a
    sacralised L5 cannot be told, and the findings say so.
    """
    n = len(segs)
    if n == 0:
        return (), (), ("no vertebral bodies were separated, so nothing could be named",)
    # index of the segment above the lowest disc
    if discs:
        k_low = next((i for i, sg in enumerate(segs) if sg.lower is discs[0].plane), 0)
    else:
        k_low = 0
    sac_end_z = grid.origin_lps[2] + track.z.min() * grid.spacing_mm if len(track.z) else np.inf
    sac_ends = sac_end_z - field_lo[2] > SAC_END_MARGIN_MM
    seen = bool(discs) and (rudimentary or sac_ends)
    names, prov = [], []
    for i in range(n):
        j = i - k_low + 1  # 0 = S1, 1 = L5 …
        names.append(_NAMES_UP[j] if 0 <= j < len(_NAMES_UP) else "")
        prov.append(not seen)
    findings = []
    why = ("a rudimentary S1–S2 disc shows below it" if rudimentary
           else "the dural sac ends inside the field")
    if seen:
        findings.append(f"named by counting up from the sacrum (the lowest full disc is taken as "
                        f"L5–S1: {why}); a sixth lumbar vertebra or a sacralised L5 cannot be "
                        "told on a lumbar MR without a whole-spine view")
    elif discs:
        findings.append("the sacrum was not seen (the dural sac runs out of the field and no "
                        "rudimentary S1–S2 disc shows): the lowest disc is assumed to be L5–S1 "
                        "and the names are provisional — check them and rename")
    else:
        findings.append("no disc was found, so the one body cannot be named from the sacrum: "
                        "its name is provisional")
    return tuple(names), tuple(prov), tuple(findings)


def _assemble(volume, image, grid, segs, names, provisional, bodies, disc_masks, sac, neural,
              surface, findings, vessels):
    """Label maps on the input grid and the Structure records.

    ``vessels`` is ``{name: (mask on the work grid, provenance, note)}``.
    """
    aff = volume.ijk_to_lps
    shape = volume.array.shape
    present = [n for n in range(1, len(segs) + 1) if names[n - 1] and np.any(bodies == n)]
    unnamed = [n for n in range(1, len(segs) + 1) if not names[n - 1] and np.any(bodies == n)]
    if unnamed:
        findings.append(f"{len(unnamed)} body(ies) above T10 were outlined but not kept "
                        "(no shared name)")
    order = list(reversed(present))  # cranial first
    vert_map = np.zeros(bodies.shape, np.uint16)
    for value, n in enumerate(order, start=1):
        vert_map[bodies == n] = value
    struct_map = np.zeros(bodies.shape, np.uint16)
    disc_items = []
    value = 0
    for n, m in sorted(disc_masks.items(), reverse=True):
        lower, upper = names[n - 1], names[n] if n < len(names) else ""
        if not (lower and upper) or not _known(disc_name(upper, lower)):
            continue
        value += 1
        struct_map[m & (struct_map == 0)] = value
        disc_items.append((disc_name(upper, lower), value, provisional[n - 1]))
    canal_value = 0
    if neural.canal.any():  # painted first: the sac and the roots inside it win
        value += 1
        canal_value = value
        struct_map[neural.canal & (struct_map == 0)] = value
    sac_value = 0
    if sac.any():
        value += 1
        sac_value = value
        struct_map[sac & ((struct_map == 0) | (struct_map == canal_value))] = value
    root_values = []
    for name, m in neural.roots.items():
        value += 1
        free = (struct_map == 0) | ((struct_map == canal_value) & (canal_value > 0))
        struct_map[m & free] = value
        root_values.append((name, value))
    vessel_values = []
    for name, (m, prov, note) in vessels.items():
        free = (struct_map == 0) & (vert_map == 0)
        if not np.any(m & free):
            continue
        value += 1
        struct_map[m & free] = value
        vessel_values.append((name, value, prov, note))
    vert_in = grid.labels_onto(vert_map, image)
    struct_in = grid.labels_onto(struct_map, image)
    layers = surface[0].labels_onto(surface[1], image)
    free = (struct_in == 0) & (vert_in == 0)
    skin_value = body_value = 0
    if np.any(free & (layers == 1)):
        value += 1
        skin_value = value
        struct_in[free & (layers == 1)] = value
    if np.any(free & (layers == 2)):
        value += 1
        body_value = value
        struct_in[free & (layers == 2)] = value

    def centroid(m):
        return aff[:3, :3] @ np.argwhere(m).mean(0)[::-1] + aff[:3, 3] if m.any() else None

    items = []
    for value, n in enumerate(order, start=1):
        sg = segs[n - 1]
        m = vert_in == value
        normals = [p.normal for p in (sg.lower, sg.upper) if p is not None]
        si = np.mean(normals, axis=0) if normals else sg.t
        si = si / np.linalg.norm(si)
        ap = sg.v - (sg.v @ si) * si
        ap /= np.linalg.norm(ap)
        c = centroid(m)
        frame = VertebraFrame((c if c is not None else sg.centre_lps).copy(), si, ap,
                              np.cross(ap, si))
        note = "vertebral body only (MR)"
        if provisional[n - 1]:
            note += "; name provisional: the sacrum was not seen"
        if not m.any():
            note += "; too small to show on the input grid"
        items.append(Structure(names[n - 1], value, "vertebrae", "vertebra", "segmented",
                               provisional[n - 1], note, c, frame))
    for name, v, prov in disc_items:
        items.append(Structure(name, v, "structures", "disc", "segmented", prov,
                               "named from its vertebrae (provisional)" if prov else "",
                               centroid(struct_in == v)))
    if sac_value:
        items.append(Structure("dural sac", sac_value, "structures", "dural sac", "segmented",
                               False, "the CSF column (bright on T2)",
                               centroid(struct_in == sac_value)))
    else:
        findings.append("the dural sac (CSF) could not be outlined")
    if canal_value:
        items.append(Structure("spinal canal", canal_value, "structures", "spinal canal",
                               "modelled", False, neural.canal_notes,
                               centroid(struct_in == canal_value)))
    else:
        findings.append("the spinal canal could not be outlined (no named body behind which "
                        "to measure it)")
    prov_of = {names[n - 1]: provisional[n - 1] for n in order}
    for name, v in root_values:
        m = struct_in == v
        if not m.any():
            continue
        prov = "segmented" if neural.root_seen.get(name) else "modelled"
        items.append(Structure(name, v, "structures", kind_of(name), prov,
                               prov_of.get(level_of(name), False), neural.root_notes[name],
                               centroid(m)))
    for name, v, prov, note in vessel_values:
        m = struct_in == v
        if m.any():
            items.append(Structure(name, v, "structures", kind_of(name), prov, False, note,
                                   centroid(m)))
    if skin_value:
        items.append(Structure("skin", skin_value, "structures", "skin", "segmented", False,
                               f"outer {SKIN_MM:.0f} mm of the patient outline (signal above "
                               "half Otsu's threshold, holes filled); not where the field of "
                               "view cuts the body", centroid(struct_in == skin_value)))
    else:
        findings.append("no skin: the patient outline does not end inside the field of view")
    if body_value:
        items.append(Structure("body", body_value, "structures", "body", "segmented", False,
                               "inside the patient outline, not otherwise labelled",
                               centroid(struct_in == body_value)))
    if order:
        findings.insert(0, f"found {len(order)} vertebral bodies: "
                           + ", ".join(names[n - 1] for n in order))
    else:
        findings.append("a spine curve was found but no vertebral body could be outlined on it")
    findings.append("on MR only the vertebral bodies are outlined (no posterior elements or "
                    "sub-regions); the spinal canal is modelled from the bodies' back wall, the "
                    "dural sac and the dark tissue behind it, and the roots' course from the "
                    "dura to the foramen from the bodies and discs (the pedicles are not "
                    "outlined on MR): plan root clearances on CT where there is one, or check "
                    "them by eye")
    if root_values:
        seen = sum(bool(neural.root_seen.get(n)) for n, _ in root_values)
        findings.append(f"exiting nerve roots: {seen} of {len(root_values)} found in the "
                        "foramen (a dark root in bright foraminal fat); the others modelled "
                        "(the image does not show them: thick or distant sagittal slices, or "
                        "no fat around the root)")
    labelled = {n for n, _ in root_values}
    paths = {n: rm.points_lps.copy() for n, rm in neural.root_models.items() if n in labelled}
    return Anatomy(shape, aff, vert_in, struct_in, tuple(items), tuple(findings),
                   root_paths=paths)


#: Thickness of the skin shell (mm), as on CT: epidermis and dermis are 1.5–3 mm on the trunk.
SKIN_MM = 2.0


def surface_layers(outline: np.ndarray, spacing_mm: float) -> np.ndarray:
    """1 on the skin (outer :data:`SKIN_MM` of the outline, in-slice), 2 inside it, 0 outside.

    Holes are filled slice by slice (air in the lungs and bowel gas reach the
    field's edge in 3D).  Where the outline meets the field's edge the body goes
    on beyond it: those sides are padded as inside, so no skin is drawn along a
    cut.  ``outline`` is on the LPS-aligned work grid (``[z, y, x]``).
    """
    out = np.zeros(outline.shape, np.uint8)
    for k in range(outline.shape[0]):
        sl = ndi.binary_fill_holes(outline[k])
        if not sl.any():
            continue
        d = ndi.distance_transform_edt(np.pad(sl, 1, mode="edge"), sampling=spacing_mm)[1:-1, 1:-1]
        out[k][sl] = 2
        out[k][sl & (d <= SKIN_MM)] = 1
    return out


def _known(name: str) -> bool:
    try:
        kind_of(name)
    except ValueError:
        return False
    return True
