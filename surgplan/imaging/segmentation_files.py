"""Write an Anatomy as files other programs read (the `surgplan segment` contract).

``DIR/vertebrae.nii.gz``  one integer label per whole vertebra;
``DIR/structures.nii.gz`` every other structure (discs, canal …);
``DIR/labels.json``       for each file, each value with ``name``, ``kind``,
                          ``provenance`` and ``provisional``, plus the findings;
``DIR/meshes/NAME.stl``   one closed surface per structure, LPS mm.

Everything is written into a private sibling folder first and moved into
place at the end, so a cancelled or failed run leaves no half-written output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Optional

from surgplan import __version__
from surgplan.core.progress import CancelToken, ProgressCallback, check
from surgplan.imaging.anatomy import Anatomy
from surgplan.imaging.meshes import mesh_from_mask
from surgplan.imaging.volume import Volume
from surgplan.imaging.volume_files import write_label_volume

MAP_FILES = {"vertebrae": "vertebrae.nii.gz", "structures": "structures.nii.gz"}


def mesh_file_name(name: str) -> str:
    """A portable file name for a structure: ``disc L4-L5`` → ``disc_L4-L5.stl``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") + ".stl"


def write_segmentation(
    anatomy: Anatomy,
    volume: Volume,
    out_dir: "Path | str",
    *,
    meshes: bool = True,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> Path:
    """Write label maps, the label table and meshes of ``anatomy`` into ``out_dir``.

    Existing files of the same names in ``out_dir`` are replaced only once the
    whole new set is complete.
    """
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-partial-", dir=out.parent))
    try:
        table = {"software": f"surgplan {__version__}", "source": volume.source, "files": {}}
        for map_name, file_name in MAP_FILES.items():
            arr = getattr(anatomy, map_name)
            write_label_volume(tmp / file_name, arr, volume)
            table["files"][file_name] = [
                {
                    "value": int(s.label),
                    "name": s.name,
                    "kind": s.kind,
                    "provenance": s.provenance,
                    "provisional": bool(s.provisional),
                    "notes": s.notes,
                }
                for s in anatomy.items
                if s.map == map_name
            ]
        table["findings"] = list(anatomy.findings)
        if meshes:
            (tmp / "meshes").mkdir()
            table["meshes"] = {}
            n = len(anatomy.items)
            for i, s in enumerate(anatomy.items):
                check(cancel)
                if progress:
                    progress(i / max(n, 1), f"mesh of {s.name}")
                mesh = mesh_from_mask(anatomy.mask(s.name), anatomy.ijk_to_lps, s.name)
                if mesh is not None:
                    rel = f"meshes/{mesh_file_name(s.name)}"
                    mesh.write(tmp / rel)
                    table["meshes"][s.name] = rel
        (tmp / "labels.json").write_text(json.dumps(table, indent=1))
        check(cancel)
        out.mkdir(exist_ok=True)
        for item in tmp.iterdir():
            dest = out / item.name
            if dest.is_dir():
                shutil.rmtree(dest)
            os.replace(item, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if progress:
        progress(1.0, "segmentation written")
    return out
