"""`surgplan segment --anonymous`: shareable output that does not name the patient.

Teachers segment a case and hand the folder out; labels.json must then hold no
patient name, ID, date, UID or path of the source (folder names often carry the
patient's name).  A DICOM SEG must reference images the recipient has, so with
--anonymous it is made only on an anonymised copy of the images.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pydicom
import pytest

from surgplan.cli import main
from surgplan.imaging.dicom.writer import write_series

NAME, PID, BIRTH, STUDY_DATE = "DOE^JANE", "PID-7781", "19610203", "20240517"


@pytest.fixture(scope="module")
def identified_ct(small_phantom, tmp_path_factory):
    """48 slices of the phantom around L4 as DICOM that names the patient, in a folder
    named after her; returns (folder, every UID and date of its headers)."""
    ct = small_phantom.ct
    k_mid = int(round(ct.lps_to_index(small_phantom.landmarks.vertebrae["L4"].centroid_lps)[2]))
    k0 = max(0, k_mid - 24)
    aff = ct.ijk_to_lps.copy()
    aff[:3, 3] = ct.index_to_lps(np.array([0.0, 0.0, k0]))
    md = dataclasses.replace(ct.metadata, patient_name=NAME, patient_id=PID,
                             patient_birth_date=BIRTH, study_date=STUDY_DATE)
    crop = ct.replace(array=ct.array[k0:k0 + 48], ijk_to_lps=aff, metadata=md)
    d = tmp_path_factory.mktemp("cases") / "DOE_JANE_PID-7781" / "ct"
    write_series(crop, d, modality="CT")
    secrets = set()
    for p in d.glob("*.dcm"):
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        assert str(ds.PatientName) == NAME  # the fixture names her, or the test proves nothing
        for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
                   "FrameOfReferenceUID"):
            secrets.add(str(ds.get(kw)))
    return d, secrets


def _identifying(text: str, folder, uids) -> list:
    found = [s for s in (NAME, "DOE", "JANE", PID, BIRTH, STUDY_DATE, str(folder),
                         folder.parent.name) if s in text]
    return found + [u for u in uids if u in text]


def test_anonymous_labels_json_names_no_patient_path_or_uid(identified_ct, tmp_path, capsys):
    d, uids = identified_ct
    plain, anon = tmp_path / "plain", tmp_path / "anon"
    assert main(["segment", str(d), "--out", str(plain), "--no-meshes"]) == 0
    assert main(["segment", str(d), "--out", str(anon), "--no-meshes", "--anonymous"]) == 0
    capsys.readouterr()
    # without --anonymous the table says where the image came from ...
    assert str(d) in (plain / "labels.json").read_text()
    # ... with it, nothing that leads back to her, and the same labels otherwise
    text = (anon / "labels.json").read_text()
    assert _identifying(text, d, uids) == []
    table, ref = json.loads(text), json.loads((plain / "labels.json").read_text())
    assert "source" not in table
    assert table["files"] == ref["files"] and table["findings"] == ref["findings"]
    assert any(e["name"] == "L4" for e in table["files"]["vertebrae.nii.gz"])
    for f in anon.rglob("*"):  # nor do the label maps
        if f.is_file():
            raw = f.read_bytes()
            assert not [s for s in (NAME, PID, str(d)) if s.encode() in raw], f


def test_anonymous_table_hides_the_path_quoted_in_a_finding(tmp_path):
    """A finding that names the image (segment_mr does) loses the path, keeps the sense."""
    from surgplan.imaging.anatomy import Anatomy
    from surgplan.imaging.segmentation_files import read_segmentation, write_segmentation
    from surgplan.imaging.volume import Volume

    src = tmp_path / "DOE_JANE" / "t2.nii.gz"
    vol = Volume(np.zeros((8, 8, 8), np.int16), np.eye(4), source=str(src))
    a = Anatomy.empty(vol.array.shape, vol.ijk_to_lps,
                      (f"{src} has one value everywhere: there is nothing to segment",))
    out = write_segmentation(a, vol, tmp_path / "out", meshes=False, anonymous=True)
    text = (out / "labels.json").read_text()
    assert "DOE_JANE" not in text and str(tmp_path) not in text
    back = read_segmentation(out, vol)
    assert back.findings == ("the image has one value everywhere: there is nothing to segment",)


@pytest.mark.parametrize("command", ["segment", "export"])
def test_anonymous_dicom_seg_of_identified_images_is_refused_before_segmenting(
        identified_ct, tmp_path, capsys, monkeypatch, command):
    import surgplan.imaging.segment as seg_module

    def not_reached(*a, **k):
        raise AssertionError("segmented before refusing")

    monkeypatch.setattr(seg_module, "segment_volume", not_reached)
    d, _ = identified_ct
    out = tmp_path / "seg"
    assert main([command, str(d), "--out", str(out), "--anonymous", "--dicom-seg"]) == 1
    err = capsys.readouterr().err
    assert "surgplan anonymize" in err and "--anonymous --dicom-seg" in err
    assert not out.exists()


def test_anonymous_dicom_seg_of_an_anonymised_copy_overlays_that_copy(
        identified_ct, tmp_path, capsys):
    hd = pytest.importorskip("highdicom")
    from surgplan.report.anonymize import anonymize

    d, uids = identified_ct
    copy = tmp_path / "shared" / "case"
    anonymize(d, copy)
    out = tmp_path / "seg"
    assert main(["segment", str(copy), "--out", str(out), "--anonymous", "--no-meshes",
                 "--dicom-seg"]) == 0
    capsys.readouterr()
    seg_path = out / "segmentation.dcm"
    seg = hd.seg.segread(seg_path)
    assert any(str(s.SegmentLabel) == "L4" for s in seg.SegmentSequence)
    # every image it references is in the copy the recipient gets
    copy_uids = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
                 for p in copy.rglob("*.dcm")}
    referenced = {str(i.ReferencedSOPInstanceUID)
                  for s in seg.ReferencedSeriesSequence for i in s.ReferencedInstanceSequence}
    assert referenced and referenced <= copy_uids
    # and neither the SEG nor the table names her or carries an original UID or path
    ds = pydicom.dcmread(seg_path)
    assert str(ds.PatientName) != NAME and str(ds.PatientID) != PID
    dump = str(ds) + (out / "labels.json").read_text()
    assert _identifying(dump, d, uids) == []
    assert str(copy) not in (out / "labels.json").read_text()


def test_anonymous_export_with_seg_overlays_the_anonymised_copy(identified_ct, tmp_path, capsys):
    """``export --anonymous --dicom-seg`` of an anonymised copy: the SEG references that
    copy (a SEG de-identified on its own would point at images nobody has)."""
    hd = pytest.importorskip("highdicom")
    from surgplan.report.anonymize import anonymize

    d, uids = identified_ct
    copy = tmp_path / "shared" / "case"
    anonymize(d, copy)
    out = tmp_path / "export"
    assert main(["export", str(copy), "--out", str(out), "--anonymous", "--dicom-seg",
                 "--no-meshes", "--no-pictures"]) == 0
    capsys.readouterr()
    seg = hd.seg.segread(out / "segmentation.dcm")
    copy_uids = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
                 for p in copy.rglob("*.dcm")}
    referenced = {str(i.ReferencedSOPInstanceUID)
                  for s in seg.ReferencedSeriesSequence for i in s.ReferencedInstanceSequence}
    assert referenced and referenced <= copy_uids
    # the exported label folder is a segmentation folder SurgPlan reads back
    from surgplan.imaging.loader import load_volume
    from surgplan.imaging.segmentation_files import read_segmentation

    back = read_segmentation(out / "labels", load_volume(copy))
    assert "L4" in back.vertebra_names and back.has_parts
    assert str(copy) not in (out / "labels" / "labels.json").read_text()
