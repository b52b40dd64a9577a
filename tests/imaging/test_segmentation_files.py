"""`surgplan segment` output: the files other programs read, never half-written."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from surgplan.cli import main
from surgplan.core.errors import OperationCancelled
from surgplan.core.progress import CancelToken
from surgplan.imaging.dicom.writer import write_series
from surgplan.imaging.phantom import PhantomSpec, make_phantom
from surgplan.imaging.segmentation_files import mesh_file_name, write_segmentation
from tests.imaging.segment_cache import segmented


@pytest.fixture(scope="module")
def phantom_dicom(tmp_path_factory):
    case = make_phantom(PhantomSpec(spacing_mm=(1.6, 1.6, 1.6), seed=5))
    d = tmp_path_factory.mktemp("ct")
    write_series(case.ct, d, modality="CT")
    return case, d


def test_segment_command_writes_the_contract(phantom_dicom, tmp_path, capsys):
    case, d = phantom_dicom
    out = tmp_path / "seg"
    assert main(["segment", str(d), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "vertebrae (" in printed and "L4" in printed
    table = json.loads((out / "labels.json").read_text())
    verts = table["files"]["vertebrae.nii.gz"]
    assert {"L1", "L2", "L3", "L4", "L5"} <= {v["name"] for v in verts}
    for v in verts:
        assert v["kind"] == "vertebra" and v["provenance"] == "segmented"
        assert isinstance(v["provisional"], bool)
    # The label maps lie on the CT's grid in physical (LPS) space.
    lab = sitk.ReadImage(str(out / "vertebrae.nii.gz"))
    assert lab.GetSize() == case.ct.shape_ijk
    np.testing.assert_allclose(lab.GetOrigin(), case.ct.origin_lps, atol=1e-3)
    values = set(np.unique(sitk.GetArrayViewFromImage(lab))) - {0}
    assert values == {v["value"] for v in verts}
    # vertebral parts on the same grid, their codes listed
    parts = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "parts.nii.gz")))
    listed = {e["value"]: e["name"] for e in table["files"]["parts.nii.gz"]}
    assert set(np.unique(parts)) - {0} == set(listed)
    assert {"body", "pedicle left", "pedicle right", "lamina"} <= set(listed.values())
    assert not np.any(parts[sitk.GetArrayViewFromImage(lab) == 0])
    names = {e["name"]: e for e in table["files"]["structures.nii.gz"]}
    assert names["nerve root L4 left"]["provenance"] == "modelled"
    assert names["dural sac"]["kind"] == "dural sac"
    for name, rel in table["meshes"].items():
        assert (out / rel).stat().st_size > 0
    assert (out / "meshes" / mesh_file_name("L4")).is_file()
    assert not list(tmp_path.glob(".seg-partial-*"))


def test_cancelled_write_leaves_nothing(small_phantom, tmp_path):
    case = small_phantom
    anatomy = segmented(case)  # the session's segmentation of the small phantom
    token = CancelToken()

    def progress(fraction, message):
        if "mesh" in message and fraction > 0.3:
            token.cancel()

    out = tmp_path / "seg"
    with pytest.raises(OperationCancelled):
        write_segmentation(anatomy, case.ct, out, progress=progress, cancel=token)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


# --- reading a segmentation folder back -------------------------------------------------------

from surgplan.core.errors import InputNotFoundError, SegmentationFileError  # noqa: E402
from surgplan.imaging.segmentation_files import read_segmentation  # noqa: E402


@pytest.fixture(scope="module")
def written_truth(small_phantom, small_phantom_truth, tmp_path_factory):
    """The phantom's exact anatomy (parts, frames, many structures) written without meshes."""
    out = tmp_path_factory.mktemp("truthseg") / "seg"
    write_segmentation(small_phantom_truth, small_phantom.ct, out, meshes=False)
    return out


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_read_gives_back_the_maps_and_items(small_phantom, small_phantom_truth, written_truth):
    a, b = small_phantom_truth, read_segmentation(written_truth, small_phantom.ct)
    for m in ("vertebrae", "structures", "parts"):
        np.testing.assert_array_equal(getattr(b, m), getattr(a, m), err_msg=m)
    assert b.parts.dtype == np.uint8 and b.vertebrae.dtype == np.uint16
    assert b.names == a.names and b.findings == a.findings
    np.testing.assert_allclose(b.ijk_to_lps, a.ijk_to_lps)
    for x, y in zip(a.items, b.items):
        assert (x.name, x.label, x.map, x.kind, x.provenance, x.provisional, x.notes) == (
            y.name, y.label, y.map, y.kind, y.provenance, y.provisional, y.notes)
        np.testing.assert_array_equal(x.centroid_lps, y.centroid_lps)
        assert (x.frame is None) == (y.frame is None)
        if x.frame is not None:
            for k in ("origin_lps", "si", "ap", "lr"):
                np.testing.assert_array_equal(getattr(x.frame, k), getattr(y.frame, k))
    # The planner's queries work on what was read.
    assert b.part_mask("pedicle left", "L4").sum() == a.part_mask("pedicle left", "L4").sum() > 0
    table = json.loads((written_truth / "labels.json").read_text())
    listed = {e["value"]: e["name"] for e in table["files"]["parts.nii.gz"]}
    assert listed[2] == "pedicle left" and set(listed) == set(np.unique(a.parts)) - {0}


