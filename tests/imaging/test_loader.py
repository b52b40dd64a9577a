"""A user's path to a volume: folder, zip, DICOMDIR; oddities of real acquisitions.

The phantom is written as DICOM the way a scanner would (tilted, irregular,
with a slice missing, with junk beside it) and read back through the one
entry point the GUI and the CLI use.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from surgplan.core.errors import NoVolumeError, OperationCancelled
from surgplan.core.progress import CancelToken
from surgplan.imaging.dicom.writer import write_series
from surgplan.imaging.loader import index_input, load_volume
from surgplan.imaging.phantom import PhantomSpec, make_phantom


@pytest.fixture(scope="module")
def case():
    return make_phantom(PhantomSpec(spacing_mm=(2.0, 2.0, 2.0), seed=3))


@pytest.fixture(scope="module")
def series_dir(case, tmp_path_factory):
    d = tmp_path_factory.mktemp("ct")
    write_series(case.ct, d, modality="CT")
    return d


def snapshot(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
    }


def test_folder_load_matches_the_phantom_and_writes_nothing(case, series_dir):
    before = snapshot(series_dir)
    vol = load_volume(series_dir)
    assert snapshot(series_dir) == before
    np.testing.assert_array_equal(vol.array, case.ct.array)
    np.testing.assert_allclose(vol.ijk_to_lps, case.ct.ijk_to_lps, atol=1e-3)
    assert vol.metadata.patient_name == case.ct.metadata.patient_name
    assert vol.frame_of_reference_uid == case.ct.frame_of_reference_uid
    assert vol.warnings == ()


def test_bad_files_among_good_ones_load_the_good_series_with_warnings(case, series_dir, tmp_path):
    d = tmp_path / "study"
    shutil.copytree(series_dir, d)
    (d / "notes.txt").write_text("referral letter")
    first = sorted(d.glob("*.dcm"))[0].read_bytes()
    (d / "broken.dcm").write_bytes(first[: len(first) // 3])  # an interrupted copy
    vol = load_volume(d)
    np.testing.assert_array_equal(vol.array, case.ct.array)
    skipped = {w.message.split(":")[0] for w in vol.warnings if w.code == "skipped-file"}
    assert skipped == {str(d / "notes.txt"), str(d / "broken.dcm")}


def test_zip_and_dicomdir_give_the_same_volume(case, series_dir, tmp_path):
    from pydicom.fileset import FileSet

    arc = tmp_path / "export.zip"
    with zipfile.ZipFile(arc, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(series_dir.iterdir()):
            zf.write(p, f"PATIENT/CT/{p.name}")
    v_zip = load_volume(arc)
    np.testing.assert_array_equal(v_zip.array, case.ct.array)
    assert not [p for p in Path(os.environ.get("TMPDIR", "/tmp")).glob("surgplan-zip-*")
                if p.stat().st_mtime > arc.stat().st_mtime]  # the unpacked copy is gone

    fs = FileSet()
    for p in sorted(series_dir.iterdir()):
        fs.add(p)
    fs.write(tmp_path / "media")
    v_dir = load_volume(tmp_path / "media" / "DICOMDIR")
    np.testing.assert_array_equal(v_dir.array, case.ct.array)


def test_tilted_irregular_and_gapped_series_are_flagged_and_placed(case, tmp_path):
    z0, z1 = case.ct.bounds_lps()[0][2], case.ct.bounds_lps()[1][2]
    # Mostly 2 mm, every 5th step 3.3 mm: irregular, and no whole multiple of the step
    # (that would read as a missing slice instead).
    steps = np.where(np.arange(200) % 5 == 3, 3.3, 2.0)
    positions = z0 + 10 + np.concatenate([[0], np.cumsum(steps)[:-1]])
    positions = positions[positions < z1 - 10]
    d = tmp_path / "odd"
    write_series(case.ct, d, modality="CT", gantry_tilt_deg=12.0, slice_positions_mm=positions)
    with index_input(d) as study:
        (entry,) = study.series
        codes = {w.code for w in entry.warnings}
    assert {"gantry-tilt", "irregular-spacing"} <= codes
    vol = load_volume(d)
    assert {"gantry-tilt", "irregular-spacing", "resampled"} <= {w.code for w in vol.warnings}
    # The resampled voxels sit where the anatomy is: compare with the phantom at the
    # same LPS points well inside both volumes (bone edges differ by interpolation only).
    lm = case.landmarks.vertebrae["L3"].centroid_lps
    assert positions[0] + 20 < lm[2] < positions[-1] - 20
    ijk_src = np.round(case.ct.lps_to_index(lm)).astype(int)
    ijk_vol = np.round(vol.lps_to_index(lm)).astype(int)
    src_val = case.ct.array[ijk_src[2], ijk_src[1], ijk_src[0]]
    vol_val = vol.array[ijk_vol[2], ijk_vol[1], ijk_vol[0]]
    assert abs(int(src_val) - int(vol_val)) < 80  # both cancellous bone, not shifted onto fat


def test_dropped_slice_is_reported(case, tmp_path):
    d = tmp_path / "gap"
    write_series(case.ct, d, modality="CT", drop_slices=(40,))
    vol = load_volume(d)
    assert "missing-slice" in {w.code for w in vol.warnings}
    assert vol.array.shape[0] == case.ct.array.shape[0]  # the gap is filled on the grid


def test_folder_of_text_files_has_no_volume(tmp_path):
    for n in range(3):
        (tmp_path / f"f{n}.txt").write_text("hello")
    with index_input(tmp_path) as study:
        assert study.series == [] and len(study.skipped) == 3
        with pytest.raises(NoVolumeError, match="no series that forms a 3D volume"):
            study.default_series()
    with pytest.raises(NoVolumeError, match="f0.txt"):
        load_volume(tmp_path)


def test_cancel_leaves_nothing_loaded(series_dir):
    token = CancelToken()

    def progress(fraction, message):
        if fraction > 0.5:
            token.cancel()

    with pytest.raises(OperationCancelled):
        load_volume(series_dir, progress=progress, cancel=token)


def test_many_gaps_are_summarised_not_listed_one_by_one(case, tmp_path):
    d = tmp_path / "gaps"
    write_series(case.ct, d, modality="CT", drop_slices=(10, 20, 30, 40, 50, 60))
    with index_input(d) as study:
        gaps = [w for w in study.series[0].warnings if w.code == "missing-slice"]
    assert len(gaps) == 4
    assert "3 more slice(s) missing in 3 further gaps" in gaps[-1].message
