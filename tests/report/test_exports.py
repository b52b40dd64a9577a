"""`surgplan export`: every export of a case in one folder, nothing identifying with --anonymous.

(The anonymous DICOM SEG is tested in test_dicom_seg.py.)"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk

from surgplan.cli import main
from surgplan.planning import save_plan


@pytest.fixture(scope="module")
def exported(report_case, report_plan, tmp_path_factory):
    d, vol, anatomy, ctx = report_case
    plan = report_plan.__class__(report_plan.case, report_plan.trajectories[:1], "")
    tmp = tmp_path_factory.mktemp("export")
    save_plan(plan, tmp / "plan.json")
    out = tmp / "Roe_Jane_export"
    assert main(["export", str(d / "Roe_Jane_CT"), "--out", str(out), "--segmentation",
                 str(d / "seg"), "--plan", str(tmp / "plan.json"), "--anonymous"]) == 0
    return out


def test_every_export_is_there_and_reads_back(report_case, exported):
    d, vol, anatomy, ctx = report_case
    for rel in ("labels/vertebrae.nii.gz", "labels/structures.nii.gz", "labels/labels.json",
                "meshes/meshes.json", "meshes/L4.stl", "meshes/L4.ply",
                "plan.json", "metrics.csv"):
        assert (exported / rel).is_file(), rel
    # The label maps read back voxel for voxel (NIfTI stores RAS; ITK gives LPS again).
    img = sitk.ReadImage(str(exported / "labels" / "vertebrae.nii.gz"))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), anatomy.vertebrae)
    np.testing.assert_allclose(img.GetOrigin(), vol.origin_lps, atol=1e-3)
    table = json.loads((exported / "labels" / "labels.json").read_text())
    names = {e["name"] for e in table["files"]["vertebrae.nii.gz"]}
    assert {"L3", "L4", "L5", "S1"} <= names
    rows = list(csv.DictReader(open(exported / "metrics.csv", encoding="utf-8")))
    assert rows and rows[0]["trajectory"] == "teld L4-L5 left"
    pictures = sorted(p.name for p in (exported / "pictures").glob("*.png"))
    assert "segmentation-overview3d.png" in pictures
    assert {"trajectory1-overview3d.png", "trajectory1-axial.png", "trajectory1-sagittal.png",
            "trajectory1-along.png", "trajectory1-riskmap.png"} <= set(pictures)
    from PIL import Image

    for name in pictures:
        a = np.asarray(Image.open(exported / "pictures" / name).convert("L"), float)
        assert a.std() > 15, name


def test_anonymous_export_names_nobody(report_case, exported):
    d, vol, anatomy, ctx = report_case
    md = vol.metadata
    needles = [md.patient_name, md.patient_id, md.study_instance_uid, md.series_instance_uid,
               vol.frame_of_reference_uid, "Roe_Jane_CT", str(d)]
    for p in exported.rglob("*"):
        if p.is_file() and p.suffix != ".png":
            data = p.read_bytes()
            for n in needles:
                assert n.encode() not in data, (p.name, n)
    plan = json.loads((exported / "plan.json").read_text())
    assert set(plan["case"].values()) == {""}  # no ID, UIDs or description
