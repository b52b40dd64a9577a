"""The DICOM reader on real scans from ../shared/data (marker ``realdata``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from surgplan.imaging.dicom import pixels
from surgplan.imaging.dicom.index import index_files
from surgplan.imaging.dicom.reader import load_series

pytestmark = pytest.mark.realdata


def files_in(folder: Path) -> list:
    return sorted(p for p in folder.iterdir() if p.is_file())


def only_series(paths):
    idx = index_files(paths)
    assert idx.skipped == [], idx.skipped
    assert len(idx.series) == 1, [s.uid for s in idx.series]
    return idx.series[0]


def codes(vol) -> set:
    return {w.code for w in vol.warnings}


@pytest.fixture(scope="module")
def gantry(shared_data):
    series = only_series(files_in(shared_data / "ct-head-gantry-tilt" / "dicom"))
    return series, load_series(series)


def test_gantry_tilt_head_ct_is_flagged_and_resampled(gantry):
    series, vol = gantry
    assert {"gantry-tilt", "irregular-spacing", "resampled"} <= codes(vol)
    tilt = next(w.message for w in vol.warnings if w.code == "gantry-tilt")
    assert "18.5°" in tilt
    irregular = next(w.message for w in vol.warnings if w.code == "irregular-spacing")
    assert "1.08 to 7.00 mm" in irregular
    assert vol.array.dtype == np.int16
    # k runs along the true slice normal, not along the table.
    r, c = np.array(series.orientation[:3]), np.array(series.orientation[3:])
    assert np.allclose(vol.direction[:, 2], np.cross(r, c), atol=1e-5)


def test_gantry_tilt_voxels_sit_where_the_original_slice_pixels_were(gantry):
    """Compare world positions of original pixels with the volume's sampling there."""
    series, vol = gantry
    geom = series.geometry
    sk = float(vol.spacing_mm[2])
    for m in (0, 7, 13, 14, 15, 27):  # both sides of the 1.08 mm and 7 mm changes
        s = series.slices[geom.order[m]]
        original, _ = pixels.stored_to_values(pixels.decode_stored(s), s, np.dtype(np.float32),
                                              invert_monochrome1=False)
        j, i = np.mgrid[0:s.pixel.rows:8, 0:s.pixel.columns:8]
        r = np.array(s.orientation[:3])
        c = np.array(s.orientation[3:])
        sj, si = s.pixel_spacing_mm
        world = (np.array(s.position_lps) + i[..., None] * si * r + j[..., None] * sj * c)
        ijk = vol.lps_to_index(world.reshape(-1, 3))
        # 1. The slice's plane lies on a k-plane of the grid (within 0.5 mm).
        assert np.ptp(ijk[:, 2]) < 1e-6
        assert abs(ijk[0, 2] - round(ijk[0, 2])) * sk < 0.5, m
        # 2. Its pixels fall inside the in-plane grid (nothing was cropped).
        ni, nj, _ = vol.shape_ijk
        assert ijk[:, 0].min() > -0.5 and ijk[:, 0].max() < ni - 0.5
        assert ijk[:, 1].min() > -0.5 and ijk[:, 1].max() < nj - 0.5
        # 3. Sampling the volume there returns the original pixel values, and
        # shifting the sample points along the normal only makes it worse: the
        # best match is within 0.5 mm of the original position.
        values = original[::8, ::8].ravel()
        errors = {}
        for shift_mm in (-2.0, -1.0, 0.0, 1.0, 2.0):
            pts = ijk + np.array([0.0, 0.0, shift_mm / sk])
            sampled = ndimage.map_coordinates(vol.array.astype(np.float32), pts[:, ::-1].T,
                                              order=1, cval=-1024)
            errors[shift_mm] = float(np.median(np.abs(sampled - values)))
        assert errors[0.0] <= 2.0, (m, errors)
        assert min(errors, key=errors.get) == 0.0, (m, errors)


