"""A DICOM SEG beside an anonymised study carries the study's shifted dates, not today's: a
present-day SEG next to images moved years back would give the shift (and the scan date) away."""

from __future__ import annotations

import datetime
import shutil
import subprocess

import numpy as np
import pydicom
import pytest

from surgplan.cli import main
from surgplan.imaging.anatomy import Anatomy
from surgplan.imaging.dicom.writer import write_series
from surgplan.imaging.loader import load_volume
from surgplan.report.anonymize import anonymize
from surgplan.report.dicom_seg import write_dicom_seg

pytest.importorskip("highdicom")

OFFSET_DAYS = -1000


def _dates(ds, out=None) -> list:
    """(keyword, date part) of every DA and DT in ``ds``, sequences included."""
    out = [] if out is None else out
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value or ():
                _dates(item, out)
        elif elem.VR in ("DA", "DT") and str(elem.value or "").strip():
            out.append((elem.keyword, str(elem.value).strip()[:8]))
    return out


def _day(text: str) -> datetime.date:
    return datetime.datetime.strptime(text, "%Y%m%d").date()


def _no_dciodvfy_errors(path) -> None:
    if shutil.which("dciodvfy") is None:
        return
    res = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
    out = res.stdout + res.stderr
    assert "Segmentation" in out
    assert [line for line in out.splitlines() if line.startswith("Error")] == []


@pytest.fixture(scope="module")
def study(small_phantom, small_phantom_truth, tmp_path_factory):
    """48 slices around L4 as a scanner writes them, an anonymised copy, and the truth."""
    ct, truth = small_phantom.ct, small_phantom_truth
    k_mid = int(round(ct.lps_to_index(small_phantom.landmarks.vertebrae["L4"].centroid_lps)[2]))
    k0 = max(0, k_mid - 24)
    k1 = min(ct.array.shape[0], k0 + 48)
    aff = ct.ijk_to_lps.copy()
    aff[:3, 3] = ct.index_to_lps(np.array([0.0, 0.0, k0]))
    d = tmp_path_factory.mktemp("seg-dates")
    write_series(ct.replace(array=ct.array[k0:k1], ijk_to_lps=aff), d / "ct", modality="CT")
    anonymize(d / "ct", d / "copy", date_offset_days=OFFSET_DAYS)
    vol = load_volume(d / "copy")
    anatomy = Anatomy(vol.array.shape, vol.ijk_to_lps, truth.vertebrae[k0:k1],
                      truth.structures[k0:k1], truth.items, truth.findings, truth.parts[k0:k1])
    original = pydicom.dcmread(sorted((d / "ct").glob("*.dcm"))[0], stop_before_pixels=True)
    copy = pydicom.dcmread(sorted((d / "copy").rglob("*.dcm"))[0], stop_before_pixels=True)
    return d, vol, anatomy, original, copy


def test_seg_of_an_anonymised_copy_is_dated_like_the_copy(study, tmp_path):
    d, vol, anatomy, original, copy = study
    assert _day(copy.StudyDate) - _day(original.StudyDate) == datetime.timedelta(OFFSET_DAYS)
    seg = pydicom.dcmread(write_dicom_seg(anatomy, vol, tmp_path / "seg.dcm", source=d / "copy"))
    dates = _dates(seg)
    assert {k for k, _ in dates} >= {"StudyDate", "ContentDate", "InstanceCreationDate"}
    # Every date is one the anonymised images hold: the day of the images, not today.
    assert {v for _, v in dates} == {copy.ContentDate}
    assert seg.LongitudinalTemporalInformationModified == "MODIFIED"
    assert seg.PatientIdentityRemoved == "YES"
    assert seg.ContentTime  # the time of day stays (as anonymisation keeps it)
    _no_dciodvfy_errors(tmp_path / "seg.dcm")


def test_anonymous_seg_moves_its_own_dates_by_the_runs_offset(study, tmp_path):
    d, vol, anatomy, original, copy = study
    before = datetime.date.today()
    p = write_dicom_seg(anatomy, load_volume(d / "ct"), tmp_path / "anon.dcm", anonymous=True)
    after = datetime.date.today()
    seg = pydicom.dcmread(p)
    offset = _day(seg.StudyDate) - _day(original.StudyDate)
    assert offset <= datetime.timedelta(-365)  # a new run, with its own offset
    # Made today, dated today moved by the same offset: the scan-to-SEG interval is kept.
    assert _day(seg.ContentDate) in (before + offset, after + offset)
    assert all(_day(v) <= after + offset for _, v in _dates(seg))
    assert seg.LongitudinalTemporalInformationModified == "MODIFIED"
    _no_dciodvfy_errors(p)


def test_seg_of_identified_images_is_dated_today(study, tmp_path):
    d, vol, anatomy, original, copy = study
    before = datetime.date.today()
    seg = pydicom.dcmread(write_dicom_seg(anatomy, load_volume(d / "ct"), tmp_path / "s.dcm"))
    assert _day(seg.ContentDate) in (before, datetime.date.today())
    assert seg.StudyDate == original.StudyDate
    assert "LongitudinalTemporalInformationModified" not in seg


def test_segment_anonymous_writes_a_seg_dated_like_the_copy(study, tmp_path, capsys):
    d, vol, anatomy, original, copy = study
    out = tmp_path / "seg"
    assert main(["segment", str(d / "copy"), "--out", str(out), "--no-meshes", "--dicom-seg",
                 "--anonymous"]) == 0
    capsys.readouterr()
    seg = pydicom.dcmread(out / "segmentation.dcm")
    assert {v for _, v in _dates(seg)} == {copy.ContentDate}
    assert seg.LongitudinalTemporalInformationModified == "MODIFIED"
