"""The DICOM series writer: valid files, geometry, pixel round trip, tilted /
irregular / incomplete acquisitions, the demo case, and a round trip through
SurgPlan's own reader."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from surgplan.core.errors import OperationCancelled
from surgplan.core.progress import CancelToken
from surgplan.imaging.dicom.writer import write_series
from surgplan.imaging.phantom import PhantomSpec, write_demo
from surgplan.imaging.volume import ImageMetadata, Volume

SPACING = (0.9, 0.8, 1.5)
ORIGIN = (-20.0, -15.0, 100.0)


def _affine():
    aff = np.diag([*SPACING, 1.0])
    aff[:3, 3] = ORIGIN
    return aff


def _linear_volume(modality="CT", dtype=np.int16):
    """Values that are a linear function of LPS position: trilinear sampling is exact."""
    nk, nj, ni = 24, 30, 40
    k, j, i = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
    x = ORIGIN[0] + i * SPACING[0]
    y = ORIGIN[1] + j * SPACING[1]
    z = ORIGIN[2] + k * SPACING[2]
    vals = 3.0 * x - 2.0 * y + 10.0 * (z - ORIGIN[2]) + (0 if modality == "CT" else 200)
    md = ImageMetadata(modality=modality, patient_name="PHANTOM^SPINE", patient_id="P1",
                       study_instance_uid=pydicom.uid.generate_uid(), series_number="5")
    return Volume(np.rint(vals).astype(dtype), _affine(), frame_of_reference_uid="1.2.3.4",
                  metadata=md)


def _expected(ds):
    """The linear function at every pixel centre of a written slice."""
    pos = np.array([float(v) for v in ds.ImagePositionPatient])
    iop = np.array([float(v) for v in ds.ImageOrientationPatient])
    row, col = iop[:3], iop[3:]
    dr, dc = float(ds.PixelSpacing[1]), float(ds.PixelSpacing[0])
    jj, ii = np.mgrid[0 : ds.Rows, 0 : ds.Columns]
    p = pos + ii[..., None] * dr * row + jj[..., None] * dc * col
    return 3.0 * p[..., 0] - 2.0 * p[..., 1] + 10.0 * (p[..., 2] - ORIGIN[2]), p


def _hu(ds):
    return ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def _inside(p, margin=0.0):
    lo = np.array(ORIGIN) + margin
    hi = np.array(ORIGIN) + (np.array([39, 29, 23]) * SPACING) - margin
    return np.all((p >= lo) & (p <= hi), axis=-1)


def test_plain_series_is_valid_and_round_trips(tmp_path):
    vol = _linear_volume()
    files = write_series(vol, tmp_path, series_description="test")
    assert [f.name for f in files[:2]] == ["IM00001.dcm", "IM00002.dcm"]
    assert len(files) == 24
    uids = set()
    for k, f in enumerate(files):
        ds = pydicom.dcmread(f)
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.SOPClassUID == pydicom.uid.CTImageStorage
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        uids.add(ds.SOPInstanceUID)
        assert ds.StudyInstanceUID == vol.metadata.study_instance_uid
        assert ds.FrameOfReferenceUID == "1.2.3.4"
        assert ds.PatientName == "PHANTOM^SPINE" and ds.Modality == "CT"
        assert int(ds.InstanceNumber) == k + 1
        assert np.allclose([float(v) for v in ds.ImageOrientationPatient], [1, 0, 0, 0, 1, 0])
        assert np.allclose([float(v) for v in ds.PixelSpacing], [0.8, 0.9])
        assert np.allclose([float(v) for v in ds.ImagePositionPatient],
                           vol.index_to_lps(np.array([0.0, 0.0, k])))
        assert (ds.Rows, ds.Columns) == (30, 40)
        assert float(ds.RescaleIntercept) == -1024 and float(ds.RescaleSlope) == 1
        assert ds.PixelRepresentation == 0
        assert np.array_equal(_hu(ds), vol.array[k].astype(float))
    assert len(uids) == 24
    series = {pydicom.dcmread(f, stop_before_pixels=True).SeriesInstanceUID for f in files}
    assert len(series) == 1


def test_mr_series_keeps_values(tmp_path):
    vol = _linear_volume("MR", np.uint16)
    files = write_series(vol, tmp_path, modality="MR")
    ds = pydicom.dcmread(files[5])
    assert ds.SOPClassUID == pydicom.uid.MRImageStorage and ds.Modality == "MR"
    assert np.array_equal(_hu(ds), vol.array[5].astype(float))


def test_tilted_series_samples_oblique_planes(tmp_path):
    vol = _linear_volume()
    tilt = 15.0
    files = write_series(vol, tmp_path, gantry_tilt_deg=tilt)
    t = np.radians(tilt)
    xy = set()
    zs = []
    for f in files:
        ds = pydicom.dcmread(f)
        iop = [float(v) for v in ds.ImageOrientationPatient]
        assert np.allclose(iop, [1, 0, 0, 0, np.cos(t), -np.sin(t)], atol=1e-5)
        assert float(ds.GantryDetectorTilt) == pytest.approx(tilt)
        pos = [float(v) for v in ds.ImagePositionPatient]
        xy.add((round(pos[0], 3), round(pos[1], 3)))
        zs.append(pos[2])
        expected, p = _expected(ds)
        ok = _inside(p, 0.01)
        assert ok.sum() > 300
        # sampled, not relabelled: the linear field at the oblique positions (±1 rounding)
        assert np.max(np.abs(_hu(ds)[ok] - expected[ok])) <= 1.01
        assert np.all(_hu(ds)[~_inside(p, -2.0)] == -1024)  # outside: air
    assert len(xy) == 1  # positions step along z only
    assert np.allclose(np.diff(zs), SPACING[2])


def test_irregular_positions_and_dropped_slices(tmp_path):
    vol = _linear_volume()
    z0 = ORIGIN[2]
    pos = [z0 + 1.0, z0 + 2.0, z0 + 4.5, z0 + 5.0, z0 + 9.25, z0 + 12.0]
    files = write_series(vol, tmp_path / "irr", slice_positions_mm=pos)
    got = []
    for f in files:
        ds = pydicom.dcmread(f)
        got.append(float(ds.ImagePositionPatient[2]))
        expected, p = _expected(ds)
        assert np.max(np.abs(_hu(ds) - expected)) <= 1.01
    assert np.allclose(got, pos)
    files = write_series(vol, tmp_path / "gap", drop_slices=(3, 7))
    assert len(files) == 22
    numbers = [int(pydicom.dcmread(f, stop_before_pixels=True).InstanceNumber) for f in files]
    assert 4 not in numbers and 8 not in numbers and numbers == sorted(numbers)
    zs = [float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) for f in files]
    assert pytest.approx(zs[3] - zs[2]) == 2 * SPACING[2]


def test_bad_arguments_and_cancel(tmp_path):
    vol = _linear_volume()
    with pytest.raises(ValueError, match="modality"):
        write_series(vol, tmp_path, modality="US")
    with pytest.raises(ValueError, match="drop_slices"):
        write_series(vol, tmp_path, drop_slices=(99,))
    tok = CancelToken()
    calls = []

    def prog(f, msg):
        calls.append(f)
        if len(calls) == 5:
            tok.cancel()

    with pytest.raises(OperationCancelled):
        write_series(vol, tmp_path / "c", progress=prog, cancel=tok)
    assert list((tmp_path / "c").glob("*.dcm")) == []  # nothing half-written is left


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    spec = PhantomSpec(spacing_mm=(2.5, 2.5, 2.5), fov=("L3", "L5"))
    return out, write_demo(out, spec)


def test_write_demo(demo):
    out, res = demo
    case = res["case"]
    ct = sorted((out / "ct").glob("IM*.dcm"))
    mr = sorted((out / "mr").glob("IM*.dcm"))
    assert len(ct) == len(mr) == case.ct.array.shape[0]
    a = pydicom.dcmread(ct[0], stop_before_pixels=True)
    b = pydicom.dcmread(mr[0], stop_before_pixels=True)
    assert a.Modality == "CT" and b.Modality == "MR"
    assert a.StudyInstanceUID == b.StudyInstanceUID
    assert a.FrameOfReferenceUID == b.FrameOfReferenceUID == case.ct.frame_of_reference_uid
    assert a.SeriesInstanceUID != b.SeriesInstanceUID
    assert str(a.PatientName) == "PHANTOM^SPINE"
    img = sitk.ReadImage(str(out / "truth-labels.nii.gz"))
    assert np.array_equal(sitk.GetArrayViewFromImage(img), case.labels)
    assert np.allclose(img.GetOrigin(), case.ct.origin_lps)  # ITK physical space is LPS
    table = json.loads((out / "truth-labels.json").read_text())
    assert {d["value"]: d["name"] for d in table} == dict(case.label_names)
    lm = json.loads((out / "truth-landmarks.json").read_text())
    assert "L4" in lm["vertebrae"] and "L4-L5 left" in lm["kambin"]


def test_round_trip_through_the_reader(demo, tmp_path):
    index_mod = pytest.importorskip("surgplan.imaging.dicom.index")
    reader = pytest.importorskip("surgplan.imaging.dicom.reader")
    out, res = demo
    case = res["case"]
    idx = index_mod.index_files(sorted((out / "ct").glob("*.dcm")))
    assert len(idx.series) == 1
    vol = reader.load_series(idx.series[0])
    assert np.allclose(vol.ijk_to_lps, case.ct.ijk_to_lps, atol=1e-4)
    assert np.array_equal(np.asarray(vol.array, np.int16), case.ct.array)
    assert vol.metadata.patient_name == "PHANTOM^SPINE"
    # a tilted copy loads with a tilt warning onto a grid that covers the same anatomy
    tilted = write_series(case.ct, tmp_path / "tilt", gantry_tilt_deg=12.0)
    idx = index_mod.index_files(tilted)
    vol = reader.load_series(idx.series[0])
    assert "gantry-tilt" in {w.code for w in vol.warnings}
    # sampled at the body centre of L4, the tilted-then-reloaded CT is still bone
    c = case.landmarks.vertebrae["L4"].centroid_lps
    i, j, k = np.rint(vol.lps_to_index(c)).astype(int)
    assert 120 <= vol.array[k, j, i] <= 350
