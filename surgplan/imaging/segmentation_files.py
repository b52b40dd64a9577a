"""Write an Anatomy as files other programs read (the `surgplan segment` contract).

``DIR/vertebrae.nii.gz``  one integer label per whole vertebra;
``DIR/structures.nii.gz`` every other structure (discs, canal, dural sac, roots …);
``DIR/parts.nii.gz``      the vertebral sub-region code of each vertebra voxel
                          (``structures.PART_NAMES``: body, pedicles, articular
                          processes …; 0 = none), the vertebra from ``vertebrae.nii.gz``;
``DIR/labels.json``       for each file, each value with ``name``, ``kind``,
                          ``provenance`` and ``provisional`` (plus ``notes``,
                          ``centroid_lps`` and a vertebra's ``frame``), plus the findings
                          and, when known, ``root_paths``: each nerve root's centre
                          line as a list of LPS mm points from the dura outward;
``DIR/meshes/NAME.stl``   one closed surface per structure, LPS mm.

``labels.json`` names the source image (its path) unless written with
``anonymous=True``; then (as ``surgplan export --anonymous``, which writes the
same files through :func:`write_label_files`) it leaves the source out, and
any finding or note that quotes the source path says "the image" instead.  The
label maps and meshes hold no identity, dates or UIDs either way (NIfTI and STL
headers carry only geometry).

Everything is written into a private sibling folder first and moved into
place at the end, so a cancelled or failed run leaves no half-written output.
:func:`read_segmentation` reads such a folder back as an :class:`Anatomy`.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

from surgplan import __version__
from surgplan.core.atomic import publish_folder_contents
from surgplan.core.errors import InputNotFoundError, SegmentationFileError
from surgplan.core.progress import CancelToken, ProgressCallback, check
from surgplan.imaging.anatomy import MAPS, Anatomy, Structure, VertebraFrame
from surgplan.imaging.meshes import mesh_from_mask
from surgplan.imaging.structures import PART_NAMES
from surgplan.imaging.volume import Volume
from surgplan.imaging.volume_files import write_label_volume

MAP_FILES = {"vertebrae": "vertebrae.nii.gz", "structures": "structures.nii.gz"}
#: The file of the vertebral sub-region map (``Anatomy.parts``).
PARTS_FILE = "parts.nii.gz"
#: ``kind`` of the entries of ``PARTS_FILE`` in labels.json.
PART_KIND = "vertebral part"
LABELS_FILE = "labels.json"
#: How far (mm) a label file's grid may sit from the volume's and still be its grid
#: (NIfTI stores the geometry in float32).
_GRID_TOL_MM = 1e-2


def mesh_file_name(name: str) -> str:
    """A portable file name for a structure: ``disc L4-L5`` → ``disc_L4-L5.stl``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") + ".stl"


def write_label_files(anatomy: Anatomy, volume: Volume, folder: Path, *,
                      anonymous: bool = False) -> dict:
    """The three label maps of ``anatomy`` as NIfTI in ``folder``, and their table.

    Shared by ``surgplan segment`` and ``surgplan export`` so that both write the
    same files, which :func:`read_segmentation` reads back.

    Parameters
    ----------
    anatomy : Anatomy
        On ``volume``'s grid.
    volume : Volume
        The image; its grid is written into every map.
    folder : pathlib.Path
        An existing folder.
    anonymous : bool
        No ``source`` path, and the path said as "the image" in findings and notes.

    Returns
    -------
    dict
        The ``labels.json`` table (not yet written: the caller adds the meshes).
    """
    table = {"software": f"surgplan {__version__}", "coordinates": "NIfTI (RAS on disk)",
             "files": {}}
    if not anonymous and volume.source:
        table["source"] = volume.source
    hide = _source_hider(volume.source if anonymous else "")
    for map_name, file_name in MAP_FILES.items():
        write_label_volume(folder / file_name, getattr(anatomy, map_name), volume)
        table["files"][file_name] = [
            _item_entry(s, hide) for s in anatomy.items if s.map == map_name
        ]
    write_label_volume(folder / PARTS_FILE, np.asarray(anatomy.parts, np.uint8), volume)
    present = set(np.unique(anatomy.parts).tolist()) - {0}
    table["files"][PARTS_FILE] = [
        {"value": code, "name": PART_NAMES[code], "kind": PART_KIND} for code in sorted(present)
    ]
    table["findings"] = [hide(f) for f in anatomy.findings]
    if anatomy.root_paths:
        table["root_paths"] = {n: [[float(x) for x in p] for p in pts]
                               for n, pts in anatomy.root_paths.items()}
    return table


