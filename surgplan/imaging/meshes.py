"""Smooth, decimated surface meshes of labelled structures, in LPS millimetres.

A mesh is plain numpy (vertices, triangles) so that the planner and the
report can use it without VTK; VTK does the work of building it (flying edges
on a lightly smoothed mask, windowed-sinc smoothing, quadric decimation) and
of writing STL / PLY / VTP / OBJ files.

The surface is extracted in voxel-index space and then mapped through the
volume's ``ijk_to_lps`` with numpy, which handles oblique and left-handed
grids exactly (VTK's image direction support varies between filters).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from surgplan.core.geometry import apply_affine

#: Gaussian smoothing of the binary mask before contouring, in voxels: removes
#: the staircase of a voxel mask while moving the surface by far less than a voxel.
MASK_SMOOTHING_VOXELS = 0.8
#: Largest crop contoured at full resolution (voxels); bigger ones are pooled.
MAX_CONTOUR_VOXELS = 3_000_000


@dataclass(frozen=True, eq=False)
class Mesh:
    """A triangle surface in LPS mm.

    Attributes
    ----------
    name : str
        The structure's shared name.
    vertices_lps : numpy.ndarray
        ``(n, 3)`` float32 vertex positions, LPS mm.
    triangles : numpy.ndarray
        ``(m, 3)`` int64 vertex indices, counter-clockwise seen from outside.
    normals : numpy.ndarray
        ``(n, 3)`` float32 outward unit normals per vertex.
    """

    name: str
    vertices_lps: np.ndarray
    triangles: np.ndarray
    normals: np.ndarray

    @property
    def n_triangles(self) -> int:
        return int(self.triangles.shape[0])

    def area_mm2(self) -> float:
        """Total surface area in mm²."""
        v = self.vertices_lps.astype(float)
        a, b, c = (v[self.triangles[:, n]] for n in range(3))
        return float(0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1).sum())

    def volume_ml(self) -> float:
        """Enclosed volume in millilitres (divergence theorem; needs a closed mesh)."""
        v = self.vertices_lps.astype(float)
        a, b, c = (v[self.triangles[:, n]] for n in range(3))
        return float(abs(np.einsum("ij,ij->i", a, np.cross(b, c)).sum()) / 6.0 / 1000.0)

    def is_watertight(self) -> bool:
        """True when every edge is shared by exactly two triangles."""
        return _closed(self.triangles)

    def to_vtk(self):
        """This mesh as ``vtkPolyData`` (points in LPS mm) with point normals."""
        from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray
        from vtkmodules.vtkCommonCore import vtkPoints
        from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData

        pts = vtkPoints()
        pts.SetData(numpy_to_vtk(np.ascontiguousarray(self.vertices_lps, np.float32), deep=True))
        n = self.triangles.shape[0]
        offsets = np.arange(0, 3 * n + 1, 3, dtype=np.int64)
        cells = vtkCellArray()
        cells.SetData(
            numpy_to_vtkIdTypeArray(offsets, deep=True),
            numpy_to_vtkIdTypeArray(np.ascontiguousarray(self.triangles.ravel(), np.int64), deep=True),
        )
        poly = vtkPolyData()
        poly.SetPoints(pts)
        poly.SetPolys(cells)
        normals = numpy_to_vtk(np.ascontiguousarray(self.normals, np.float32), deep=True)
        normals.SetName("Normals")
        poly.GetPointData().SetNormals(normals)
        return poly

    def write(self, path: "Path | str") -> Path:
        """Write as STL, PLY, VTP or OBJ (by suffix), coordinates in LPS mm.

        STL and PLY are what 3D printers and slicers read; VTP keeps normals
        for VTK-based viewers.
        """
        from vtkmodules.vtkIOGeometry import vtkOBJWriter, vtkSTLWriter
        from vtkmodules.vtkIOPLY import vtkPLYWriter
        from vtkmodules.vtkIOXML import vtkXMLPolyDataWriter

        p = Path(path)
        writers = {
            ".stl": vtkSTLWriter,
            ".ply": vtkPLYWriter,
            ".vtp": vtkXMLPolyDataWriter,
            ".obj": vtkOBJWriter,
        }
        cls = writers.get(p.suffix.lower())
        if cls is None:
            raise ValueError(f"{p}: unknown mesh format; use .stl, .ply, .vtp or .obj")
        w = cls()
        w.SetFileName(str(p))
        w.SetInputData(self.to_vtk())
        if p.suffix.lower() == ".stl":
            w.SetFileTypeToBinary()
        if not w.Write():
            raise OSError(f"{p}: the mesh could not be written (is the folder writable?)")
        return p


def mesh_from_mask(
    mask: np.ndarray,
    ijk_to_lps: np.ndarray,
    name: str = "",
    *,
    smoothing_iterations: int = 15,
    max_triangles: int = 20_000,
) -> Optional[Mesh]:
    """Surface of a binary mask as a smooth, decimated, closed mesh in LPS mm.

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean ``(nk, nj, ni)`` mask on a Volume's grid.
    ijk_to_lps : numpy.ndarray
        The grid's 4×4 index→LPS affine.
    name : str
        Structure name stored on the mesh.
    smoothing_iterations : int
        Windowed-sinc iterations (0 disables).
    max_triangles : int
        Decimate to at most about this many triangles (3D view and export sizes).

    Returns
    -------
    Mesh or None
        ``None`` for an empty mask.
    """
    from scipy import ndimage
    from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
    from vtkmodules.vtkCommonDataModel import vtkImageData
    from vtkmodules.vtkFiltersCore import (
        vtkFlyingEdges3D,
        vtkQuadricDecimation,
        vtkTriangleFilter,
        vtkWindowedSincPolyDataFilter,
    )

    m = np.asarray(mask, dtype=bool)
    if not m.any():
        return None
    # Crop to the structure with a margin so the surface closes inside the crop.
    pad = 3
    nz = np.nonzero(m)
    lo = [max(int(a.min()) - pad, 0) for a in nz]
    hi = [min(int(a.max()) + pad + 1, s) for a, s in zip(nz, m.shape)]
    sub = m[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    # Large structures (skin, body outline, bowel) would give millions of
    # triangles only to be decimated away: contour them on a coarser grid
    # (block means) so each stays under about MAX_CONTOUR_VOXELS voxels.
    stride = 1
    while sub.size / stride**3 > MAX_CONTOUR_VOXELS:
        stride += 1
    if stride > 1:
        shape = [-(-n // stride) * stride for n in sub.shape]
        padded = np.zeros(shape, np.float32)
        padded[: sub.shape[0], : sub.shape[1], : sub.shape[2]] = sub
        sub = padded.reshape(
            shape[0] // stride, stride, shape[1] // stride, stride, shape[2] // stride, stride
        ).mean(axis=(1, 3, 5))
    crop = np.zeros([n + 2 * pad for n in sub.shape], np.float32)
    crop[pad:-pad, pad:-pad, pad:-pad] = sub
    field = ndimage.gaussian_filter(crop, MASK_SMOOTHING_VOXELS) if MASK_SMOOTHING_VOXELS else crop

    img = vtkImageData()
    nk, nj, ni = field.shape
    img.SetDimensions(ni, nj, nk)
    img.GetPointData().SetScalars(numpy_to_vtk(field.ravel(), deep=True))
    fe = vtkFlyingEdges3D()
    fe.SetInputData(img)
    fe.SetValue(0, 0.5)
    fe.ComputeNormalsOff()
    fe.Update()
    surf = fe.GetOutput()
    if surf.GetNumberOfPolys() == 0:
        # A structure thinner than the smoothing kernel: contour the raw mask.
        img.GetPointData().SetScalars(numpy_to_vtk(crop.ravel(), deep=True))
        fe.Modified()
        fe.Update()
        surf = fe.GetOutput()
        if surf.GetNumberOfPolys() == 0:
            return None
    out = surf
    if smoothing_iterations > 0:
        ws = vtkWindowedSincPolyDataFilter()
        ws.SetInputData(out)
        ws.SetNumberOfIterations(smoothing_iterations)
        ws.SetPassBand(0.1)
        ws.NormalizeCoordinatesOn()
        ws.BoundarySmoothingOff()
        ws.FeatureEdgeSmoothingOff()
        ws.NonManifoldSmoothingOn()
        ws.Update()
        out = ws.GetOutput()
    n_tri = out.GetNumberOfPolys()
    if n_tri > max_triangles:
        dec = vtkQuadricDecimation()
        dec.SetInputData(out)
        dec.SetTargetReduction(1.0 - max_triangles / n_tri)
        dec.VolumePreservationOn()
        dec.Update()
        tri = vtkTriangleFilter()
        tri.SetInputData(dec.GetOutput())
        tri.Update()
        # Quadric decimation can pinch thin parts into non-manifold edges; a
        # mesh for 3D printing must stay closed, so keep the finer one then.
        if _closed(_triangles_of(tri.GetOutput())):
            out = tri.GetOutput()

    pts_crop = vtk_to_numpy(out.GetPoints().GetData()).astype(float)
    # Crop voxel (x=i, y=j, z=k) → full-grid index → LPS.  With a stride, crop
    # voxel c covers source voxels c*stride … c*stride+stride-1 (centre below).
    src = (pts_crop - pad) * stride + (stride - 1) / 2.0
    offset = np.array([lo[2], lo[1], lo[0]], float)
    verts = apply_affine(np.asarray(ijk_to_lps, float), src + offset)
    conn = _triangles_of(out)
    # The winding depends on flying edges' convention and on the grid's
    # handedness (a left-handed index→LPS affine mirrors triangles); a closed
    # surface with outward-facing triangles has positive signed volume.
    if _signed_volume(verts, conn) < 0:
        conn = conn[:, ::-1].copy()
    return Mesh(name, verts.astype(np.float32), conn, _vertex_normals(verts, conn))


def _triangles_of(poly) -> np.ndarray:
    """``(m, 3)`` vertex indices of an all-triangle vtkPolyData."""
    from vtkmodules.util.numpy_support import vtk_to_numpy

    return vtk_to_numpy(poly.GetPolys().GetConnectivityArray()).astype(np.int64).reshape(-1, 3)


def _closed(t: np.ndarray) -> bool:
    """True when every edge of triangles ``t`` is shared by exactly two of them."""
    if t.size == 0:
        return False
    edges = np.sort(np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    return bool(np.all(counts == 2))


def _signed_volume(v: np.ndarray, t: np.ndarray) -> float:
    a, b, c = v[t[:, 0]], v[t[:, 1]], v[t[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def _vertex_normals(v: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals (unit length) for triangles ``t``."""
    a, b, c = v[t[:, 0]], v[t[:, 1]], v[t[:, 2]]
    fn = np.cross(b - a, c - a)
    n = np.zeros_like(v)
    for col in range(3):
        np.add.at(n, t[:, col], fn)
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return (n / np.where(length > 0, length, 1.0)).astype(np.float32)
