"""segment_mr on the phantom's T2 MR, on bad input, through the CLI, and on the real sagittal MRs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage as ndi

from surgplan.cli import main
from surgplan.core.errors import OperationCancelled, SegmentationError
from surgplan.core.progress import CancelToken
from surgplan.imaging.segment.mr import segment_mr
from surgplan.imaging.volume import ImageMetadata, Volume

LUMBAR = ("L1", "L2", "L3", "L4", "L5")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1)


@pytest.fixture(scope="module")
def phantom_mr(small_phantom):
    from surgplan.imaging.phantom import mr_volume

    return mr_volume(small_phantom)


@pytest.fixture(scope="module")
def segmented(phantom_mr):
    return segment_mr(phantom_mr)


# --- the phantom's T2 MR -------------------------------------------------------------------


def test_phantom_bodies_found_named_from_the_sacrum(segmented):
    assert segmented.vertebra_names == ("T12", "L1", "L2", "L3", "L4", "L5", "S1")
    for name in segmented.vertebra_names:
        s = segmented.structure(name)
        assert s.provenance == "segmented" and not s.provisional
        assert s.frame is not None and abs(s.frame.si[2]) > 0.7  # the SI axis points up/down
    assert any("sacrum" in f for f in segmented.findings)
    assert any("nerve roots" in f and "found in the foramen" in f for f in segmented.findings)


def test_phantom_bodies_match_the_truth(segmented, small_phantom_truth):
    for name in LUMBAR:
        truth = small_phantom_truth.part_mask("body", name)
        ours = segmented.mask(name)
        assert dice(ours, truth) >= 0.83, name
        err = np.linalg.norm(segmented.structure(name).centroid_lps
                             - _centroid(truth, small_phantom_truth.ijk_to_lps))
        assert err <= 2.5, (name, err)


def test_phantom_discs_and_dural_sac(segmented, small_phantom_truth):
    for upper, lower in zip(("L1", "L2", "L3", "L4"), ("L2", "L3", "L4", "L5")):
        name = f"disc {upper}-{lower}"
        assert segmented.structure(name).kind == "disc"
        assert dice(segmented.mask(name), small_phantom_truth.mask(name)) >= 0.7, name
    sac = segmented.mask("dural sac")
    assert dice(sac, small_phantom_truth.mask("dural sac")) >= 0.85
    # the sac lies behind the bodies, never inside them
    assert not np.any(sac & (segmented.vertebrae > 0))


def test_phantom_spinal_canal_holds_the_sac_behind_the_bodies(segmented, small_phantom_truth):
    canal = segmented.mask("spinal canal")
    sac = segmented.mask("dural sac")
    s = segmented.structure("spinal canal")
    assert s.provenance == "modelled" and "posterior wall" in s.notes
    # the sac's own label wins inside the canal: canal ∪ sac is the whole canal
    whole = canal | sac
    assert dice(whole, small_phantom_truth.mask("spinal canal")
                | small_phantom_truth.mask("dural sac")) >= 0.7
    assert not np.any(whole & (segmented.vertebrae > 0))
    # the canal adds the epidural space around the sac: more than the sac, but not twice a body
    assert 1.1 * sac.sum() < whole.sum() < 4.0 * sac.sum()


def test_phantom_roots_found_in_the_foramina(segmented, small_phantom, small_phantom_truth):
    from surgplan.imaging.segment.neural import centre_line_distance_mm

    aff = segmented.ijk_to_lps
    for level in ("L1", "L2", "L3", "L4"):
        for side in ("left", "right"):
            name = f"nerve root {level} {side}"
            s = segmented.structure(name)
            # the phantom's foraminal fat shows the root: found there, not just modelled
            assert s.provenance == "segmented" and "foramen" in s.notes, name
            vox = np.argwhere(segmented.mask(name))[:, ::-1]
            lps = vox @ aff[:3, :3].T + aff[:3, 3]
            d = centre_line_distance_mm(small_phantom.landmarks.roots[name].points_lps, lps)
            # the model alone was 3.2-3.5 mm off at L2 and L4
            assert np.nanmedian(d) <= 2.0, (name, np.nanmedian(d))
            assert dice(segmented.mask(name), small_phantom_truth.mask(name)) >= 0.55, name
    assert segmented.structure("nerve root L4 left").provisional is False


def test_phantom_skin_and_body_for_the_planner(segmented, small_phantom_truth):
    """The planner's entries and depths need the skin: the patient outline of the MR."""
    ours = (segmented.vertebrae > 0) | (segmented.structures > 0)
    truth = (small_phantom_truth.vertebrae > 0) | (small_phantom_truth.structures > 0)
    assert dice(ours, truth) >= 0.97
    skin = segmented.mask("skin")
    assert segmented.structure("skin").kind == "skin" and segmented.structure("body").kind == "body"
    # a shell: nearly all of it within 4 mm of the truth's surface
    surface = truth & ~ndi.binary_erosion(truth, iterations=3)
    assert np.count_nonzero(skin & surface) >= 0.9 * np.count_nonzero(skin)


