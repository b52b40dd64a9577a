"""STL and PLY per structure, in mm, closed: what a 3D printer and a teaching model need."""

from __future__ import annotations

import json

import numpy as np
import pytest

from surgplan.core.errors import OperationCancelled
from surgplan.core.progress import CancelToken
from surgplan.imaging.structures import colour_of
from surgplan.report.mesh_export import export_meshes

NAMES = ["L4", "disc L4-L5", "nerve root L4 left", "aorta"]


def _read(path):
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkIOGeometry import vtkSTLReader
    from vtkmodules.vtkIOPLY import vtkPLYReader

    r = vtkSTLReader() if path.suffix == ".stl" else vtkPLYReader()
    r.SetFileName(str(path))
    r.Update()
    poly = r.GetOutput()
    pts = vtk_to_numpy(poly.GetPoints().GetData()).astype(float)
    tri = vtk_to_numpy(poly.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    return poly, pts, tri


def _edges_shared_by_two(tri: np.ndarray) -> bool:
    edges = np.sort(np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    return bool(np.all(counts == 2))


@pytest.fixture(scope="module")
def exported(small_phantom_truth, tmp_path_factory):
    out = tmp_path_factory.mktemp("m") / "meshes"
    table = export_meshes(small_phantom_truth, out, names=NAMES, source="/data/Roe_Jane/ct")
    return out, table


def test_each_stl_is_watertight_and_in_mm_where_the_structure_is(small_phantom_truth, exported):
    out, table = exported
    assert sorted(table) == sorted(NAMES)
    for name in NAMES:
        _, pts, tri = _read(out / table[name]["stl"])
        assert len(tri) > 100
        assert _edges_shared_by_two(tri), name
        k, j, i = np.nonzero(small_phantom_truth.mask(name))
        lps = small_phantom_truth.ijk_to_lps @ np.stack([i, j, k, np.ones_like(i)]).astype(float)
        lo, hi = lps[:3].min(axis=1), lps[:3].max(axis=1)
        spacing = float(small_phantom_truth.ijk_spacing_mm.max())
        assert np.all(pts.min(axis=0) >= lo - spacing) and np.all(pts.max(axis=0) <= hi + spacing)
    # The L4 surface encloses the vertebra's volume (mm³ → ml), not a voxel-unit volume.
    voxel_ml = small_phantom_truth.mask("L4").sum() * np.prod(
        small_phantom_truth.ijk_spacing_mm) / 1000.0
    assert table["L4"]["volume_ml"] == pytest.approx(voxel_ml, rel=0.12)
    assert table["L4"]["watertight"] is True


def test_ply_holds_the_same_surface_with_the_structure_colour(exported):
    out, table = exported
    poly, pts, tri = _read(out / table["aorta"]["ply"])
    _, _, tri_stl = _read(out / table["aorta"]["stl"])
    assert len(tri) == len(tri_stl)
    assert _edges_shared_by_two(tri)
    from vtkmodules.util.numpy_support import vtk_to_numpy

    colours = vtk_to_numpy(poly.GetCellData().GetScalars())
    assert tuple(colours[0][:3]) == colour_of("aorta")


def test_manifest_and_anonymous_manifest(small_phantom_truth, exported, tmp_path):
    out, table = exported
    manifest = json.loads((out / "meshes.json").read_text())
    assert manifest["units"] == "mm" and manifest["source"] == "/data/Roe_Jane/ct"
    assert manifest["meshes"]["L4"]["provenance"] == "segmented"
    anon = tmp_path / "anon"
    export_meshes(small_phantom_truth, anon, names=["L4"], source="/data/Roe_Jane/ct",
                  anonymous=True, formats=["stl"])
    text = (anon / "meshes.json").read_text()
    assert "Roe" not in text and "source" not in json.loads(text)
    assert sorted(p.name for p in anon.iterdir()) == ["L4.stl", "meshes.json"]


def test_unknown_names_formats_and_cancel(small_phantom_truth, tmp_path):
    with pytest.raises(KeyError, match="no structure"):
        export_meshes(small_phantom_truth, tmp_path / "a", names=["L9"])
    with pytest.raises(ValueError, match="unknown mesh format"):
        export_meshes(small_phantom_truth, tmp_path / "b", formats=["obj3"])
    token = CancelToken()
    token.cancel()
    with pytest.raises(OperationCancelled):
        export_meshes(small_phantom_truth, tmp_path / "c", names=["L4"], cancel=token)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
