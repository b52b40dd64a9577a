"""segment_ct on synthetic inputs (no spine, MR intensities, cancellation), the phantom
(accuracy against its exact labels, naming with transitional anatomy) and the real CT."""

import json

import numpy as np
import pytest
import SimpleITK as sitk

from surgplan.core.errors import OperationCancelled, SegmentationError
from surgplan.core.progress import CancelToken
from surgplan.imaging.segment import segment_ct
from surgplan.imaging.volume import ImageMetadata, Volume

REF_IDS = {"S1": 26, "L5": 27, "L4": 28, "L3": 29, "L2": 30, "L1": 31, "T12": 32, "T11": 33}


def _cylinder(value_hu=0, air=-1000, shape=(40, 80, 80), spacing=2.0):
    k, j, i = np.indices(shape)
    r = np.hypot(i - shape[2] / 2, j - shape[1] / 2)
    arr = np.where(r < shape[2] / 3, value_hu, air).astype(np.int16)
    aff = np.diag([spacing, spacing, spacing, 1.0])
    return Volume(arr, aff, metadata=ImageMetadata(modality="CT"))


def test_water_cylinder_has_no_spine():
    a = segment_ct(_cylinder())
    assert a.items == ()
    assert not a.vertebrae.any()
    assert any("no spine" in f for f in a.findings)


def test_mr_intensities_passed_as_ct_give_a_clear_finding():
    v = _cylinder(value_hu=400, air=0)
    a = segment_ct(v)
    assert not a.vertebrae.any()
    assert any("MR" in f and "Hounsfield" in f for f in a.findings)


def test_mr_metadata_and_non_volume_raise():
    v = _cylinder().replace(metadata=ImageMetadata(modality="MR"))
    with pytest.raises(SegmentationError, match="CT only"):
        segment_ct(v)
    with pytest.raises(SegmentationError, match="Volume"):
        segment_ct(np.zeros((4, 4, 4)))


def test_tiny_field_of_view_is_a_finding():
    a = segment_ct(_cylinder(shape=(4, 80, 80)))
    assert any("field of view" in f for f in a.findings)


def test_cancellation_raises_and_returns_nothing():
    token = CancelToken()
    seen = []

    def progress(fraction, message):
        seen.append(fraction)
        if fraction >= 0.05:
            token.cancel()

    with pytest.raises(OperationCancelled):
        segment_ct(_cylinder(), progress=progress, cancel=token)
    assert seen and max(seen) < 1.0


@pytest.fixture(scope="module")
def real_ct(shared_data):
    from surgplan.imaging.volume_files import read_volume_file

    d = shared_data / "ct-abdomen-lumbar"
    vol = read_volume_file(d / "ct.nii.gz")
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(d / "reference-labels.nii.gz")))
    return vol, ref, d


@pytest.fixture(scope="module")
def real_anatomy(real_ct):
    return segment_ct(real_ct[0])


@pytest.mark.realdata
def test_real_ct_lumbar_dice_target(real_ct, real_anatomy):
    """Issue 3's target: Dice ≥ 0.85 against the reference for each of L1–L5, names right."""
    vol, ref, _ = real_ct
    a = real_anatomy
    aff = vol.ijk_to_lps
    for name in ("L1", "L2", "L3", "L4", "L5"):
        assert _dice(a, ref, name) >= 0.85, name
        # the reference vertebra that our label of this name covers most is this one
        covered = np.bincount(ref[a.mask(name)], minlength=40)
        covered[0] = 0
        assert int(np.argmax(covered)) == REF_IDS[name], name
        r = np.argwhere(ref == REF_IDS[name]).mean(0)[::-1] @ aff[:3, :3].T + aff[:3, 3]
        assert np.linalg.norm(a.structure(name).centroid_lps - r) <= 4.0, name
    # T12's ribs are in view and the sacrum is there: the count is confirmed
    assert not any(a.structure(n).provisional for n in a.vertebra_names), a.findings
    assert "S1" in a.vertebra_names
    assert "spinal canal" in a.names and "disc L4-L5" in a.names
    s = a.structure("L4")
    assert s.frame is not None and s.frame.si[2] > 0.8 and s.frame.ap[1] > 0.5


def _dice(a, ref, name):
    m = a.mask(name)
    r = ref == REF_IDS[name]
    return 2 * (m & r).sum() / (m.sum() + r.sum())