def test_no_skin_where_the_field_cuts_the_body(phantom_mr):
    """A sagittal MR is often narrower than the patient: its cut sides are not skin."""
    i0, i1 = phantom_mr.array.shape[2] // 2 - 30, phantom_mr.array.shape[2] // 2 + 30
    aff = phantom_mr.ijk_to_lps.copy()
    aff[:3, 3] = aff[:3, :3] @ np.array([i0, 0.0, 0.0]) + aff[:3, 3]
    narrow = Volume(np.ascontiguousarray(phantom_mr.array[:, :, i0:i1]), aff,
                    metadata=phantom_mr.metadata)
    a = segment_mr(narrow)
    skin = a.mask("skin")
    inside = (a.vertebrae > 0) | (a.structures > 0)
    assert skin.any()  # the back and the belly still show theirs
    faces = [f for f in (0, 1, -2, -1) if inside[:, :, f].any()]
    assert len(faces) >= 3
    for face in faces:
        # on a cut face only the ring where the real surface crosses it is skin,
        # never the face itself (≈ 8 % here; a face drawn as skin would be 100 %)
        assert np.count_nonzero(skin[:, :, face]) < 0.2 * np.count_nonzero(inside[:, :, face])


VESSELS = ("aorta", "inferior vena cava", "common iliac artery left", "common iliac artery right",
           "common iliac vein left", "common iliac vein right")


def test_phantom_great_vessels_followed_as_flow_voids(segmented, small_phantom_truth):
    """The aorta, IVC and common iliac arteries are dark on T2: followed where they are."""
    for name in VESSELS:  # every great vessel is there for the planner, none "not assessed"
        assert segmented.mask(name).any(), name
    for name, least in (("aorta", 0.85), ("inferior vena cava", 0.75),
                        ("common iliac artery left", 0.6), ("common iliac artery right", 0.6)):
        s = segmented.structure(name)
        assert s.provenance == "segmented" and "flow void" in s.notes, (name, s.notes)
        assert dice(segmented.mask(name), small_phantom_truth.mask(name)) >= least, name
    # the phantom's iliac veins are grey, not voids: modelled, and the note says so
    vein = segmented.structure("common iliac vein left")
    assert vein.provenance == "modelled" and "ANATOMY.md" in vein.notes
    assert any("followed as dark flow voids" in f for f in segmented.findings)


def test_grey_aorta_is_modelled_in_front_of_the_bodies(phantom_mr, small_phantom,
                                                        small_phantom_truth):
    """Slow flow leaves the lumen grey: the CT model is placed from the MR bodies instead."""
    value = next(v for v, n in small_phantom.label_names.items() if n == "aorta")
    arr = phantom_mr.array.copy()
    arr[small_phantom.labels == value] = 520  # marrow grey, no void
    a = segment_mr(Volume(arr, phantom_mr.ijk_to_lps, metadata=phantom_mr.metadata))
    s = a.structure("aorta")
    assert s.provenance == "modelled" and "modelled no-go zone" in s.notes
    assert dice(a.mask("aorta"), small_phantom_truth.mask("aorta")) >= 0.7
    assert a.structure("inferior vena cava").provenance == "segmented"


def test_vessels_outside_a_narrow_field_are_named_not_invented(phantom_mr):
    """A sagittal field 32 mm across holds most of the aorta but hardly any of the IVC."""
    mid = phantom_mr.array.shape[2] // 2
    i0, i1 = mid - 10, mid + 10  # 1.6 mm voxels: ≈ 16 mm to either side of the midline
    aff = phantom_mr.ijk_to_lps.copy()
    aff[:3, 3] = aff[:3, :3] @ np.array([i0, 0.0, 0.0]) + aff[:3, 3]
    narrow = Volume(np.ascontiguousarray(phantom_mr.array[:, :, i0:i1]), aff,
                    metadata=phantom_mr.metadata)
    a = segment_mr(narrow)
    names = {s.name for s in a.items}
    assert "inferior vena cava" not in names and "common iliac artery left" not in names
    outside = next(f for f in a.findings if f.startswith("outside the field of view"))
    assert "inferior vena cava" in outside and "common iliac artery left" in outside
    aorta = a.structure("aorta")  # 12 mm left of the midline, radius 10 mm: cut, kept
    assert "the field of view cuts it" in aorta.notes