def test_j2k_ct_with_empty_uids_has_bone_in_the_t12_label(shared_data):
    import SimpleITK as sitk

    folder = shared_data / "ct-abdomen-lumbar"
    series = only_series(files_in(folder / "dicom-j2k-20-slices"))
    assert series.uid.startswith("synth-") and series.uid_synthesised
    vol = load_series(series)
    assert "empty-uid" in codes(vol)
    assert vol.array.shape == (20, 512, 512) and vol.array.dtype == np.int16
    assert vol.spacing_mm == pytest.approx([0.9765625, 0.9765625, 2.0])
    assert vol.metadata.series_description == "CT Body 3.0"

    labels = sitk.ReadImage(str(folder / "dicom-j2k-20-slices-reference-labels.nii.gz"))
    lab = sitk.GetArrayViewFromImage(labels)  # [k, j, i]
    k, j, i = np.nonzero(lab == 32)
    assert k.size > 1000
    # SimpleITK gives physical space in LPS: index → LPS by its own geometry.
    direction = np.array(labels.GetDirection()).reshape(3, 3)
    idx = np.stack([i, j, k], axis=1).astype(float)
    lps = idx * np.array(labels.GetSpacing()) @ direction.T + np.array(labels.GetOrigin())
    vox = np.rint(vol.lps_to_index(lps)).astype(int)
    assert np.all(vox >= 0) and np.all(vox < np.array(vol.shape_ijk))
    hu = vol.array[vox[:, 2], vox[:, 1], vox[:, 0]]
    assert hu.mean() > 150, hu.mean()
    # …and soft tissue/air outside it is far less dense on average.
    assert vol.array.mean() < 0


def test_mr_slice_in_nine_transfer_syntaxes_decodes_pixel_identically(shared_data):
    folder = shared_data / "dicom-codecs" / "mr-slice-9-transfer-syntaxes"
    arrays, syntaxes = [], set()
    for path in files_in(folder):
        series = only_series([path])
        syntaxes.add(series.slices[0].pixel.transfer_syntax_uid)
        vol = load_series(series)
        assert vol.array.shape == (1, 384, 384)
        assert vol.spacing_mm[2] == pytest.approx(3.0)  # from SliceThickness, with a note
        assert any("SliceThickness" in w.message for w in vol.warnings)
        arrays.append(vol.array)
    assert len(arrays) == 9 and len(syntaxes) >= 7
    for a in arrays[1:]:
        assert np.array_equal(a, arrays[0])


LOSSLESS_VARIANTS = [
    "CT0012.explicit_little_endian.dcm",
    "CT0012.fragmented_no_bot_jpeg_lossless.57.dcm",
    "CT0012.fragmented_no_bot_jpeg_lossless.70.dcm",
    "CT0012.fragmented_no_bot_jpeg_ls.80.dcm",
    "CT0012.not_fragmented_bot_jpeg_ls.80.dcm",
    "CT0012.not_fragmented_bot_rle.dcm",
    "CT0012.not_fragmented_no_bot_jpeg_ls.80.dcm",
    "CT0012.not_fragmented_no_bot_rle.dcm",
]


def test_enhanced_ct_multiframe_variants_load_to_the_same_volume(shared_data):
    folder = shared_data / "dicom-codecs" / "enhanced-ct-multiframe"
    vols = {}
    for path in files_in(folder):
        idx = index_files([path])
        if not idx.series:  # the ultrasound clip, when present
            assert "ultrasound" in idx.skipped[0].reason
            continue
        vols[path.name] = load_series(idx.series[0])
    assert set(LOSSLESS_VARIANTS) <= set(vols)
    ref = vols[LOSSLESS_VARIANTS[0]]
    assert ref.array.shape == (2, 512, 512) and ref.array.dtype == np.int16
    # Frames sorted along the normal (0, 0, -1): z = -149 first, then -159.
    assert ref.slice_positions_lps()[:, 2] == pytest.approx([-149.0, -159.0])
    assert ref.spacing_mm == pytest.approx([0.388672, 0.388672, 10.0])
    assert ref.array.min() == -1024  # rescale intercept from the functional groups
    for name, vol in vols.items():
        assert np.allclose(vol.ijk_to_lps, ref.ijk_to_lps), name
        diff = np.abs(vol.array.astype(np.int32) - ref.array)
        if name in LOSSLESS_VARIANTS:
            assert diff.max() == 0, name
        elif name.endswith(".81.dcm"):  # JPEG-LS near-lossless: bounded error
            assert diff.max() <= 2, name
            assert any("lossy" in w.message for w in vol.warnings)
        else:  # lossy JPEG: same image (in this file offset by ~1024), flagged lossy
            assert np.corrcoef(vol.array.ravel(), ref.array.ravel())[0, 1] > 0.99, name
            assert any("lossy" in w.message for w in vol.warnings)
