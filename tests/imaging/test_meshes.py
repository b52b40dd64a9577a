"""Meshes a teacher prints and the 3D view shows: closed, in LPS mm, the right size."""

import numpy as np
import pytest

from surgplan.imaging.meshes import mesh_from_mask


def ball_mask(shape, centre_ijk, radius_vox):
    k, j, i = np.indices(shape)
    c = centre_ijk
    return (i - c[0]) ** 2 + (j - c[1]) ** 2 + (k - c[2]) ** 2 <= radius_vox**2


@pytest.mark.parametrize("left_handed", [False, True])
def test_sphere_mesh_is_closed_outward_and_in_lps(tmp_path, left_handed):
    spacing = np.array([0.8, 0.8, 1.0])
    r_mm = 12.0
    aff = np.diag([*spacing, 1.0])
    if left_handed:
        aff[1, 1] = -aff[1, 1]  # rows running anterior, as many DICOM series do
    aff[:3, 3] = [-40.0, 25.0, 100.0]
    shape = (40, 50, 50)
    centre = np.array([25.0, 25.0, 20.0])
    # An ellipsoid in index space that is a sphere of 12 mm in millimetres.
    k, j, i = np.indices(shape)
    d = (((i - centre[0]) * spacing[0]) ** 2 + ((j - centre[1]) * spacing[1]) ** 2
         + ((k - centre[2]) * spacing[2]) ** 2)
    mesh = mesh_from_mask(d <= r_mm**2, aff, "ball", max_triangles=4000)
    assert mesh is not None and mesh.is_watertight()
    assert mesh.n_triangles <= 4400
    centre_lps = aff[:3, :3] @ centre + aff[:3, 3]
    np.testing.assert_allclose(mesh.vertices_lps.mean(axis=0), centre_lps, atol=0.3)
    radii = np.linalg.norm(mesh.vertices_lps - centre_lps, axis=1)
    assert abs(np.median(radii) - r_mm) < 0.6
    expected_ml = 4 / 3 * np.pi * r_mm**3 / 1000
    assert mesh.volume_ml() == pytest.approx(expected_ml, rel=0.06)
    # Outward normals: they point away from the centre.
    outward = np.einsum("ij,ij->i", mesh.normals, mesh.vertices_lps - centre_lps)
    assert (outward > 0).mean() > 0.99

    for suffix in (".stl", ".ply", ".vtp", ".obj"):
        p = mesh.write(tmp_path / f"ball{suffix}")
        assert p.stat().st_size > 1000


def test_empty_mask_has_no_mesh():
    assert mesh_from_mask(np.zeros((5, 5, 5), bool), np.eye(4)) is None


def test_unknown_format_is_refused(tmp_path):
    mesh = mesh_from_mask(ball_mask((12, 12, 12), (6, 6, 6), 4), np.eye(4), "b")
    with pytest.raises(ValueError, match=r"\.stl"):
        mesh.write(tmp_path / "b.xyz")