def test_axial_4mm_stack_is_segmented_and_named(phantom_mr, small_phantom_truth):
    """An axial T2 with 4 mm slices along S-I (each averaging its thickness) still works."""
    img = sitk.Cast(phantom_mr.to_sitk(), sitk.sitkFloat32)
    sp = img.GetSpacing()
    img = sitk.SmoothingRecursiveGaussian(img, [0.01, 0.01, (4.0 - sp[2]) / 2.355])
    size = list(img.GetSize())
    size[2] = int(round(size[2] * sp[2] / 4.0))
    out = sitk.Resample(img, size, sitk.Transform(), sitk.sitkLinear, img.GetOrigin(),
                        (sp[0], sp[1], 4.0), img.GetDirection(), 0.0, sitk.sitkFloat32)
    axial = Volume.from_sitk(out, metadata=phantom_mr.metadata)
    a = segment_mr(axial)
    assert a.vertebra_names == ("T12", "L1", "L2", "L3", "L4", "L5", "S1")
    for name in LUMBAR:
        truth = small_phantom_truth.part_mask("body", name)
        c = _centroid(truth, small_phantom_truth.ijk_to_lps)
        err = np.linalg.norm(a.structure(name).centroid_lps - c)
        assert err <= 4.0, (name, err)  # within a slice of the truth
    assert a.structure("dural sac").kind == "dural sac"
    assert a.structure("spinal canal").provenance == "modelled"


def test_sacrum_cut_off_makes_names_provisional(phantom_mr, small_phantom_truth):
    # keep only what lies above the middle of L5: no L5–S1 disc, no end of the sac
    z_l5 = _centroid(small_phantom_truth.mask("L5"), phantom_mr.ijk_to_lps)[2]
    k0 = int(np.ceil(phantom_mr.lps_to_index(np.array([0.0, 0.0, z_l5]))[2]))
    aff = phantom_mr.ijk_to_lps.copy()
    aff[:3, 3] = aff[:3, :3] @ np.array([0.0, 0.0, k0]) + aff[:3, 3]
    cropped = Volume(np.ascontiguousarray(phantom_mr.array[k0:]), aff,
                     metadata=phantom_mr.metadata)
    a = segment_mr(cropped)
    assert a.vertebra_names
    assert all(a.structure(n).provisional for n in a.vertebra_names)
    assert any("sacrum was not seen" in f and "provisional" in f for f in a.findings)


# --- bad input -----------------------------------------------------------------------------


def _box(shape=(40, 60, 60), spacing=2.0, value=100.0, modality="MR"):
    arr = np.zeros(shape, np.float32)
    arr[5:-5, 10:-10, 10:-10] = value
    return Volume(arr, np.diag([spacing, spacing, spacing, 1.0]),
                  metadata=ImageMetadata(modality=modality))


def test_no_spine_is_a_finding_not_a_crash():
    rng = np.random.default_rng(0)
    v = _box()
    v = Volume(np.asarray(v.array) + rng.normal(0, 5, v.array.shape).astype(np.float32),
               v.ijk_to_lps, metadata=v.metadata)
    a = segment_mr(v)
    assert a.items == () and not a.vertebrae.any()
    assert any("no spine" in f and "CSF" in f for f in a.findings)


def test_empty_image_and_tiny_field_are_findings():
    a = segment_mr(_box(value=0.0))
    assert any("one value everywhere" in f for f in a.findings)
    a = segment_mr(_box(shape=(6, 60, 60)))
    assert any("field of view" in f for f in a.findings)


def test_ct_and_non_volumes_are_refused():
    with pytest.raises(SegmentationError, match="MR only"):
        segment_mr(_box(modality="CT"))
    with pytest.raises(SegmentationError, match="Volume"):
        segment_mr(np.zeros((8, 8, 8)))
    with pytest.raises(SegmentationError, match="3D"):
        segment_mr(_box(shape=(2, 60, 60)))


