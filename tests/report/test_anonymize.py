"""`surgplan anonymize`: nothing identifying survives, the images and their references do.

Inputs are written the way scanners write them: the phantom through the DICOM
writer with a real patient's kind of header (names, IDs, institution, physicians,
private tags, references between images, nested sequences), a zip with junk beside
the images, and the real Siemens J2K slices with empty UIDs.
"""

from __future__ import annotations

import dataclasses
import datetime
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from surgplan.cli import main
from surgplan.core.errors import DicomImportError, InputNotFoundError, OperationCancelled
from surgplan.core.progress import CancelToken
from surgplan.imaging.dicom.writer import write_series
from surgplan.imaging.loader import index_input, load_volume
from surgplan.report.anonymize import CLASS_UID_KEYWORDS, anonymize

OFFSET = -400  # days

#: Keywords whose values identify the patient, the site or the people involved.
IDENTIFYING_TEXT = {
    "PatientName", "PatientID", "OtherPatientIDs", "AccessionNumber", "InstitutionName",
    "InstitutionAddress", "StationName", "DeviceSerialNumber", "IssuerOfPatientID",
    "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName", "PhysiciansOfRecord",
    "RequestingPhysician", "RequestedProcedureID", "ScheduledProcedureStepID",
    "PerformedProcedureStepID", "StudyID", "PatientAddress", "InstitutionalDepartmentName",
    "StudyDescription", "SeriesDescription", "ImageComments", "PatientComments",
}


def walk(ds: Dataset):
    """Every element of a data set, its file meta and nested sequences."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        yield from meta.iterall()
    yield from ds.iterall()


def identifying_values(paths) -> set:
    """The identifying values of the input, element by element (strings of ≥ 4 chars)."""
    values = set()
    for p in paths:
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        for e in walk(ds):
            if e.value in (None, "") or e.VR == "SQ":
                continue
            vals = list(e.value) if e.VM > 1 else [e.value]
            for v in vals:
                v = str(v).strip()
                if len(v) < 4:
                    continue
                if e.VR == "UI" and (e.keyword in CLASS_UID_KEYWORDS
                                     or v.startswith("1.2.840.10008.")):
                    continue
                if e.keyword in IDENTIFYING_TEXT or e.VR in ("PN", "UI", "DA"):
                    values.add(v)
                elif e.VR == "DT":
                    values.add(v[:8])
                elif e.tag.is_private and e.VR in ("LO", "SH"):
                    values.add(v)
    return values


def output_strings(paths):
    """(file, keyword, values, is_uid) of every element of the output but the pixel data.

    A new UID is a long run of digits that may contain a short original value (an ID
    such as '3600') by chance; UIDs are therefore compared whole (a UID must never be
    reused), other text by substring.
    """
    for p in paths:
        ds = pydicom.dcmread(p)
        for e in walk(ds):
            if e.keyword == "PixelData":
                continue
            if e.VR == "SQ":
                continue
            if e.VR == "UI":
                vals = [str(v) for v in (list(e.value) if e.VM > 1 else [e.value])]
                yield p, e.keyword or str(e.tag), vals, True
            else:
                yield p, e.keyword or str(e.tag), [str(e.value)], False


def leaks_of(originals, outputs) -> list:
    """Original identifying values found in the output (UIDs: only as whole values)."""
    found = []
    for p, kw, values, is_uid in outputs:
        for v in originals:
            if any((v == t) if is_uid else (v in t) for t in values):
                found.append((p.name, kw, v))
    return found


def add_identity(path: Path, n: int, all_uids: list) -> None:
    """Give a written slice the identifying header a hospital scanner writes."""
    ds = pydicom.dcmread(path)
    ds.AccessionNumber = "ACC77123"
    ds.InstitutionName = "St Elsewhere Hospital"
    ds.InstitutionAddress = "12 Harbour Road, Springfield"
    ds.StationName = "CTSCAN04"
    ds.DeviceSerialNumber = "SN-998877"
    ds.ReferringPhysicianName = "House^Gregory"
    ds.PerformingPhysicianName = "Quinn^Michaela"
    ds.OperatorsName = "Nightingale^Florence"
    ds.OtherPatientIDs = "MRN-5550123"
    ds.IssuerOfPatientID = "SPRINGFIELD-MRN"
    ds.PatientAddress = "742 Evergreen Terrace"
    ds.PatientAge = "044Y"
    ds.PatientWeight = "71"
    ds.ImageComments = "patient Jane Roe, follow-up"
    ds.AcquisitionDateTime = "20240101093000.000000"
    ds.InstanceCreationDate = "20240102"
    ds.SeriesDate = "20231230"
    # A reference to the neighbouring slice and a source image from another series.
    ref = Dataset()
    ref.ReferencedSOPClassUID = ds.SOPClassUID
    ref.ReferencedSOPInstanceUID = all_uids[(n + 1) % len(all_uids)]
    ds.ReferencedImageSequence = Sequence([ref])
    req = Dataset()
    req.RequestedProcedureID = "RP-4455"
    req.ScheduledProcedureStepID = "SPS-4455"
    req.RequestingPhysician = "Wilson^James"
    ds.RequestAttributesSequence = Sequence([req])
    ds.PerformedProcedureStepID = "PPS-4455"
    ds.IrradiationEventUID = "1.2.3.4.5.6.7.8.9"
    block = ds.private_block(0x0029, "ACME SCANNER 1.0", create=True)
    block.add_new(0x10, "LO", "Roe^Jane private copy")
    block.add_new(0x11, "SH", "MRN5550123")
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture(scope="module")
def crop(small_phantom):
    """16 slices of the phantom CT with a real patient's identity in its metadata."""
    ct = small_phantom.ct
    k0 = ct.array.shape[0] // 2
    aff = ct.ijk_to_lps.copy()
    aff[:3, 3] = ct.index_to_lps(np.array([0.0, 0.0, k0]))
    md = dataclasses.replace(ct.metadata, patient_name="Roe^Jane", patient_id="MRN5550123",
                             patient_birth_date="19710203", patient_sex="F",
                             study_date="20240101", study_description="LWS Jane Roe")
    return ct.replace(array=ct.array[k0:k0 + 16], ijk_to_lps=aff, metadata=md)


