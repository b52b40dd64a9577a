"""DICOM SEG export: PACS viewers overlay it on the source series; other software reads it."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pydicom
import pytest

from surgplan.cli import main
from surgplan.core.errors import DicomImportError
from surgplan.imaging.anatomy import Anatomy
from surgplan.imaging.dicom.writer import write_series
from surgplan.imaging.loader import load_volume
from surgplan.report.dicom_seg import label_map, property_codes, write_dicom_seg

hd = pytest.importorskip("highdicom")


@pytest.fixture(scope="module")
def lumbar(small_phantom, small_phantom_truth, tmp_path_factory):
    """48 slices (77 mm) of the phantom around L4 written as DICOM, loaded back, with truth."""
    ct, truth = small_phantom.ct, small_phantom_truth
    centre = small_phantom.landmarks.vertebrae["L4"].centroid_lps
    k_mid = int(round(ct.lps_to_index(centre)[2]))
    k0 = max(0, k_mid - 24)
    k1 = min(ct.array.shape[0], k0 + 48)
    aff = ct.ijk_to_lps.copy()
    aff[:3, 3] = ct.index_to_lps(np.array([0.0, 0.0, k0]))
    crop = ct.replace(array=ct.array[k0:k1], ijk_to_lps=aff)
    d = tmp_path_factory.mktemp("seg") / "ct"
    write_series(crop, d, modality="CT")
    vol = load_volume(d)
    anatomy = Anatomy(vol.array.shape, vol.ijk_to_lps, truth.vertebrae[k0:k1],
                      truth.structures[k0:k1], truth.items, truth.findings, truth.parts[k0:k1])
    return d, vol, anatomy


@pytest.fixture(scope="module")
def seg_file(lumbar, tmp_path_factory):
    d, vol, anatomy = lumbar
    return write_dicom_seg(anatomy, vol, tmp_path_factory.mktemp("out") / "segmentation.dcm")


def test_seg_reads_back_with_the_same_labels_and_voxels(lumbar, seg_file):
    d, vol, anatomy = lumbar
    seg = hd.seg.segread(seg_file)
    expected, present = label_map(anatomy)
    labels = [str(s.SegmentLabel) for s in seg.SegmentSequence]
    assert labels == [s.name for s in present]
    assert {"L3", "L4", "L5", "disc L4-L5", "nerve root L4 left", "dural sac", "aorta"} <= set(
        labels)
    # Frame by frame against the source images, in the order of the volume's k axis.
    uids = [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
            for p in sorted(d.glob("*.dcm"))]
    zs = [float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2])
          for p in sorted(d.glob("*.dcm"))]
    uids = [u for _, u in sorted(zip(zs, uids))]
    if vol.ijk_to_lps[2, 2] < 0:
        uids = uids[::-1]
    got = seg.get_pixels_by_source_instance(uids, combine_segments=True,
                                            assert_missing_frames_are_empty=True)
    np.testing.assert_array_equal(got, expected)


def test_seg_references_the_source_series_and_codes_the_anatomy(lumbar, seg_file):
    d, vol, anatomy = lumbar
    ds = pydicom.dcmread(seg_file)
    src = pydicom.dcmread(sorted(d.glob("*.dcm"))[0], stop_before_pixels=True)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    assert ds.StudyInstanceUID == src.StudyInstanceUID
    assert ds.FrameOfReferenceUID == src.FrameOfReferenceUID
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == src.SeriesInstanceUID
    assert ds.SeriesInstanceUID != src.SeriesInstanceUID
    by_label = {str(s.SegmentLabel): s for s in ds.SegmentSequence}
    l4 = by_label["L4"].SegmentedPropertyTypeCodeSequence[0]
    assert (l4.CodeValue, l4.CodingSchemeDesignator) == (
        pydicom.sr.codedict.codes.SCT.L4Vertebra.value, "SCT")
    disc = by_label["disc L4-L5"].SegmentedPropertyTypeCodeSequence[0]
    assert disc.CodeMeaning == "L4/L5 disc"
    root = by_label["nerve root L4 left"].SegmentedPropertyTypeCodeSequence[0]
    assert root.CodeMeaning == "Nerve"
    assert all(s.SegmentAlgorithmType == "AUTOMATIC" for s in ds.SegmentSequence)


def test_every_shared_structure_name_gets_a_code():
    from surgplan.imaging.anatomy import Structure
    from surgplan.imaging.structures import kind_of

    for name in ("T12", "L1", "L5", "L6", "S1", "disc T12-L1", "disc L5-S1", "spinal canal",
                 "dural sac", "nerve root L5 right", "rib T12 left", "ilium left",
                 "psoas right", "paraspinal muscle left", "aorta", "inferior vena cava",
                 "common iliac artery left", "common iliac vein right", "kidney left",
                 "bowel", "subcutaneous fat", "skin", "body"):
        category, ptype = property_codes(Structure(name, 1, "structures", kind_of(name)))
        assert category.scheme_designator == ptype.scheme_designator == "SCT"
        assert ptype.value and ptype.meaning


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) missing")
def test_dciodvfy_reports_no_errors(seg_file):
    res = subprocess.run(["dciodvfy", str(seg_file)], capture_output=True, text=True)
    out = res.stdout + res.stderr
    assert "Segmentation" in out
    assert [line for line in out.splitlines() if line.startswith("Error")] == []


def test_anonymous_seg_keeps_no_identity(lumbar, tmp_path):
    d, vol, anatomy = lumbar
    p = write_dicom_seg(anatomy, vol, tmp_path / "anon.dcm", anonymous=True)
    ds = pydicom.dcmread(p)
    src = pydicom.dcmread(sorted(d.glob("*.dcm"))[0], stop_before_pixels=True)
    assert ds.PatientIdentityRemoved == "YES"
    assert str(ds.PatientName) != str(src.PatientName)
    assert ds.StudyInstanceUID != src.StudyInstanceUID
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID != src.SeriesInstanceUID
    assert len(ds.SegmentSequence) == len(label_map(anatomy)[1])
    if shutil.which("dciodvfy"):
        res = subprocess.run(["dciodvfy", str(p)], capture_output=True, text=True)
        assert [x for x in (res.stdout + res.stderr).splitlines() if x.startswith("Error")] == []


def test_a_volume_not_from_dicom_is_refused_with_the_reason(lumbar, tmp_path):
    d, vol, anatomy = lumbar
    from surgplan.imaging.volume_files import write_label_volume

    nii = tmp_path / "ct.nii.gz"
    write_label_volume(nii, np.asarray(vol.array), vol)
    v2 = load_volume(nii, modality="CT")
    with pytest.raises(DicomImportError, match="DICOM SEG must reference the DICOM images"):
        write_dicom_seg(anatomy, v2, tmp_path / "x.dcm")
    assert not (tmp_path / "x.dcm").exists()
    with pytest.raises(DicomImportError, match="no longer there"):
        write_dicom_seg(anatomy, vol.replace(source=str(tmp_path / "gone")), tmp_path / "x.dcm")


@pytest.mark.realdata
def test_real_ct_with_empty_uids_is_refused_until_anonymised(shared_data, tmp_path):
    src = shared_data / "ct-abdomen-lumbar" / "dicom-j2k-20-slices"
    vol = load_volume(src)
    anatomy = Anatomy.empty(vol.array.shape, vol.ijk_to_lps)
    with pytest.raises(DicomImportError, match="not read from a DICOM series|empty"):
        write_dicom_seg(anatomy, vol, tmp_path / "x.dcm")


def test_segment_command_writes_the_seg(lumbar, tmp_path, capsys):
    d, vol, anatomy = lumbar
    out = tmp_path / "seg"
    assert main(["segment", str(d), "--out", str(out), "--no-meshes", "--dicom-seg"]) == 0
    assert "DICOM SEG" in capsys.readouterr().out
    seg = hd.seg.segread(out / "segmentation.dcm")
    names = [str(s.SegmentLabel) for s in seg.SegmentSequence]
    assert any(n.startswith("L") for n in names)
