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
from surgplan.imaging.segment import segment_ct
from surgplan.imaging.segmentation_files import mesh_file_name, write_segmentation


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
    for name, rel in table["meshes"].items():
        assert (out / rel).stat().st_size > 0
    assert (out / "meshes" / mesh_file_name("L4")).is_file()
    assert not list(tmp_path.glob(".seg-partial-*"))


def test_cancelled_write_leaves_nothing(phantom_dicom, tmp_path):
    case, _ = phantom_dicom
    anatomy = segment_ct(case.ct)
    token = CancelToken()

    def progress(fraction, message):
        if "mesh" in message and fraction > 0.3:
            token.cancel()

    out = tmp_path / "seg"
    with pytest.raises(OperationCancelled):
        write_segmentation(anatomy, case.ct, out, progress=progress, cancel=token)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_segment_refuses_mr_with_a_clear_message(tmp_path, capsys):
    case = make_phantom(PhantomSpec(spacing_mm=(2.5, 2.5, 2.5)))
    from surgplan.imaging.phantom import mr_volume

    d = tmp_path / "mr"
    write_series(mr_volume(case), d, modality="MR")
    assert main(["segment", str(d), "--out", str(tmp_path / "o")]) == 1
    assert "MR segmentation is not available yet" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