@pytest.fixture(scope="module")
def study_dir(crop, tmp_path_factory):
    """A study of two series (CT and an MR on the same frame of reference) plus junk."""
    d = tmp_path_factory.mktemp("study")
    study_uid, for_uid = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    files = []
    for sub, modality in (("ct", "CT"), ("mr", "MR")):
        files += write_series(crop, d / "Roe_Jane" / sub, modality=modality,
                              study_instance_uid=study_uid, frame_of_reference_uid=for_uid)
    uids = [str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files]
    for n, f in enumerate(files):
        add_identity(f, n, uids)
    (d / "Roe_Jane" / "referral.txt").write_text("Jane Roe, MRN5550123, please plan L4-L5\n")
    return d


@pytest.fixture(scope="module")
def anonymised(study_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("anon") / "out"
    # A fixed key makes the leak checks repeatable (the default key is random per run).
    return anonymize(study_dir, out, date_offset_days=OFFSET, secret=b"surgplan tests")


def test_no_identifying_value_of_the_input_survives(study_dir, anonymised):
    originals = identifying_values(sorted(study_dir.rglob("*.dcm")))
    assert {"Roe^Jane", "MRN5550123", "19710203", "ACC77123", "St Elsewhere Hospital",
            "House^Gregory", "CTSCAN04", "SN-998877", "RP-4455", "20240101"} <= originals
    assert sum(v.count(".") > 3 for v in originals) >= 32 + 3  # SOP, study, series, FoR UIDs
    leaks = leaks_of(originals, output_strings(anonymised.files))
    assert leaks == []
    # File and folder names carry nothing of the input either.
    for p in anonymised.files:
        rel = str(p.relative_to(anonymised.out_dir))
        assert "Roe" not in rel and not any(v in rel for v in originals)


def test_profile_actions_and_markers(anonymised):
    ds = pydicom.dcmread(anonymised.files[0])
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    codes = {c.CodeValue for c in ds.DeidentificationMethodCodeSequence}
    assert codes == {"113100", "113107"}
    assert ds.DeidentificationMethod
    assert ds.PatientName == "ANONYMOUS^P0001" and ds.PatientID.startswith("SP-")
    for kw in ("PatientBirthDate", "PatientSex", "AccessionNumber", "ReferringPhysicianName",
               "StudyID"):
        assert kw in ds and not ds[kw].value, kw  # type 2: kept, emptied
    assert ds.DeviceSerialNumber == "REMOVED"  # dummy: type 1 in enhanced objects
    for kw in ("InstitutionName", "InstitutionAddress", "StationName", "OtherPatientIDs", "IssuerOfPatientID", "PatientAddress", "PatientAge",
               "PatientWeight", "ImageComments", "RequestAttributesSequence",
               "PerformedProcedureStepID", "StudyDescription", "SeriesDescription"):
        assert kw not in ds, kw
    assert not any(e.tag.is_private for e in ds.iterall())
    assert "OperatorsName" not in ds or not ds.OperatorsName
    # The dates moved by the run's offset; the time of day stayed.
    assert anonymised.date_offset_days == OFFSET
    shifted = (datetime.date(2024, 1, 1) + datetime.timedelta(days=OFFSET)).strftime("%Y%m%d")
    assert ds.StudyDate == shifted
    assert ds.AcquisitionDateTime == shifted + "093000.000000"
    assert ds.SeriesDate == (datetime.date(2023, 12, 30)
                             + datetime.timedelta(days=OFFSET)).strftime("%Y%m%d")
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID


def test_uids_are_new_and_coherent_within_and_across_series(study_dir, anonymised):
    before = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(study_dir.rglob("*.dcm"))]
    after = [pydicom.dcmread(p, stop_before_pixels=True) for p in anonymised.files]
    assert len(after) == len(before) == 32
    assert anonymised.n_series == 2 and anonymised.n_studies == 1 and anonymised.n_patients == 1
    sops = {str(d.SOPInstanceUID) for d in after}
    assert len(sops) == 32
    assert len({str(d.StudyInstanceUID) for d in after}) == 1
    assert len({str(d.FrameOfReferenceUID) for d in after}) == 1
    assert len({str(d.SeriesInstanceUID) for d in after}) == 2
    # Every reference still points at an image of the output, as it did in the input.
    old_to_new_position = {}
    for d in after:
        ref = str(d.ReferencedImageSequence[0].ReferencedSOPInstanceUID)
        assert ref in sops
        old_to_new_position[str(d.SOPInstanceUID)] = ref
    assert len(set(old_to_new_position.values())) == 32
    # The same irradiation event in every input file is one (new) UID in every output file.
    assert len({str(d.IrradiationEventUID) for d in after}) == 1
    assert str(after[0].IrradiationEventUID) != "1.2.3.4.5.6.7.8.9"
    # Series folders: one per series, named by position.
    assert sorted({p.parent.name for p in anonymised.files}) == ["S001", "S002"]


