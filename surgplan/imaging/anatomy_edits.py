"""User edits of an Anatomy: paint, erase, merge and split vertebrae.

Each function returns a *new* :class:`~surgplan.imaging.anatomy.Anatomy` (the
input is untouched, so the GUI's undo history can keep it) whose edited
structures carry ``provenance="edited"`` and a note saying what was done; the
risk engine then works on the edited anatomy like on any other.  Positions are
LPS millimetres; the label maps stay on the volume grid.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from surgplan.imaging.anatomy import Anatomy, Structure
from surgplan.imaging.structures import VERTEBRA_ORDER, is_vertebra


def _ordered(items) -> tuple:
    """Vertebrae first, cranial → caudal, then the other structures in their order."""
    verts = sorted((s for s in items if s.map == "vertebrae"),
                   key=lambda s: VERTEBRA_ORDER.index(s.name) if s.name in VERTEBRA_ORDER else 99)
    return tuple(verts) + tuple(s for s in items if s.map != "vertebrae")


def _centroid(anatomy: Anatomy, label_map: np.ndarray, label: int) -> Optional[np.ndarray]:
    k, j, i = np.nonzero(label_map == label)
    if k.size == 0:
        return None
    ijk = np.array([i.mean(), j.mean(), k.mean()])
    return anatomy.ijk_to_lps[:3, :3] @ ijk + anatomy.ijk_to_lps[:3, 3]


def _edited(s: Structure, note: str, centroid) -> Structure:
    notes = (s.notes + "; " if s.notes and s.provenance == "edited" else "") + note
    return dataclasses.replace(s, provenance="edited", notes=notes, centroid_lps=centroid)


def _rebuild(anatomy: Anatomy, maps: dict, items, finding: str, parts=None) -> Anatomy:
    return Anatomy(
        anatomy.shape, anatomy.ijk_to_lps,
        maps.get("vertebrae", anatomy.vertebrae), maps.get("structures", anatomy.structures),
        _ordered(items), anatomy.findings + (finding,),
        anatomy.parts if parts is None else parts,
        # a root's centre line is a model, not drawn from the labels an edit changes
        root_paths={n: p for n, p in anatomy.root_paths.items() if n in {i.name for i in items}},
    )


def brush_mask(anatomy: Anatomy, centre_lps, radius_mm: float, *,
               normal_lps=None, thickness_mm: Optional[float] = None):
    """Voxels of a brush: a ball, or a disc in the plane with normal ``normal_lps``.

    Returns
    -------
    (slices, mask)
        The index-space sub-block ``(slice_k, slice_j, slice_i)`` and the boolean
        mask inside it; ``None`` when the brush lies outside the grid.
    """
    c = np.asarray(centre_lps, float).reshape(3)
    inv = np.linalg.inv(anatomy.ijk_to_lps)
    c_ijk = inv[:3, :3] @ c + inv[:3, 3]
    sp = anatomy.ijk_spacing_mm
    half = np.ceil(radius_mm / sp).astype(int) + 1
    lo = np.maximum(np.floor(c_ijk).astype(int) - half, 0)
    ni, nj, nk = anatomy.shape[2], anatomy.shape[1], anatomy.shape[0]
    hi = np.minimum(np.floor(c_ijk).astype(int) + half + 1, [ni, nj, nk])
    if np.any(hi <= lo):
        return None
    ii, jj, kk = np.meshgrid(np.arange(lo[0], hi[0]), np.arange(lo[1], hi[1]),
                             np.arange(lo[2], hi[2]), indexing="ij")
    ijk = np.stack([ii, jj, kk], axis=-1).astype(float)
    lps = ijk @ anatomy.ijk_to_lps[:3, :3].T + anatomy.ijk_to_lps[:3, 3]
    rel = lps - c
    if normal_lps is None:
        inside = np.einsum("...i,...i->...", rel, rel) <= radius_mm**2
    else:
        n = np.asarray(normal_lps, float)
        n = n / np.linalg.norm(n)
        along = rel @ n
        in_plane = rel - along[..., None] * n
        # One voxel thick by default: the slice the user sees, no more.
        t = thickness_mm if thickness_mm is not None else float(np.abs(anatomy.ijk_to_lps[:3, :3].T @ n).max())
        inside = (np.einsum("...i,...i->...", in_plane, in_plane) <= radius_mm**2) & (
            np.abs(along) <= t / 2.0 + 1e-6)
    mask = np.transpose(inside, (2, 1, 0))  # (i, j, k) → (k, j, i)
    sl = (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0]))
    return sl, mask


def paint(anatomy: Anatomy, name: str, centre_lps, radius_mm: float, *, erase: bool = False,
          normal_lps=None, thickness_mm: Optional[float] = None) -> Anatomy:
    """Add (or with ``erase`` remove) one brush of voxels to structure ``name``.

    See :func:`paint_stroke`, of which this is the one-dab case.
    """
    return paint_stroke(anatomy, name, [centre_lps], radius_mm, erase=erase,
                        normal_lps=normal_lps, thickness_mm=thickness_mm)


def paint_stroke(anatomy: Anatomy, name: str, centres_lps, radius_mm: float, *,
                 erase: bool = False, normal_lps=None,
                 thickness_mm: Optional[float] = None) -> Anatomy:
    """Add (or with ``erase`` remove) the brushes at ``centres_lps`` to structure ``name``.

    A whole mouse stroke is one edit: the label maps are copied once, whatever
    the number of dabs.

    Painting a vertebra takes the voxels from any other vertebra (one label per
    voxel); painting another structure overwrites the ``structures`` map there.
    Painted and erased voxels lose their vertebral part code (the parts are not
    recomputed).  Returns ``anatomy`` itself when nothing changes.

    Raises
    ------
    KeyError
        ``name`` is not in the anatomy.
    ValueError
        ``radius_mm`` is not positive.
    """
    if not radius_mm > 0:
        raise ValueError(f"the brush radius must be positive, got {radius_mm} mm")
    s = anatomy.structure(name)
    src = getattr(anatomy, s.map)
    value = 0 if erase else s.label
    new_map = None
    parts = None
    count = 0
    touched = {s.label}
    for centre in np.asarray(centres_lps, float).reshape(-1, 3):
        brush = brush_mask(anatomy, centre, radius_mm, normal_lps=normal_lps,
                           thickness_mm=thickness_mm)
        if brush is None:
            continue
        sl, m = brush
        block = (new_map if new_map is not None else src)[sl]
        change = m & ((block == s.label) if erase else (block != s.label))
        if not change.any():
            continue
        if new_map is None:  # copy on the first real change only
            new_map = np.array(src)
            parts = np.array(anatomy.parts)
            block = new_map[sl]
        touched |= set(np.unique(block[change]).tolist()) - {0}
        block[change] = value
        parts[sl][change] = 0
        count += int(change.sum())
    if new_map is None:
        return anatomy
    note = f"{'erased' if erase else 'painted'} {count} voxels by hand"
    items = []
    for it in anatomy.items:
        if it.map == s.map and it.label in touched:
            it = _edited(it, note if it.name == name else f"lost {count} voxels to {name}",
                         _centroid(anatomy, new_map, it.label))
        items.append(it)
    return _rebuild(anatomy, {s.map: new_map}, items,
                    f"{name}: {note} (edited by the user)", parts)


def merge(anatomy: Anatomy, keep: str, absorb: str) -> Anatomy:
    """Join vertebra ``absorb`` into ``keep`` (an over-split vertebra made whole).

    Raises
    ------
    KeyError
        Either name is not in the anatomy.
    ValueError
        They are the same, or not both vertebrae.
    """
    a, b = anatomy.structure(keep), anatomy.structure(absorb)
    if keep == absorb:
        raise ValueError(f"cannot merge {keep} with itself")
    if a.map != "vertebrae" or b.map != "vertebrae":
        raise ValueError(f"only vertebrae can be merged ({keep}: {a.kind}, {absorb}: {b.kind})")
    new_map = np.array(anatomy.vertebrae)
    new_map[new_map == b.label] = a.label
    note = f"merged with {absorb} by the user"
    items = [_edited(it, note, _centroid(anatomy, new_map, a.label)) if it.name == keep else it
             for it in anatomy.items if it.name != absorb]
    return _rebuild(anatomy, {"vertebrae": new_map}, items, f"{absorb} merged into {keep} by the user")


def split(anatomy: Anatomy, name: str, point_lps, normal_lps, new_name: str) -> Anatomy:
    """Cut vertebra ``name`` by a plane; the part on the ``normal_lps`` side becomes ``new_name``.

    Use it where two vertebrae were segmented as one: the plane goes through the
    disc between them (e.g. the crosshair on a sagittal slice, normal superior).

    Raises
    ------
    KeyError
        ``name`` is not in the anatomy.
    ValueError
        ``name`` is not a vertebra, ``new_name`` is not a free vertebra name,
        or the plane leaves one side empty.
    """
    s = anatomy.structure(name)
    if s.map != "vertebrae":
        raise ValueError(f"{name} is not a vertebra; only vertebrae can be split")
    if not is_vertebra(new_name):
        raise ValueError(f"{new_name!r} is not a vertebra name (T10–T12, L1–L6, S1)")
    if new_name in anatomy.names:
        raise ValueError(f"{new_name!r} is already used; rename that vertebra first")
    n = np.asarray(normal_lps, float)
    if not np.linalg.norm(n) > 0:
        raise ValueError("the split plane needs a non-zero normal")
    n = n / np.linalg.norm(n)
    k, j, i = np.nonzero(anatomy.vertebrae == s.label)
    lps = np.stack([i, j, k], axis=1).astype(float) @ anatomy.ijk_to_lps[:3, :3].T + anatomy.ijk_to_lps[:3, 3]
    side = (lps - np.asarray(point_lps, float)) @ n > 0
    if side.all() or not side.any():
        raise ValueError(f"the plane does not cut {name}: every voxel is on one side; "
                         "put the crosshair in the gap between the two parts")
    new_label = int(max([it.label for it in anatomy.items if it.map == "vertebrae"] + [0])) + 1
    new_map = np.array(anatomy.vertebrae)
    new_map[k[side], j[side], i[side]] = new_label
    note = f"split from {name} by the user"
    items = []
    for it in anatomy.items:
        if it.name == name:
            it = _edited(it, f"split by the user ({new_name} cut off)",
                         _centroid(anatomy, new_map, s.label))
        items.append(it)
    items.append(Structure(new_name, new_label, "vertebrae", "vertebra", provenance="edited",
                           notes=note, centroid_lps=_centroid(anatomy, new_map, new_label)))
    return _rebuild(anatomy, {"vertebrae": new_map}, items, f"{name} split into {name} and {new_name}")