def write_segmentation(
    anatomy: Anatomy,
    volume: Volume,
    out_dir: "Path | str",
    *,
    meshes: bool = True,
    anonymous: bool = False,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> Path:
    """Write label maps, the label table and meshes of ``anatomy`` into ``out_dir``.

    Existing files of the same names in ``out_dir`` are replaced only once the
    whole new set is complete.

    Parameters
    ----------
    anatomy : Anatomy
        On ``volume``'s grid.
    volume : Volume
        The image segmented; its grid is written into every map.
    out_dir : path-like
        The folder (created).
    meshes : bool
        Also write ``meshes/NAME.stl`` (LPS mm).
    anonymous : bool
        Write nothing that names the source: no ``source`` path in ``labels.json``,
        and the path replaced by "the image" in findings and notes (see the module
        docstring).  The files hold no patient identity, dates or UIDs in any case.
    progress, cancel
        Progress callback and cancellation token; a cancelled run leaves ``out_dir``
        as it was.

    Returns
    -------
    pathlib.Path
        ``out_dir``.
    """
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-partial-", dir=out.parent))
    try:
        table = write_label_files(anatomy, volume, tmp, anonymous=anonymous)
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
        (tmp / LABELS_FILE).write_text(json.dumps(table, indent=1))
        check(cancel)
        publish_folder_contents(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if progress:
        progress(1.0, "segmentation written")
    return out


def _source_hider(source: str):
    """``text → text`` with the path ``source`` (and its resolved form) said as "the image".

    Findings may quote the source path (``segment_mr`` names the image it found
    nothing in), and folder names often carry the patient's name or a UID.
    An empty ``source`` returns the text unchanged.
    """
    if not source:
        return lambda text: text
    import os

    paths = {source, os.path.abspath(source), os.path.realpath(source)}
    paths = sorted((p for p in paths if p), key=len, reverse=True)  # longest first

    def hide(text: str) -> str:
        for p in paths:
            text = text.replace(p, "the image")
        return text

    return hide


def _item_entry(s: Structure, hide=lambda text: text) -> dict:
    """The labels.json entry of one structure (everything needed to read it back)."""
    entry = {
        "value": int(s.label),
        "name": s.name,
        "kind": s.kind,
        "provenance": s.provenance,
        "provisional": bool(s.provisional),
        "notes": hide(s.notes),
    }
    if s.centroid_lps is not None:
        entry["centroid_lps"] = [float(x) for x in s.centroid_lps]
    if s.frame is not None:
        entry["frame"] = {
            k: [float(x) for x in getattr(s.frame, k)] for k in ("origin_lps", "si", "ap", "lr")
        }
    return entry


def read_segmentation(seg_dir: "Path | str", volume: Volume) -> Anatomy:
    """Read a folder written by :func:`write_segmentation` back as an Anatomy.

    Parameters
    ----------
    seg_dir : path-like
        The folder (``surgplan segment --out DIR``): ``labels.json``, the label
        maps it lists, and ``parts.nii.gz`` when listed (older folders without
        it read with an empty parts map).  Meshes are not read.
    volume : Volume
        The image the segmentation was made from; every map must lie on its
        grid (same size, and voxel centres within 0.01 mm).

    Returns
    -------
    Anatomy
        On ``volume``'s grid, with the items (names, provenance, notes,
        centroids, frames) and findings of ``labels.json``.

    Raises
    ------
    InputNotFoundError
        The folder, ``labels.json`` or a map file it lists does not exist.
    SegmentationFileError
        A file cannot be read, ``labels.json`` is malformed, a map is on
        another grid than ``volume`` or holds values the table does not describe.
    """
    d = Path(seg_dir)
    if not d.is_dir():
        raise InputNotFoundError(f"{d}: no such segmentation folder (give the --out folder of "
                                 "`surgplan segment`)")
    table_path = d / LABELS_FILE
    if not table_path.is_file():
        raise InputNotFoundError(f"{table_path}: missing; {d} is not a complete segmentation "
                                 "folder (run `surgplan segment` again)")
    try:
        table = json.loads(table_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SegmentationFileError(f"{table_path}: cannot be read as JSON ({exc}); "
                                    "run `surgplan segment` again") from exc
    files = table.get("files") if isinstance(table, dict) else None
    if not isinstance(files, dict):
        raise SegmentationFileError(f"{table_path}: has no \"files\" table; it was not written "
                                    "by `surgplan segment`")
    findings = table.get("findings", [])
    if not isinstance(findings, list) or not all(isinstance(f, str) for f in findings):
        raise SegmentationFileError(f"{table_path}: \"findings\" must be a list of sentences")
    maps = {}
    items = []
    for map_name in MAPS:
        file_name = MAP_FILES[map_name]
        entries = files.get(file_name)
        if entries is None:
            raise SegmentationFileError(f"{table_path}: does not list {file_name}; the folder is "
                                        "incomplete (run `surgplan segment` again)")
        arr = _read_map(d / file_name, volume, np.uint16)
        map_items = [_item_from_entry(e, map_name, table_path, file_name) for e in
                     _entries(entries, table_path, file_name)]
        _check_values(arr, {s.label for s in map_items}, d / file_name, table_path)
        maps[map_name] = arr
        items.extend(map_items)
    parts = None
    if PARTS_FILE in files:
        parts = _read_map(d / PARTS_FILE, volume, np.uint8)
        _check_values(parts, set(PART_NAMES), d / PARTS_FILE, table_path)
    paths = table.get("root_paths", {})  # older folders have none
    if not isinstance(paths, dict):
        raise SegmentationFileError(f"{table_path}: \"root_paths\" must map root names to "
                                    "lists of LPS points")
    try:
        return Anatomy(volume.array.shape, volume.ijk_to_lps, maps["vertebrae"],
                       maps["structures"], tuple(items), tuple(findings), parts, paths)
    except ValueError as exc:
        raise SegmentationFileError(
            f"{d}: the files do not form a valid segmentation: {exc}") from exc


def _entries(entries, table_path: Path, file_name: str) -> list:
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise SegmentationFileError(f"{table_path}: the entry of {file_name} must be a list of "
                                    "objects with value, name, kind …")
    return entries


def _vector(value, what: str, table_path: Path) -> np.ndarray:
    try:
        v = np.array(value, dtype=float)
    except (TypeError, ValueError):
        v = np.zeros(0)
    if v.shape != (3,) or not np.all(np.isfinite(v)):
        raise SegmentationFileError(f"{table_path}: {what} must be three finite numbers, "
                                    f"got {value!r}")
    return v


def _item_from_entry(e: dict, map_name: str, table_path: Path, file_name: str) -> Structure:
    where = f"{file_name} value {e.get('value')!r} ({e.get('name')!r})"
    try:
        value = e["value"]
        name = e["name"]
        kind = e["kind"]
    except KeyError as exc:
        raise SegmentationFileError(f"{table_path}: an entry of {file_name} lacks {exc}") from exc
    if not isinstance(value, int) or isinstance(value, bool) or not isinstance(name, str):
        raise SegmentationFileError(f"{table_path}: {where}: value must be an integer and name "
                                    "a string")
    centroid = None
    if e.get("centroid_lps") is not None:
        centroid = _vector(e["centroid_lps"], f"{where} centroid_lps", table_path)
    frame = None
    if e.get("frame") is not None:
        f = e["frame"]
        if not isinstance(f, dict):
            raise SegmentationFileError(f"{table_path}: {where} frame must be an object")
        frame = VertebraFrame(*(_vector(f.get(k), f"{where} frame {k}", table_path)
                                for k in ("origin_lps", "si", "ap", "lr")))
    try:
        return Structure(name, value, map_name, kind, e.get("provenance", "segmented"),
                         bool(e.get("provisional", False)), str(e.get("notes", "")),
                         centroid, frame)
    except ValueError as exc:
        raise SegmentationFileError(f"{table_path}: {where}: {exc}") from exc


def _read_map(path: Path, volume: Volume, dtype) -> np.ndarray:
    """A label map file as an array on ``volume``'s grid, checked."""
    import SimpleITK as sitk

    if not path.is_file():
        raise InputNotFoundError(f"{path}: missing; labels.json lists it (run `surgplan segment` "
                                 "again)")
    try:
        _check_gzip_complete(path)
        img = sitk.ReadImage(str(path))
    except (RuntimeError, OSError, EOFError) as exc:
        last = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown error"
        raise SegmentationFileError(f"{path}: cannot be read as a label map ({last}); the file "
                                    "may be truncated: run `surgplan segment` again") from exc
    if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1:
        raise SegmentationFileError(f"{path}: is not a 3D single-value label map")
    if tuple(img.GetSize()) != tuple(volume.shape_ijk):
        raise SegmentationFileError(
            f"{path}: has {img.GetSize()} voxels but the image has {tuple(volume.shape_ijk)}: "
            "it belongs to another image; segment this one or open the image it was made from")
    from surgplan.imaging.volume import affine_from_sitk

    ni, nj, nk = volume.shape_ijk
    corners = np.array([[i, j, k, 1.0] for i in (0, ni - 1) for j in (0, nj - 1)
                        for k in (0, nk - 1)]).T
    off = np.abs(affine_from_sitk(img) @ corners - np.asarray(volume.ijk_to_lps) @ corners).max()
    if off > _GRID_TOL_MM:
        raise SegmentationFileError(
            f"{path}: lies {off:.2f} mm away from the image's grid: it belongs to another image "
            "(or the image was resampled); segment this one or open the image it was made from")
    arr = sitk.GetArrayFromImage(img)
    if arr.dtype.kind not in "iu" or (arr.size and (arr.min() < 0
                                                    or arr.max() > np.iinfo(dtype).max)):
        raise SegmentationFileError(f"{path}: holds {arr.dtype} values outside 0…"
                                    f"{np.iinfo(dtype).max}; it is not a SurgPlan label map")
    return arr.astype(dtype, copy=False)


def _check_gzip_complete(path: Path) -> None:
    """Read a ``.gz`` file to its end so that truncation raises.

    ITK's NIfTI reader accepts a truncated ``.nii.gz`` silently and fills the
    rest with whatever it has (seen with SimpleITK 2.x), so a half-copied label
    map would read as a plausible but wrong one.  gzip's length and CRC
    trailer catch that.
    """
    if path.suffix != ".gz":
        return
    import gzip

    with gzip.open(path, "rb") as fh:
        while fh.read(1 << 22):
            pass


def _check_values(arr: np.ndarray, known: set, path: Path, table_path: Path) -> None:
    extra = sorted(set(np.unique(arr).tolist()) - set(known) - {0})
    if extra:
        raise SegmentationFileError(f"{path}: holds label values {extra[:10]} that "
                                    f"{table_path.name} does not describe; the files are from "
                                    "different runs")