def test_the_copy_loads_as_the_same_volume(study_dir, anonymised, crop):
    with index_input(anonymised.out_dir) as study:
        assert len(study.series) == 2
        entry = next(s for s in study.series if s.modality == "CT")
        vol = entry.load()
    np.testing.assert_array_equal(vol.array, crop.array)
    np.testing.assert_allclose(vol.ijk_to_lps, crop.ijk_to_lps, atol=1e-3)
    assert vol.metadata.patient_name == "ANONYMOUS^P0001"
    assert not [w for w in vol.warnings if w.code == "empty-uid"]


def test_non_dicom_files_are_skipped_and_named(anonymised):
    assert [Path(s.path).name for s in anonymised.skipped] == ["referral.txt"]
    assert "not a DICOM file" in anonymised.skipped[0].reason


def test_uids_and_pseudonyms_differ_between_runs(study_dir, anonymised, tmp_path):
    second = anonymize(study_dir, tmp_path / "again", date_offset_days=OFFSET)
    a = pydicom.dcmread(anonymised.files[0], stop_before_pixels=True)
    b = pydicom.dcmread(second.files[0], stop_before_pixels=True)
    assert a.StudyInstanceUID != b.StudyInstanceUID and a.PatientID != b.PatientID


def test_zip_input_and_the_command_line(study_dir, tmp_path, capsys):
    arc = tmp_path / "export.zip"
    with zipfile.ZipFile(arc, "w") as zf:
        for p in sorted(study_dir.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(study_dir).as_posix())
    out = tmp_path / "anon"
    assert main(["anonymize", str(arc), str(out), "--date-offset-days", "-30"]) == 0
    captured = capsys.readouterr()
    assert "32 file(s) of 2 series" in captured.out and "-30 days" in captured.out
    assert "referral.txt" in captured.err and "not a DICOM file" in captured.err
    assert len(list(out.rglob("*.dcm"))) == 32


def test_refusals_leave_nothing_behind(study_dir, tmp_path, capsys):
    with pytest.raises(DicomImportError, match="inside"):
        anonymize(study_dir, study_dir / "anon")
    assert not (study_dir / "anon").exists()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    with pytest.raises(DicomImportError, match="not an empty folder"):
        anonymize(study_dir, busy)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.txt").write_text("not an image")
    with pytest.raises(InputNotFoundError, match="no DICOM file"):
        anonymize(notes, tmp_path / "o1")
    assert not (tmp_path / "o1").exists()
    token = CancelToken()
    token.cancel()
    with pytest.raises(OperationCancelled):
        anonymize(study_dir, tmp_path / "o2", cancel=token)
    assert not (tmp_path / "o2").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert main(["anonymize", str(study_dir), str(tmp_path / "o3"),
                 "--date-offset-days", "0"]) == 1
    assert "non-zero" in capsys.readouterr().err


