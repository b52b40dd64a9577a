"""Small geometry helpers in patient LPS millimetres.

LPS as DICOM defines it: +x towards the patient's Left, +y Posterior,
+z Superior (head).  NIfTI and most research tools use RAS; the two differ by
negating x and y.
"""

from __future__ import annotations

import numpy as np

#: Multiply a RAS point (homogeneous) by this to get LPS, and vice versa.
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def ras_to_lps_affine(affine_ras: np.ndarray) -> np.ndarray:
    """Convert an index→RAS 4×4 affine to index→LPS."""
    return RAS_TO_LPS @ np.asarray(affine_ras, dtype=float)


def lps_to_ras_affine(affine_lps: np.ndarray) -> np.ndarray:
    """Convert an index→LPS 4×4 affine to index→RAS (NIfTI convention)."""
    return RAS_TO_LPS @ np.asarray(affine_lps, dtype=float)


def apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4×4 affine to points of shape (..., 3); returns the same shape."""
    pts = np.asarray(points, dtype=float)
    return pts @ affine[:3, :3].T + affine[:3, 3]


def unit(vector: np.ndarray) -> np.ndarray:
    """Return ``vector`` scaled to length 1; raises ValueError for a zero vector."""
    v = np.asarray(vector, dtype=float)
    n = float(np.linalg.norm(v))
    if n == 0.0 or not np.isfinite(n):
        raise ValueError(f"cannot normalise the vector {v.tolist()}: its length is {n}")
    return v / n


def angle_between_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle in degrees between two vectors, in [0, 180]."""
    c = float(np.clip(np.dot(unit(a), unit(b)), -1.0, 1.0))
    return float(np.degrees(np.arccos(c)))


def orientation_letters(direction: np.ndarray) -> str:
    """Dominant LPS letter of a direction, e.g. ``'L'`` for (0.9, 0.1, 0)."""
    v = np.asarray(direction, dtype=float)
    axis = int(np.argmax(np.abs(v)))
    positive = "LPS"[axis]
    negative = "RAI"[axis]
    return positive if v[axis] >= 0 else negative
