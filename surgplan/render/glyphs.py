"""Small geometric values the scenes draw: tool trajectories and their handles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

#: Default colours (RGB 0–255).
TOOL_RGB = (80, 220, 255)
SELECTED_TOOL_RGB = (255, 255, 255)
ENTRY_RGB = (60, 230, 90)
TARGET_RGB = (255, 120, 40)


@dataclass(frozen=True, eq=False)
class ToolGlyph:
    """A straight tool between entry and target, drawn as a cylinder of its real size.

    Attributes
    ----------
    entry_lps, target_lps : numpy.ndarray
        End points in LPS mm (skin entry, tip).
    diameter_mm : float
        Outer diameter of the tool.
    colour : tuple of int
        RGB 0–255.
    label : str
        Shown beside the tool in 3D (e.g. ``"T1 teld L4-L5 left"``).
    selected : bool
        The trajectory being edited: drawn brighter, with handles.
    """

    entry_lps: np.ndarray
    target_lps: np.ndarray
    diameter_mm: float
    colour: Tuple[int, int, int] = TOOL_RGB
    label: str = ""
    selected: bool = False

    def __post_init__(self) -> None:
        e = np.asarray(self.entry_lps, float).reshape(3)
        t = np.asarray(self.target_lps, float).reshape(3)
        if not (np.all(np.isfinite(e)) and np.all(np.isfinite(t))):
            raise ValueError("entry and target must be finite LPS points (mm)")
        if not self.diameter_mm > 0:
            raise ValueError(f"diameter_mm must be positive, got {self.diameter_mm}")
        object.__setattr__(self, "entry_lps", e)
        object.__setattr__(self, "target_lps", t)

    @property
    def length_mm(self) -> float:
        return float(np.linalg.norm(self.target_lps - self.entry_lps))


def rgb01(rgb) -> tuple:
    """RGB 0–255 → 0–1 floats for VTK."""
    return tuple(float(c) / 255.0 for c in rgb)
