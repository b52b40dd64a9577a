"""Volumes and label maps as VTK images, and the lookup tables that colour them.

VTK's support for an image's direction matrix differs between filters, so the
images built here live in *voxel-index space* (origin 0, spacing 1, identity
direction: VTK point ``(x, y, z)`` is voxel ``(i, j, k)``); whoever reslices them
composes the volume's ``lps_to_ijk`` into the reslice transform.  This keeps
oblique and left-handed grids exact, as :mod:`surgplan.imaging.meshes` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Sequence, Tuple

import numpy as np

from surgplan.imaging.structures import colour_of

#: Window/level presets (window, level) in HU, as radiology viewers name them.
WINDOW_PRESETS_HU: Dict[str, Tuple[float, float]] = {
    "bone": (2000.0, 400.0),
    "spine": (1200.0, 250.0),
    "soft tissue": (400.0, 40.0),
}


def index_space_image(array: np.ndarray):
    """A ``vtkImageData`` sharing ``array[k, j, i]``'s memory, in voxel-index space.

    Parameters
    ----------
    array : numpy.ndarray
        3D array in the Volume layout ``(nk, nj, ni)``; made contiguous (copied)
        only when it is not already.

    Returns
    -------
    vtkImageData
        Dimensions ``(ni, nj, nk)``, origin 0, spacing 1.  The numpy array is
        kept alive on the returned object (attribute ``_numpy_ref``).
    """
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonDataModel import vtkImageData

    a = np.ascontiguousarray(array)
    if a.ndim != 3:
        raise ValueError(f"expected a 3D array (nk, nj, ni), got shape {a.shape}")
    nk, nj, ni = a.shape
    img = vtkImageData()
    img.SetDimensions(ni, nj, nk)
    img.SetOrigin(0.0, 0.0, 0.0)
    img.SetSpacing(1.0, 1.0, 1.0)
    scalars = numpy_to_vtk(a.ravel(), deep=False)
    scalars.SetName("values")
    img.GetPointData().SetScalars(scalars)
    img._numpy_ref = a  # VTK does not own the buffer: keep numpy's alive with the image
    return img


@dataclass(frozen=True, eq=False)
class LabelDisplay:
    """The two label maps of an Anatomy merged into one displayable map.

    Attributes
    ----------
    array : numpy.ndarray
        uint16 on the anatomy's grid: 0 = nothing, ``n`` = ``names[n - 1]``.
    names : tuple of str
        Structure names in display order (the anatomy's items).
    """

    array: np.ndarray
    names: tuple

    def value_of(self, name: str) -> int:
        return self.names.index(name) + 1


def label_display(anatomy) -> LabelDisplay:
    """Merge an Anatomy's ``vertebrae`` and ``structures`` maps into one display map.

    Vertebrae win where both are labelled (a voxel of bone is shown as bone).
    Two table look-ups over the grid, so it costs about a second on a
    50-megavoxel CT, once per anatomy.
    """
    names = tuple(s.name for s in anatomy.items)
    out = np.zeros(anatomy.shape, np.uint16)
    for map_name in ("structures", "vertebrae"):
        items = [(n, s) for n, s in enumerate(anatomy.items, start=1) if s.map == map_name]
        if not items:
            continue
        src = getattr(anatomy, map_name)
        top = max(int(s.label) for _, s in items)
        lut = np.zeros(max(top, int(src.max())) + 1, np.uint16)
        for n, s in items:
            lut[int(s.label)] = n
        mapped = lut[src]
        np.copyto(out, mapped, where=mapped > 0)
    return LabelDisplay(out, names)


def label_lookup_table(
    names: Sequence[str],
    *,
    visible: Optional[Iterable[str]] = None,
    colours: Optional[Dict[str, Tuple[int, int, int]]] = None,
):
    """A ``vtkLookupTable`` for a :class:`LabelDisplay`: value ``n`` → colour of ``names[n-1]``.

    Parameters
    ----------
    names : sequence of str
        Display order, as in :attr:`LabelDisplay.names`.
    visible : iterable of str, optional
        Names to show; the others are fully transparent.  Default: all.
    colours : dict, optional
        Colour overrides (RGB 0–255) by name; default :func:`structures.colour_of`.
    """
    from vtkmodules.vtkCommonCore import vtkLookupTable

    shown = set(names if visible is None else visible)
    colours = colours or {}
    lut = vtkLookupTable()
    n = len(names) + 1
    lut.SetNumberOfTableValues(n)
    lut.SetTableRange(0, n - 1)
    lut.SetTableValue(0, 0.0, 0.0, 0.0, 0.0)
    for v, name in enumerate(names, start=1):
        r, g, b = colours.get(name) or colour_of(name)
        lut.SetTableValue(v, r / 255.0, g / 255.0, b / 255.0, 1.0 if name in shown else 0.0)
    lut.Build()
    return lut


def auto_window(array: np.ndarray, *, modality: str = "") -> Tuple[float, float]:
    """A window/level (width, centre) that shows the image's content.

    CT gets the ``spine`` preset (its numbers are calibrated).  MR and anything
    uncalibrated get the 1st–99.5th percentile of the non-background voxels, on a
    subsample so that it costs milliseconds.
    """
    if modality.upper() == "CT":
        return WINDOW_PRESETS_HU["spine"]
    a = np.asarray(array)
    step = max(1, int(round((a.size / 2_000_000) ** (1 / 3))))
    sample = a[::step, ::step, ::step].astype(np.float32).ravel()
    lo_all = float(sample.min())
    fg = sample[sample > lo_all]
    if fg.size == 0:
        return (1.0, lo_all)
    lo, hi = np.percentile(fg, [1.0, 99.5])
    width = max(float(hi - lo), 1.0)
    return (width, float(lo + width / 2.0))


def scalar_lookup_table(lo: float, hi: float, *, reverse: bool = False):
    """Green → yellow → red ``vtkLookupTable`` over ``[lo, hi]`` (risk colouring).

    Low values are green (safe), high values red; ``reverse`` swaps the ends
    (for a quantity where larger is safer, such as clearance in mm).
    """
    from vtkmodules.vtkCommonCore import vtkLookupTable

    n = 256
    t = np.linspace(0.0, 1.0, n)
    if reverse:
        t = t[::-1]
    # Green (0, 0.7, 0.2) → yellow (1, 0.85, 0) → red (0.85, 0.05, 0.05).
    stops = np.array([[0.0, 0.70, 0.20], [1.0, 0.85, 0.0], [0.85, 0.05, 0.05]])
    rgb = np.empty((n, 3))
    for c in range(3):
        rgb[:, c] = np.interp(t, [0.0, 0.5, 1.0], stops[:, c])
    lut = vtkLookupTable()
    lut.SetNumberOfTableValues(n)
    lut.SetTableRange(float(lo), float(hi) if hi > lo else float(lo) + 1.0)
    for i in range(n):
        lut.SetTableValue(i, rgb[i, 0], rgb[i, 1], rgb[i, 2], 1.0)
    lut.Build()
    return lut