@pytest.mark.realdata
def test_real_ct_without_sacrum_gets_provisional_names(real_ct):
    vol, ref, _ = real_ct
    # crop away everything below the L4 body: no sacrum, no ilia at the bottom
    k_cut = int(np.argwhere(ref == REF_IDS["L4"])[:, 0].min()) - 2
    cropped = vol.replace(array=np.asarray(vol.array)[k_cut:],
                          ijk_to_lps=vol.ijk_to_lps @ _shift_k(k_cut))
    a = segment_ct(cropped)
    assert a.vertebra_names, a.findings
    assert all(a.structure(n).provisional for n in a.vertebra_names)
    assert "S1" not in a.vertebra_names
    assert any("sacrum" in f for f in a.findings)


def _shift_k(k):
    t = np.eye(4)
    t[2, 3] = k
    return t


# --- phantom: exact ground truth ------------------------------------------------------------
VERTEBRAE = ("T12", "L1", "L2", "L3", "L4", "L5", "S1")


@pytest.fixture(scope="module")
def phantom_anatomy(small_phantom):
    return segment_ct(small_phantom.ct)


def _truth_of(case, anatomy, name):
    """The phantom's name for the structure our ``name`` covers most."""
    counts = np.bincount(case.labels[anatomy.mask(name)].ravel())
    counts[0] = 0
    return case.label_names[int(np.argmax(counts))]


def _phantom_dice(case, anatomy, name):
    m = anatomy.mask(name)
    r = case.labels == case.label_value(name)
    return 2 * np.count_nonzero(m & r) / (np.count_nonzero(m) + np.count_nonzero(r))


def test_phantom_vertebrae_are_whole_and_named_right(small_phantom, phantom_anatomy):
    """Every vertebra of the 1.6 mm phantom, its arch included, with its right name.

    Floors are this grid's measured figures less a margin (L1–L4 0.94–0.96, L5
    0.92; T12 0.94 and S1 0.95 since the rib heads and the ilia are cut off at
    their joints on the input's grid, before 0.90 and 0.89);
    benchmarks/segmentation.py prints the full-resolution figures against the
    0.93 target.
    """
    case, a = small_phantom, phantom_anatomy
    assert a.vertebra_names == VERTEBRAE
    aff = case.ct.ijk_to_lps
    for name in VERTEBRAE:
        assert _truth_of(case, a, name) == name
        assert not a.structure(name).provisional, a.findings
        floor = {"T12": 0.91, "S1": 0.92, "L5": 0.88}.get(name, 0.91)
        assert _phantom_dice(case, a, name) >= floor, name
        r = np.argwhere(case.labels == case.label_value(name)).mean(0)[::-1] @ aff[:3, :3].T + aff[:3, 3]
        assert np.linalg.norm(a.structure(name).centroid_lps - r) <= 3.5, name
    assert any("T12" in f and "agrees" in f for f in a.findings)


def test_phantom_discs_between_the_right_vertebrae(small_phantom, phantom_anatomy):
    """Each disc fills the space between its endplates, not the psoas beside it.

    The floor is this grid's measured figure (0.87–0.94) less a margin; before
    the disc edge was taken at the half-maximum against the endplate cortex and
    bounded by the endplates' footprint, the full-resolution discs were 0.75–0.86.
    """
    case, a = small_phantom, phantom_anatomy
    for upper, lower in zip(VERTEBRAE[:-1], VERTEBRAE[1:]):
        name = f"disc {upper}-{lower}"
        assert _phantom_dice(case, a, name) >= 0.83, name


