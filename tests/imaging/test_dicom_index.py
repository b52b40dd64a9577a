"""Header-only indexing: grouping into series, skip reasons, UIDs, cancellation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from surgplan.core.errors import OperationCancelled
from surgplan.core.progress import CancelToken
from surgplan.imaging.dicom.index import index_files
from surgplan.imaging.dicom.reader import load_series
from tests.imaging import dicom_synth as syn

PYDICOM_FILES = Path(pydicom.data.__file__).parent / "test_files"


def pydicom_file(name: str) -> Path:
    """A test file shipped inside pydicom (never the downloading get_testdata_file)."""
    path = PYDICOM_FILES / name
    if not path.exists():
        pytest.skip(f"pydicom does not ship {name} in this version")
    return path


def codes(series) -> list:
    return [w.code for w in series.all_warnings]


def test_regular_shuffled_stack_is_one_sorted_series(tmp_path):
    paths = syn.write_stack(tmp_path, syn.axial_positions(6, step=2.5), shuffle=True)
    progress = []
    idx = index_files(paths, progress=lambda f, m: progress.append(f))
    assert idx.skipped == []
    (s,) = idx.series
    assert s.uid == "1.2.3.4.5" and not s.uid_synthesised
    assert (s.modality, s.rows, s.columns, s.n_slices) == ("CT", 24, 20, 6)
    assert s.spacing_mm == pytest.approx((1.0, 1.0, 2.5))
    assert s.orientation == pytest.approx((1, 0, 0, 0, 1, 0))
    assert codes(s) == []
    z = [s.slices[k].position_lps[2] for k in s.geometry.order]
    assert z == sorted(z)
    m = s.metadata
    assert (m.patient_name, m.patient_id, m.patient_birth_date, m.patient_sex) == (
        "Synthetic^Spine", "SYN001", "19700101", "O")
    assert (m.study_date, m.study_description, m.series_description, m.modality) == (
        "20240102", "Lumbar spine", "synthetic stack", "CT")
    assert (m.body_part, m.manufacturer, m.convolution_kernel) == ("LSPINE", "SurgPlan tests",
                                                                   "B30f")
    assert m.slice_thickness_mm == 2.0 and m.kvp == 120
    assert (m.study_instance_uid, m.series_instance_uid) == ("1.2.3.4", "1.2.3.4.5")
    assert progress[-1] == 1.0
    assert s.summary()["slices"] == 6


def test_mixed_series_in_one_folder_are_separated(tmp_path):
    a = syn.write_stack(tmp_path / "a", syn.axial_positions(4), series_uid="1.2.3.4.10")
    b = syn.write_stack(tmp_path / "b", syn.axial_positions(5), series_uid="1.2.3.4.11",
                        modality="MR", intercept=0.0, slope=1.0)
    idx = index_files(a + b)
    assert sorted((s.uid, s.n_slices, s.modality) for s in idx.series) == [
        ("1.2.3.4.10", 4, "CT"), ("1.2.3.4.11", 5, "MR")]


def test_empty_uids_get_a_stable_synthetic_key_and_split_by_geometry(tmp_path):
    axial = syn.write_stack(tmp_path, syn.axial_positions(4), prefix="AX", series_uid="",
                            study_uid="", for_uid="")
    # A second acquisition with empty UIDs too, but another matrix size.
    other = syn.write_stack(tmp_path, syn.axial_positions(3), prefix="SM", series_uid="",
                            study_uid="", for_uid="", rows=16, cols=16)
    idx1 = index_files(axial + other)
    idx2 = index_files(list(reversed(axial + other)))
    assert len(idx1.series) == 2
    for s in idx1.series:
        assert s.uid.startswith("synth-") and s.uid_synthesised
        assert "empty-uid" in codes(s)
    assert sorted(s.uid for s in idx1.series) == sorted(s.uid for s in idx2.series)


def test_one_uid_with_two_echoes_at_the_same_positions_splits_by_echo(tmp_path):
    pos = syn.axial_positions(3)
    e1 = syn.write_stack(tmp_path, pos, prefix="E1", modality="MR", intercept=0.0, echo=1)
    e2 = syn.write_stack(tmp_path, pos, prefix="E2", modality="MR", intercept=0.0, echo=2)
    idx = index_files(e1 + e2)
    assert sorted(s.uid for s in idx.series) == ["1.2.3.4.5#1", "1.2.3.4.5#2"]
    assert all(s.n_slices == 3 for s in idx.series)
    assert all("overlapping-slices" not in codes(s) for s in idx.series)


def test_bad_files_among_good_ones_are_skipped_with_reasons(tmp_path):
    good = syn.write_stack(tmp_path, syn.axial_positions(5))
    text = tmp_path / "notes.txt"
    text.write_text("not an image\n")
    cut = syn.truncate(syn.write_slice(tmp_path / "cut.dcm", position=(-10, -12, 20),
                                       instance=9))
    sr = syn.write_sr(tmp_path / "report.dcm")
    scout = syn.write_slice(tmp_path / "scout.dcm", position=(0, 0, 0),
                            image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    lateral = syn.write_slice(tmp_path / "lateral.dcm", position=(0, -50, 50),
                              orientation=(0, 1, 0, 0, 0, -1))
    idx = index_files(good + [text, cut, sr, scout, lateral])
    reasons = {Path(s.path).name: s.reason for s in idx.skipped}
    assert set(reasons) == {"notes.txt", "cut.dcm", "report.dcm", "scout.dcm", "lateral.dcm"}
    assert "not a DICOM file" in reasons["notes.txt"]
    assert "truncated" in reasons["cut.dcm"]
    assert "structured report" in reasons["report.dcm"]
    assert "localizer" in reasons["scout.dcm"]
    assert "orientation differs" in reasons["lateral.dcm"]
    (s,) = idx.series
    vol = load_series(s)
    assert vol.array.shape == (5, 24, 20)


def test_dicomdir_and_pydicom_broken_files_are_skipped_with_clear_reasons():
    names = {
        "dicomdirtests/DICOMDIR": "DICOMDIR",
        "no_meta.dcm": "not a DICOM file",
        "MR_truncated.dcm": r"truncated: the pixel data element needs 8192 bytes but only 8130",
        "badVR.dcm": "RT dose",
        "meta_missing_tsyntax.dcm": "no image attributes",
        "test-SR.dcm": "structured report",
        "rtplan.dcm": "RT plan",
        "image_dfl.dcm": "secondary capture",
    }
    paths = [pydicom_file(n) for n in names]
    idx = index_files(paths)
    assert idx.series == []
    got = {s.path: s.reason for s in idx.skipped}
    for name, expected in names.items():
        assert expected in got[str(pydicom_file(name))], (name, got[str(pydicom_file(name))])


def test_compressed_pydicom_files_index_without_false_truncation():
    names = ["MR_small.dcm", "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm",
             "MR_small_jp2klossless.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm"]
    for name in names:
        idx = index_files([pydicom_file(name)])
        assert idx.skipped == [], (name, idx.skipped)
        assert idx.series[0].n_slices == 1


def test_cancel_stops_indexing(tmp_path):
    paths = syn.write_stack(tmp_path, syn.axial_positions(3))
    token = CancelToken()
    token.cancel()
    with pytest.raises(OperationCancelled, match="cancelled"):
        index_files(paths, cancel=token)


def test_index_reads_no_pixels(tmp_path, monkeypatch):
    paths = syn.write_stack(tmp_path, syn.axial_positions(3))

    def boom(*a, **k):
        raise AssertionError("pixel data decoded during indexing")

    monkeypatch.setattr(pydicom.pixels, "pixel_array", boom)
    idx = index_files(paths)
    assert idx.series[0].n_slices == 3
    assert np.allclose(idx.series[0].geometry.ijk_to_lps[:3, 3], (-10, -12, -10))


def test_ultrasound_multiframe_is_skipped_as_not_volume_imaging(tmp_path):
    path = syn.write_slice(tmp_path / "us.dcm", position=(0, 0, 0), modality="US",
                           sop_class="1.2.840.10008.5.1.4.1.1.3.1", intercept=0.0)
    idx = index_files([path])
    assert idx.series == []
    assert "ultrasound" in idx.skipped[0].reason and "not volume imaging" in idx.skipped[0].reason
