"""The Anatomy: label maps on a volume's grid plus named, traceable structures.

Two label maps share the grid of the :class:`~surgplan.imaging.volume.Volume`
they were made from (``array[k, j, i]``; voxel centres at ``ijk_to_lps @ (i, j, k, 1)``
in LPS mm): ``vertebrae`` holds one integer per whole vertebra, ``structures``
everything else (discs, canal, dural sac, roots, vessels …), and ``parts`` the
vertebral sub-region of each vertebra voxel (codes in
:data:`surgplan.imaging.structures.PART_NAMES`: body, pedicles, articular
processes, lamina …; 0 where unassigned).  In ``structures`` each voxel holds one
label: where structures nest, the inner one wins (the dural sac and the roots
inside the spinal canal; the ``spinal canal`` label is what is left of the canal
around them, the epidural space).  Each label
value is described by a :class:`Structure` that says its shared name, how it was
obtained and whether its name is certain.  Anatomy is immutable: edits such as
:meth:`Anatomy.rename` return a new value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, Optional

import numpy as np

from surgplan.imaging.structures import PART_CODES, PART_NAMES, is_vertebra, kind_of

PROVENANCES = ("segmented", "modelled", "edited")
MAPS = ("vertebrae", "structures")


@dataclass(frozen=True)
class VertebraFrame:
    """A vertebra's local frame in LPS mm.

    Attributes
    ----------
    origin_lps : numpy.ndarray
        Centre of the vertebral body (mm).
    si : numpy.ndarray
        Unit vector perpendicular to the endplates, pointing superior.
    ap : numpy.ndarray
        Unit vector from the body through the canal (posterior), ⟂ ``si``.
    lr : numpy.ndarray
        Unit vector to the patient's left, ``ap × si``.
    """

    origin_lps: np.ndarray
    si: np.ndarray
    ap: np.ndarray
    lr: np.ndarray


@dataclass(frozen=True)
class Structure:
    """One labelled structure.

    Attributes
    ----------
    name : str
        Shared name (``L4``, ``disc L4-L5``, ``spinal canal`` …).
    label : int
        Its value in the label map named by ``map``.
    map : str
        ``"vertebrae"`` or ``"structures"``.
    kind : str
        ``structures.kind_of(name)``.
    provenance : str
        ``"segmented"`` (from the image), ``"modelled"`` (from anatomy) or
        ``"edited"`` (changed by the user; for a vertebra: its name).
    provisional : bool
        True when the name is not certain (transitional anatomy, anchor out of view).
    notes : str
        Why it is provisional or edited, in words.
    centroid_lps : numpy.ndarray or None
        Centroid of the label (mm), when computed.
    frame : VertebraFrame or None
        Local frame, for vertebrae where computed.
    """

    name: str
    label: int
    map: str
    kind: str
    provenance: str = "segmented"
    provisional: bool = False
    notes: str = ""
    centroid_lps: Optional[np.ndarray] = None
    frame: Optional[VertebraFrame] = None

    def __post_init__(self) -> None:
        if self.map not in MAPS:
            raise ValueError(f"map must be one of {MAPS}, got {self.map!r}")
        if self.provenance not in PROVENANCES:
            raise ValueError(f"provenance must be one of {PROVENANCES}, got {self.provenance!r}")
        if self.kind != kind_of(self.name):
            raise ValueError(f"{self.name!r} is a {kind_of(self.name)!r}, not a {self.kind!r}")
        if int(self.label) <= 0:
            raise ValueError(f"label values start at 1 (0 is background), got {self.label}")


def _frozen(a: np.ndarray) -> np.ndarray:
    v = np.asarray(a).view()
    v.flags.writeable = False
    return v


@dataclass(frozen=True, eq=False)
class Anatomy:
    """Segmentation of one volume: two label maps and their structures.

    Parameters
    ----------
    shape : tuple of int
        ``(nk, nj, ni)``, the volume's array shape; both maps have it.
    ijk_to_lps : numpy.ndarray
        The volume's 4×4 index→LPS (mm) affine.
    vertebrae : numpy.ndarray
        uint16 labels, one value per whole vertebra (0 = none).
    structures : numpy.ndarray
        uint16 labels of the other structures (0 = none).
    items : tuple of Structure
        What each non-zero label value means.
    findings : tuple of str
        What could and could not be found, and why, in sentences for the user.
    parts : numpy.ndarray, optional
        uint8 vertebral part code per voxel (``PART_NAMES``); zeros when the
        sub-regions were not computed.
    root_paths : mapping, optional
        ``nerve root name → (n, 3)`` centre line of that root in LPS mm, from the
        dura outward (n ≥ 2), where it is known (a modelled root's path; the
        phantom's true one); empty when not computed.
    """

    shape: tuple
    ijk_to_lps: np.ndarray
    vertebrae: np.ndarray
    structures: np.ndarray
    items: tuple = ()
    findings: tuple = field(default_factory=tuple)
    parts: Optional[np.ndarray] = None
    root_paths: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape)
        for nm in MAPS:
            arr = getattr(self, nm)
            if arr.shape != shape:
                raise ValueError(f"the {nm} map has shape {arr.shape}, expected {shape}")
        if self.parts is None:
            object.__setattr__(self, "parts", np.zeros(shape, np.uint8))
        if self.parts.shape != shape:
            raise ValueError(f"the parts map has shape {self.parts.shape}, expected {shape}")
        bad = set(np.unique(self.parts).tolist()) - set(PART_NAMES) - {0}
        if bad:
            raise ValueError(f"unknown part codes {sorted(bad)} in the parts map")
        names = [s.name for s in self.items]
        if len(set(names)) != len(names):
            raise ValueError(f"structure names must be unique, got {names}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "ijk_to_lps", _frozen(np.array(self.ijk_to_lps, float)))
        object.__setattr__(self, "vertebrae", _frozen(self.vertebrae))
        object.__setattr__(self, "structures", _frozen(self.structures))
        object.__setattr__(self, "parts", _frozen(self.parts))
        object.__setattr__(self, "items", tuple(self.items))
        object.__setattr__(self, "findings", tuple(self.findings))
        paths = {}
        for name, pts in dict(self.root_paths or {}).items():
            if kind_of(name) != "nerve root":
                raise ValueError(f"root_paths holds {name!r}, which is not a nerve root")
            a = np.array(pts, float)
            if a.ndim != 2 or a.shape[1] != 3 or len(a) < 2 or not np.all(np.isfinite(a)):
                raise ValueError(f"the path of {name!r} must be two or more finite LPS points "
                                 f"(n, 3), got shape {a.shape}")
            paths[str(name)] = _frozen(a)
        object.__setattr__(self, "root_paths", MappingProxyType(paths))

    @classmethod
    def empty(cls, shape: tuple, ijk_to_lps: np.ndarray, findings=()) -> "Anatomy":
        """An anatomy with nothing found, saying why in ``findings``."""
        z = np.zeros(shape, np.uint16)
        return cls(shape, ijk_to_lps, z, z.copy(), (), tuple(findings))

    # --- queries ----------------------------------------------------------------------
    @property
    def names(self) -> tuple:
        """Names of all structures, vertebrae first (cranial → caudal)."""
        return tuple(s.name for s in self.items)

    @property
    def vertebra_names(self) -> tuple:
        return tuple(s.name for s in self.items if s.map == "vertebrae")

    def structure(self, name: str) -> Structure:
        """The record of ``name``; KeyError names the structures that exist."""
        for s in self.items:
            if s.name == name:
                return s
        raise KeyError(f"no structure {name!r} in this anatomy; it has {list(self.names)}")

    def mask(self, name: str) -> np.ndarray:
        """Boolean mask (volume grid) of structure ``name``."""
        s = self.structure(name)
        return getattr(self, s.map) == s.label

    @property
    def has_parts(self) -> bool:
        """True when vertebral sub-regions were computed."""
        return bool(self.parts.any())

    def part_mask(self, part: str, vertebra: Optional[str] = None) -> np.ndarray:
        """Boolean mask of a vertebral part (``"pedicle left"`` …), of one vertebra or all.

        Raises
        ------
        KeyError
            ``part`` is not a part name, or ``vertebra`` is not in this anatomy.
        """
        if part not in PART_CODES:
            raise KeyError(f"{part!r} is not a vertebral part; parts are {list(PART_CODES)}")
        m = self.parts == PART_CODES[part]
        if vertebra is not None:
            m &= self.mask(vertebra)
        return m

    @property
    def ijk_spacing_mm(self) -> np.ndarray:
        """Voxel size along i, j, k (mm)."""
        return np.linalg.norm(self.ijk_to_lps[:3, :3], axis=0)

    def centroid_lps(self, name: str) -> Optional[np.ndarray]:
        """Centroid (LPS mm) of ``name`` when computed."""
        return self.structure(name).centroid_lps

    # --- edits --------------------------------------------------------------------------
    def rename(self, old: str, new: str, *, note: str = "") -> "Anatomy":
        """A new Anatomy with vertebra ``old`` called ``new``; the name is recorded as edited.

        For transitional anatomy (six lumbar vertebrae, sacralisation) the user
        decides.  Discs, neural foramina and exiting roots named after ``old``
        are renamed with it (and the roots' ``root_paths``).  The labels do not
        change.

        Raises
        ------
        KeyError
            ``old`` is not in this anatomy.
        ValueError
            ``new`` is not a vertebra name or is already used.
        """
        s = self.structure(old)
        if s.map != "vertebrae":
            raise ValueError(f"{old!r} is not a vertebra; only vertebrae can be renamed")
        if not is_vertebra(new):
            raise ValueError(f"{new!r} is not a vertebra name (T10–T12, L1–L6, S1)")
        if new != old and new in self.names:
            raise ValueError(f"{new!r} is already used; rename that vertebra first")
        why = note or f"renamed by the user from {old}"
        items = []
        for it in self.items:
            if it.name == old:
                it = dataclasses.replace(it, name=new, provenance="edited", provisional=False,
                                         notes=why)
            elif it.kind == "disc" and old in it.name.split(" ", 1)[1].split("-"):
                upper, lower = it.name.split(" ", 1)[1].split("-")
                upper = new if upper == old else upper
                lower = new if lower == old else lower
                it = dataclasses.replace(it, name=f"disc {upper}-{lower}", notes=why)
            elif it.kind in ("foramen", "nerve root"):
                renamed = _renamed_level(it.name, old, new)
                if renamed != it.name:
                    it = dataclasses.replace(it, name=renamed)
            items.append(it)
        paths = {_renamed_level(n, old, new): p for n, p in self.root_paths.items()}
        return dataclasses.replace(
            self, items=tuple(items),
            findings=self.findings + (f"{old} renamed {new} by the user",), root_paths=paths,
        )


def _renamed_level(name: str, old: str, new: str) -> str:
    """``foramen L4-L5 left`` / ``nerve root L5 left`` with vertebra ``old`` called ``new``."""
    words = name.split(" ")
    levels = words[-2].split("-")
    words[-2] = "-".join(new if lv == old else lv for lv in levels)
    return " ".join(words)