def test_bone_taken_across_a_joint_space_goes_back_to_its_own_side():
    """A vertebra label that took a neighbour bone's edge across a 2 mm joint space loses it.

    Two bone blocks (sacrum, ilium) with a fat-filled joint space between them;
    the sacrum's label reaches 14 mm into the ilium, as the working grid's
    split left it where the joint blurred shut.
    """
    from surgplan.imaging.segment.vertebrae import split_sacroiliac

    sp = 0.8
    hu = np.full((30, 50, 140), -100, np.int16)
    hu[5:25, 10:40, 10:70] = 300    # sacrum, x 8–56 mm
    hu[5:25, 10:40, 73:130] = 300   # ilium beyond a 2.4 mm joint space
    vert = np.zeros(hu.shape, np.uint16)
    vert[5:25, 10:40, 10:90] = 7    # the label reaches into the ilium
    vert[5:25, 10:40, 70:73] = 7    # and holds the joint space
    aff = np.diag([sp, sp, sp, 1.0])
    centre = np.array([40 * sp, 12 * sp, 15 * sp])  # midline plane at x = 32 mm
    out = split_sacroiliac(vert, hu, aff, 7, centre, np.array([1.0, 0, 0]), np.array([0, 1.0, 0]))
    assert not np.any(out[:, :, 73:] == 7)
    assert np.all(out[5:25, 10:40, 10:70] == 7)
    assert not np.any(out[vert == 0])


@pytest.mark.parametrize("spec, expect", [
    (dict(lumbar_count=6), "six lumbar"),
    (dict(ribs=False), "no rib-bearing vertebra"),
    (dict(fov_z_mm=(20.0, 240.0)), "sacrum is out of view"),
], ids=["six-lumbar", "no-ribs", "sacrum-cropped"])
def test_transitional_or_cut_spine_is_flagged_not_guessed(spec, expect):
    """Six lumbar vertebrae, no T12 ribs, or no sacrum in view: names provisional, said why."""
    from surgplan.imaging.phantom import PhantomSpec, make_phantom

    case = make_phantom(PhantomSpec(spacing_mm=(2.0, 2.0, 2.0), **spec))
    a = segment_ct(case.ct)
    assert a.vertebra_names, a.findings
    assert all(a.structure(n).provisional for n in a.vertebra_names)
    assert any(expect in f for f in a.findings), a.findings
    # a root or foramen named after a provisional vertebra is provisional with it
    named_after = [s for s in a.items if s.kind in ("nerve root", "foramen")]
    assert named_after and all(s.provisional for s in named_after)
    # provisional, but still the count a surgeon would make from the anchors seen
    for name in a.vertebra_names:
        assert _truth_of(case, a, name) == name
    if "fov_z_mm" in spec:
        assert "S1" not in a.vertebra_names
    if spec.get("lumbar_count") == 6:
        assert "L6" in a.vertebra_names


def _pedicle_with_lost_core():
    """A 0.8 mm grid holding a bone rod (1000 HU cortex round 210 HU cancellous bone) in
    40 HU soft tissue, labelled 1 except for a stretch of its core, as the working grid
    leaves a thin pedicle."""
    from scipy import ndimage as ndi

    hu = np.full((40, 40, 40), 40.0, np.float32)
    kk, jj, ii = np.indices(hu.shape)
    r = np.hypot(jj - 20, ii - 20) * 0.8  # mm from the rod's axis
    rod = (r <= 5.0) & (kk >= 5) & (kk < 35)
    hu[rod] = 210.0
    hu[rod & (r > 4.0)] = 1000.0
    hu = ndi.gaussian_filter(hu, 0.6)
    vert = np.where(rod, 1, 0).astype(np.uint16)
    core = rod & (r <= 3.0) & (kk >= 15) & (kk < 25)
    vert[core] = 0
    return hu, vert, rod, core


def test_vertebra_reclaims_the_cancellous_core_it_lost_but_no_soft_tissue():
    from surgplan.imaging.segment.vertebrae import reclaim_own_bone

    hu, vert, rod, core = _pedicle_with_lost_core()
    free = np.ones(vert.shape, bool)
    out = reclaim_own_bone(vert, hu, (0.8, 0.8, 0.8), free, 1.5)
    assert np.all(out[core] == 1)
    assert not np.any(out[~rod])  # the soft tissue round the cortex stays unlabelled
    # a voxel another structure holds is left to it; a skipped label does not grow;
    # at the working grid's own resolution nothing is touched
    held = free.copy()
    held[20, 20, 20] = False
    assert reclaim_own_bone(vert, hu, (0.8, 0.8, 0.8), held, 1.5)[20, 20, 20] == 0
    assert not np.any(reclaim_own_bone(vert, hu, (0.8, 0.8, 0.8), free, 1.5, skip=[1])[core])
    assert np.array_equal(reclaim_own_bone(vert, hu, (1.5, 1.5, 1.5), free, 1.5), vert)