def test_read_refuses_missing_files_naming_them(small_phantom, written_truth, tmp_path):
    with pytest.raises(InputNotFoundError, match="no such segmentation folder"):
        read_segmentation(tmp_path / "nowhere", small_phantom.ct)
    for name in ("labels.json", "parts.nii.gz", "structures.nii.gz"):
        d = _copy(written_truth, tmp_path / name.replace(".", "_"))
        (d / name).unlink()
        with pytest.raises(InputNotFoundError, match=f"{name}: missing"):
            read_segmentation(d, small_phantom.ct)


def test_read_refuses_bad_files_naming_them(small_phantom, written_truth, tmp_path):
    d = _copy(written_truth, tmp_path / "trunc")
    data = (d / "vertebrae.nii.gz").read_bytes()
    (d / "vertebrae.nii.gz").write_bytes(data[: len(data) // 3])
    with pytest.raises(SegmentationFileError, match="vertebrae.nii.gz: cannot be read"):
        read_segmentation(d, small_phantom.ct)

    d = _copy(written_truth, tmp_path / "json")
    (d / "labels.json").write_text('{"files": [')
    with pytest.raises(SegmentationFileError, match="labels.json: cannot be read as JSON"):
        read_segmentation(d, small_phantom.ct)

    d = _copy(written_truth, tmp_path / "names")
    table = json.loads((d / "labels.json").read_text())
    table["files"]["vertebrae.nii.gz"][0]["name"] = "L9"
    (d / "labels.json").write_text(json.dumps(table))
    with pytest.raises(SegmentationFileError, match="labels.json: vertebrae.nii.gz value 1"):
        read_segmentation(d, small_phantom.ct)

    d = _copy(written_truth, tmp_path / "undescribed")
    table = json.loads((d / "labels.json").read_text())
    table["files"]["structures.nii.gz"] = table["files"]["structures.nii.gz"][1:]
    (d / "labels.json").write_text(json.dumps(table))
    with pytest.raises(SegmentationFileError, match="structures.nii.gz: holds label values"):
        read_segmentation(d, small_phantom.ct)


def test_read_refuses_a_segmentation_of_another_image(small_phantom, written_truth):
    other = small_phantom.ct.replace(array=small_phantom.ct.array[:-2])
    with pytest.raises(SegmentationFileError, match="belongs to another image"):
        read_segmentation(written_truth, other)
    shifted = small_phantom.ct.replace(
        ijk_to_lps=small_phantom.ct.ijk_to_lps + np.array([[0, 0, 0, 1.0]] * 3 + [[0, 0, 0, 0]]))
    with pytest.raises(SegmentationFileError, match="mm away from the image's grid"):
        read_segmentation(written_truth, shifted)