def test_segment_volume_picks_the_pipeline_of_the_modality():
    """The window and the command line segment whatever series is open: MR goes to segment_mr."""
    from surgplan.imaging.segment import segment_volume

    # An MR box has no spine: segment_mr says so in its own words (CSF), not segment_ct's.
    a = segment_volume(_box(modality="MR", value=0.0))
    assert any("one value everywhere" in f for f in a.findings)
    a = segment_volume(_box(modality="CT", value=-1000.0))
    assert a.items == () and any("no spinal canal" in f and "axial slices" in f
                                 for f in a.findings)  # segment_ct's own finding


def test_cancellation_raises(phantom_mr):
    token = CancelToken()
    seen = []

    def progress(fraction, message):
        seen.append(fraction)
        token.cancel()  # at the first report: nothing after it may run to the end

    with pytest.raises(OperationCancelled):
        segment_mr(phantom_mr, progress=progress, cancel=token)
    assert max(seen) < 0.2


# --- the command line ----------------------------------------------------------------------


def test_segment_command_on_an_mr_series(small_phantom, phantom_mr, tmp_path, capsys):
    from surgplan.imaging.dicom.writer import write_series

    d = tmp_path / "mr"
    write_series(phantom_mr, d, modality="MR")
    out = tmp_path / "seg"
    assert main(["segment", str(d), "--out", str(out), "--no-meshes"]) == 0
    text = capsys.readouterr().out
    assert "vertebrae (7): T12, L1, L2, L3, L4, L5, S1" in text
    table = json.loads((out / "labels.json").read_text())
    verts = table["files"]["vertebrae.nii.gz"]
    assert [v["name"] for v in verts] == ["T12", "L1", "L2", "L3", "L4", "L5", "S1"]
    assert all(v["provenance"] == "segmented" for v in verts)
    lab = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "vertebrae.nii.gz")))
    assert set(np.unique(lab)) - {0} == {v["value"] for v in verts}


def test_segment_command_needs_the_modality_of_a_nifti(tmp_path, capsys):
    p = tmp_path / "scan.nii.gz"
    sitk.WriteImage(_box().to_sitk(), str(p))
    assert main(["segment", str(p), "--out", str(tmp_path / "o")]) == 1
    assert "--modality mr" in capsys.readouterr().err


# --- the real sagittal T2 scans ------------------------------------------------------------

#: Label ids of the manual masks in anatomical order (README of mri-lumbar-sagittal).
REAL_LEVELS = {
    "VB2_02": {7: "T11", 6: "T12", 5: "L1", 4: "L2", 3: "L3", 1: "L4", 2: "L5"},
    "VB3_01": {1: "L1", 2: "L2", 3: "L3", 4: "L4", 5: "L5"},
}


@pytest.mark.realdata
@pytest.mark.parametrize("case", sorted(REAL_LEVELS))
def test_real_sagittal_mr_bodies_and_names(shared_data, case):
    vol, ref, note = load_real_mr(shared_data / "mri-lumbar-sagittal", case)
    a = segment_mr(vol)
    scores = []
    for value, level in REAL_LEVELS[case].items():
        r = ref == value
        counts = np.bincount(a.vertebrae[r], minlength=len(a.vertebra_names) + 1)
        counts[0] = 0
        assert counts.any(), f"{case}: no body over the reference {level}"
        label = int(np.argmax(counts))
        ours = next(s for s in a.items if s.map == "vertebrae" and s.label == label)
        assert ours.name == level, (case, value, ours.name, level)
        scores.append(dice(a.vertebrae == label, r))
    assert min(scores) >= 0.70, (case, np.round(scores, 3))
    assert np.mean(scores) >= 0.80, (case, np.round(scores, 3))  # the target
    # canal and roots: behind the bodies, each root said to be found or modelled
    canal = a.mask("spinal canal") | a.mask("dural sac")
    assert canal.any() and not np.any(canal & (a.vertebrae > 0))
    for level in ("L1", "L2", "L3", "L4", "L5"):
        for side in ("left", "right"):
            s = a.structure(f"nerve root {level} {side}")
            assert s.provenance in ("segmented", "modelled")
            assert ("segmented in the foramen" in s.notes) == (s.provenance == "segmented")
    assert a.structure("skin").kind == "skin"
    # the great vessels: in front of the bodies, each followed as a flow void or modelled
    labelled = {s.name for s in a.items}
    assert "aorta" in labelled
    for name in set(VESSELS) & labelled:
        s = a.structure(name)
        assert s.provenance in ("segmented", "modelled")
        bodies = [a.structure(n).centroid_lps for n in a.vertebra_names]
        near = min(bodies, key=lambda c: abs(c[2] - s.centroid_lps[2]))  # the body at its height
        assert s.centroid_lps[1] < near[1] - 10.0, name  # anterior


