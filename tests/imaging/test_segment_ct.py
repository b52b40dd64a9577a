"""segment_ct on synthetic inputs (no spine, MR intensities, cancellation) and the real CT."""

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
def test_real_ct_lumbar_dice_and_names(real_ct, real_anatomy):
    _, ref, d = real_ct
    a = real_anatomy
    for name in ("L1", "L2", "L3", "L4", "L5"):
        # measured floor of this stage (L1–L4 ≈ 0.81–0.85, L5 ≈ 0.71); the
        # 0.85 target is the xfail test below
        assert _dice(a, ref, name) >= (0.68 if name == "L5" else 0.78), name
    assert "S1" in a.vertebra_names
    assert "spinal canal" in a.names and "disc L4-L5" in a.names
    s = a.structure("L4")
    assert s.frame is not None and s.frame.si[2] > 0.8 and s.frame.ap[1] > 0.5


@pytest.mark.realdata
@pytest.mark.xfail(
    reason="target Dice 0.85 per level not yet reached (L1, L4, L5 below)", strict=True
)
def test_real_ct_lumbar_dice_target(real_ct, real_anatomy):
    for name in ("L1", "L2", "L3", "L4", "L5"):
        assert _dice(real_anatomy, real_ct[1], name) >= 0.85, name


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
