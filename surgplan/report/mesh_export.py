"""Surface meshes per structure as STL and PLY, in millimetres, for 3D printing and teaching.

Each structure of an Anatomy becomes one closed surface (see
:func:`surgplan.imaging.meshes.mesh_from_mask`), written as binary STL (what
slicers for 3D printers read; STL has no unit field, and millimetres are the
convention they assume) and as binary PLY carrying the structure's display
colour.  Coordinates are patient LPS millimetres, so the meshes of one case
fit together and line up with the image.  ``meshes.json`` lists each file with
the structure's name, kind, provenance, enclosed volume and whether the surface
is watertight; with ``anonymous=True`` it holds nothing about the patient or
the source path.  The folder is complete or absent: files are written into a
private sibling and moved into place at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, Iterable, Optional

from surgplan import __version__
from surgplan.core.progress import CancelToken, ProgressCallback, check
from surgplan.imaging.anatomy import Anatomy
from surgplan.imaging.meshes import Mesh, mesh_from_mask
from surgplan.imaging.segmentation_files import mesh_file_name
from surgplan.imaging.structures import colour_of

FORMATS = ("stl", "ply")


def write_ply_coloured(mesh: Mesh, path: "Path | str", rgb: tuple) -> Path:
    """Write ``mesh`` as binary PLY with one RGB colour (0–255) on every triangle."""
    from vtkmodules.vtkIOPLY import vtkPLYWriter

    p = Path(path)
    w = vtkPLYWriter()
    w.SetFileName(str(p))
    w.SetInputData(mesh.to_vtk())
    w.SetFileTypeToBinary()
    w.SetColorModeToUniformCellColor()
    w.SetColor(*(int(c) for c in rgb))
    if not w.Write():
        raise OSError(f"{p}: the mesh could not be written (is the folder writable?)")
    return p


def export_meshes(
    anatomy: Anatomy,
    out_dir: "os.PathLike[str] | str",
    *,
    names: Optional[Iterable[str]] = None,
    formats: Iterable[str] = FORMATS,
    source: str = "",
    anonymous: bool = False,
    max_triangles: int = 20_000,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> Dict[str, dict]:
    """Write one STL and one PLY per structure into ``out_dir``.

    Parameters
    ----------
    anatomy : Anatomy
        Label maps with their structures.
    out_dir : path-like
        Created (or its files of the same names replaced) once every mesh is written.
    names : iterable of str, optional
        Structures to export (default all that have voxels).
    formats : iterable of {'stl', 'ply'}
    source : str
        Where the image came from, recorded in ``meshes.json`` unless ``anonymous``.
    anonymous : bool
        Record no source path in ``meshes.json``.
    max_triangles : int
        Decimation target per structure.

    Returns
    -------
    dict
        ``{name: {"stl": "L4.stl", "ply": "L4.ply", "kind", "provenance",
        "volume_ml", "watertight"}}`` for every structure written (paths relative
        to ``out_dir``); structures without voxels are left out.

    Raises
    ------
    KeyError
        A name in ``names`` is not in the anatomy.
    ValueError
        An unknown format.
    """
    formats = tuple(f.lower().lstrip(".") for f in formats)
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ValueError(f"unknown mesh format(s) {bad}; use {list(FORMATS)}")
    items = [anatomy.structure(n) for n in names] if names is not None else list(anatomy.items)
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-partial-", dir=out.parent))
    report = progress or (lambda f, m: None)
    table: Dict[str, dict] = {}
    try:
        for i, s in enumerate(items):
            check(cancel)
            report(i / max(len(items), 1), f"mesh of {s.name}")
            mesh = mesh_from_mask(anatomy.mask(s.name), anatomy.ijk_to_lps, s.name,
                                  max_triangles=max_triangles)
            if mesh is None:
                continue
            stem = mesh_file_name(s.name)[: -len(".stl")]
            entry = {"kind": s.kind, "provenance": s.provenance,
                     "volume_ml": round(mesh.volume_ml(), 3),
                     "watertight": mesh.is_watertight(), "triangles": mesh.n_triangles}
            if "stl" in formats:
                mesh.write(tmp / f"{stem}.stl")
                entry["stl"] = f"{stem}.stl"
            if "ply" in formats:
                write_ply_coloured(mesh, tmp / f"{stem}.ply", colour_of(s.name))
                entry["ply"] = f"{stem}.ply"
            table[s.name] = entry
        manifest = {"software": f"surgplan {__version__}", "units": "mm",
                    "coordinates": "patient LPS (x to the left, y posterior, z superior)",
                    "meshes": table}
        if source and not anonymous:
            manifest["source"] = source
        (tmp / "meshes.json").write_text(json.dumps(manifest, indent=1))
        check(cancel)
        out.mkdir(exist_ok=True)
        for item in tmp.iterdir():
            os.replace(item, out / item.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(1.0, "meshes written")
    return table