def test_nifti_input_is_refused_with_the_reason(shared_data, tmp_path):
    with pytest.raises(DicomImportError, match="NIfTI.*DICOM"):
        anonymize(shared_data / "ct-abdomen-lumbar" / "ct.nii.gz", tmp_path / "o")


def _dciodvfy_errors(path: Path) -> set:
    res = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
    return {line for line in (res.stdout + res.stderr).splitlines() if line.startswith("Error")}


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) missing")
def test_output_is_no_less_valid_than_the_input(study_dir, anonymised):
    src = sorted((study_dir / "Roe_Jane" / "ct").glob("*.dcm"))[0]
    out = next(p for p in anonymised.files if pydicom.dcmread(p).Modality == "CT")
    assert _dciodvfy_errors(out) <= _dciodvfy_errors(src)


@pytest.mark.realdata
def test_real_j2k_ct_with_empty_uids(shared_data, tmp_path):
    src = shared_data / "ct-abdomen-lumbar" / "dicom-j2k-20-slices"
    inputs = sorted(p for p in src.iterdir() if p.is_file())
    originals = identifying_values(inputs)
    # The real header's identifying values: site, request numbers, dates, every UID.
    assert {"Petersgraben\r\nBasel\r\nDistrict\r\nCHE", "PETCT2", "60064", "30543134",
            "20221208"} <= originals
    res = anonymize(src, tmp_path / "anon", date_offset_days=-1000, secret=b"surgplan tests")
    assert len(res.files) == 20 and res.skipped == ()
    leaks = leaks_of(originals, output_strings(res.files))
    assert leaks == []
    for p in res.files:  # the raw header bytes hold none of them either
        head = p.read_bytes()[:4096]
        assert b"Basel" not in head and b"1.3.12.2.1107.5.1.4.60064" not in head
    before, after = load_volume(src), load_volume(res.out_dir)
    np.testing.assert_array_equal(after.array, before.array)
    np.testing.assert_allclose(after.ijk_to_lps, before.ijk_to_lps, atol=1e-4)
    # The empty Study/Series/SOP UIDs of the input became valid new ones.
    ds = pydicom.dcmread(res.files[0], stop_before_pixels=True)
    assert ds.StudyInstanceUID and ds.SeriesInstanceUID and ds.SOPInstanceUID
    assert not [w for w in after.warnings if w.code == "empty-uid"]


@pytest.mark.realdata
@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) missing")
def test_real_tilted_ct_anonymised_is_valid_and_the_same_volume(shared_data, tmp_path):
    src = shared_data / "ct-head-gantry-tilt"
    res = anonymize(src, tmp_path / "anon")
    assert [Path(s.path).name for s in res.skipped] == ["LICENSE.txt"]
    # The input lacks type-2 patient attributes; the copy has them (empty) and no error.
    assert _dciodvfy_errors(res.files[0]) == set()
    before, after = load_volume(src), load_volume(res.out_dir)
    np.testing.assert_array_equal(after.array, before.array)
    assert {w.code for w in after.warnings} >= {"gantry-tilt", "resampled"}


def test_dicomdir_input(study_dir, crop, tmp_path):
    from pydicom.fileset import FileSet

    fs = FileSet()
    for p in sorted((study_dir / "Roe_Jane" / "ct").glob("*.dcm")):
        fs.add(p)
    fs.write(tmp_path / "media")
    res = anonymize(tmp_path / "media" / "DICOMDIR", tmp_path / "anon", date_offset_days=OFFSET)
    assert len(res.files) == 16 and res.skipped == () and res.n_series == 1
    np.testing.assert_array_equal(load_volume(res.out_dir).array, crop.array)


@pytest.mark.realdata
@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) missing")
def test_real_enhanced_ct_keeps_its_type_1_equipment_attributes(shared_data, tmp_path):
    src = (shared_data / "dicom-codecs" / "enhanced-ct-multiframe"
           / "CT0012.explicit_little_endian.dcm")
    res = anonymize(src, tmp_path / "anon")
    assert _dciodvfy_errors(res.files[0]) <= _dciodvfy_errors(src)
    ds = pydicom.dcmread(res.files[0], stop_before_pixels=True)
    assert ds.DeviceSerialNumber == "REMOVED" and "AcquisitionContextSequence" in ds
    np.testing.assert_array_equal(load_volume(res.out_dir).array, load_volume(src).array)