def load_real_mr(folder, case):
    """The image (as MR) and its label map on the same grid, and what was done to fit them.

    VB2_02's label map has one slice more along the sagittal axis than its image
    (77 against 76).  Its first and last slices hold no label, so the last one is
    cropped and the note says so; any other mismatch raises.
    """
    import dataclasses

    from surgplan.imaging.volume_files import read_volume_file

    vol = read_volume_file(folder / f"{case}_img.nii.gz")
    vol = vol.replace(metadata=dataclasses.replace(vol.metadata, modality="MR"))
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"{case}_label.nii.gz")))
    note = ""
    if ref.shape != vol.array.shape:
        extra = np.array(ref.shape) - np.array(vol.array.shape)
        axis = int(np.argmax(extra))
        if sorted(extra.tolist()) != [0, 0, 1] or ref.take(-1, axis=axis).any():
            raise ValueError(f"{case}: label map {ref.shape} does not fit image "
                             f"{vol.array.shape} by one empty slice")
        ref = np.delete(ref, -1, axis=axis)
        note = (f"{case}: the label map has one slice more than the image along array axis "
                f"{axis}; that last slice is empty and was cropped")
    return vol, ref, note


def _centroid(mask: np.ndarray, aff: np.ndarray) -> np.ndarray:
    return aff[:3, :3] @ np.argwhere(mask).mean(0)[::-1] + aff[:3, 3]


def test_mr_roots_carry_their_centre_lines(segmented):
    from surgplan.imaging.segment.neural import polyline_distance_mm

    roots = {s.name for s in segmented.items if s.kind == "nerve root"}
    assert roots and set(segmented.root_paths) == roots
    for name, pts in segmented.root_paths.items():
        vox = np.argwhere(segmented.mask(name))[:, ::-1] @ segmented.ijk_to_lps[:3, :3].T \
            + segmented.ijk_to_lps[:3, 3]
        # the painted root is the tube around its line (radius <= 3.5 mm, 1.6 mm voxels)
        assert np.mean(polyline_distance_mm(vox, pts) <= 5.5) >= 0.95, name


# --- the front of a body off the midline ---------------------------------------------------


def _body_with_crus(spot: bool):
    """A 40 × 30 mm oval of marrow (100) in a 2.5 mm dark cortex (30), with tissue of the
    marrow's signal all around it (the crus and psoas of upper lumbar levels on T2)."""
    from types import SimpleNamespace

    from surgplan.imaging.segment.grid import WorkGrid

    img = np.full((40, 80, 80), 100.0, np.float32)
    y, x = np.mgrid[0:80, 0:80].astype(float)
    r = np.sqrt(((x - 40) / 20.0) ** 2 + ((y - 45) / 15.0) ** 2)
    img[:, (r > 1.0) & (r < 1.0 + 2.5 / 15.0)] = 30.0
    if spot:
        # a dark vein inside the marrow, 8 mm in front of the centre and 4 mm aside
        img[:, 36:39, 43:46] = 30.0
    grid = WorkGrid(np.zeros(3), 1.0, img.shape)
    sg = SimpleNamespace(centre_lps=np.array([40.0, 45.0, 20.0]), t=np.array([0.0, 0, 1]),
                         u=np.array([1.0, 0, 0]), v=np.array([0.0, 1, 0]))
    return img, grid, sg


def test_body_front_recedes_at_the_sides_where_marrow_like_tissue_lies_in_front():
    """Beside the midline the outline stops at the anterolateral cortex, not at the
    search limit in the crus in front of it; a dark spot inside the marrow is no wall."""
    from surgplan.imaging.segment.mr import spine as ms

    for spot in (False, True):
        img, grid, sg = _body_with_crus(spot)
        offs, front = ms.front_profile(img, grid, sg, (16.0, 15.0, 20.0, 20.0), 85.0, 115.0)
        # the cortex lies at 15·sqrt(1 − (u/20)²) mm in front of the centre
        expected = 15.0 * np.sqrt(1.0 - (offs / 20.0) ** 2)
        assert np.all(np.abs(front - expected) <= 1.5), (spot, offs, front, expected)
        side = np.abs(offs) >= 12.0
        assert side.any() and np.all(front[side] < 13.0)
