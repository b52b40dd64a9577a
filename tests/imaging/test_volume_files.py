"""NIfTI / NRRD / MHA volumes arrive in LPS, CT as int16 HU."""

import numpy as np
import pytest
import SimpleITK as sitk

from surgplan.core.errors import VolumeFileError
from surgplan.imaging.volume_files import read_volume_file, write_label_volume


def write_nifti_ras(path, arr, affine_ras):
    """Write a NIfTI whose header states ``affine_ras`` (index → RAS), as other tools do."""
    img = sitk.GetImageFromArray(arr)
    # ITK holds LPS; RAS→LPS negates x and y of both the directions and the origin.
    lps = np.diag([-1, -1, 1]) @ affine_ras[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    img.SetSpacing(spacing.tolist())
    img.SetDirection((lps / spacing).ravel().tolist())
    img.SetOrigin((np.array([-1, -1, 1]) * affine_ras[:3, 3]).tolist())
    sitk.WriteImage(img, str(path))


def test_nifti_ras_affine_becomes_lps(tmp_path):
    arr = (np.arange(4 * 5 * 6).reshape(6, 5, 4) - 1000).astype(np.int32)
    aff_ras = np.diag([2.0, 3.0, 4.0, 1.0])
    aff_ras[:3, 3] = [10.0, -20.0, 30.0]
    p = tmp_path / "ct.nii.gz"
    write_nifti_ras(p, arr, aff_ras)
    v = read_volume_file(p, modality="CT")
    # RAS (10, -20, 30) is LPS (-10, 20, 30); +i runs toward the Right = −x in LPS.
    np.testing.assert_allclose(v.origin_lps, [-10, 20, 30], atol=1e-5)
    np.testing.assert_allclose(v.ijk_to_lps[:3, :3], np.diag([-2.0, -3.0, 4.0]), atol=1e-6)
    assert v.array.dtype == np.int16  # SimpleITK gives int32; CT is kept as int16
    np.testing.assert_array_equal(v.array, arr)


def test_ct_guessed_from_air_and_mr_left_unknown(tmp_path):
    ct = np.full((8, 16, 16), -1000, np.int16)
    ct[2:6, 4:12, 4:12] = 400
    p = tmp_path / "ct.mha"
    sitk.WriteImage(sitk.GetImageFromArray(ct), str(p))
    assert read_volume_file(p).modality == "CT"
    mr = np.random.default_rng(0).integers(0, 255, (8, 16, 16)).astype(np.uint8)
    q = tmp_path / "mr.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(mr), str(q))
    v = read_volume_file(q)
    assert v.modality == "" and any("--modality" in w.message for w in v.warnings)
    assert read_volume_file(q, modality="mr").modality == "MR"


def test_bad_volume_files_name_the_file(tmp_path):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(VolumeFileError, match="broken.nii.gz"):
        read_volume_file(bad)
    four_d = tmp_path / "4d.nii"
    sitk.WriteImage(sitk.JoinSeries([sitk.Image(4, 4, 4, sitk.sitkUInt8)] * 3), str(four_d))
    with pytest.raises(VolumeFileError, match="4D"):
        read_volume_file(four_d)


def test_label_volume_written_on_the_image_grid(tmp_path):
    arr = np.zeros((6, 5, 4), np.int16)
    p = tmp_path / "ct.nii.gz"
    aff = np.diag([2.0, 3.0, 4.0, 1.0])
    write_nifti_ras(p, arr, aff)
    v = read_volume_file(p, modality="CT")
    labels = np.zeros(v.array.shape, np.uint8)
    labels[1, 2, 3] = 7
    out = tmp_path / "labels.nii.gz"
    write_label_volume(out, labels, v)
    back = read_volume_file(out, modality="MR")
    np.testing.assert_array_equal(back.array, labels)
    np.testing.assert_allclose(back.ijk_to_lps, v.ijk_to_lps, atol=1e-6)


@pytest.mark.realdata
def test_real_abdominal_ct_nifti(shared_data):
    v = read_volume_file(shared_data / "ct-abdomen-lumbar" / "ct.nii.gz")
    assert v.modality == "CT" and v.array.dtype == np.int16
    assert v.shape_ijk == (122, 101, 112)
    np.testing.assert_allclose(v.spacing_mm, [3, 3, 3], atol=1e-4)
    # The header's sform row x is +3 (RAS): in LPS the i axis points to the patient's right.
    assert v.ijk_to_lps[0, 0] == pytest.approx(-3.0, abs=1e-4)
