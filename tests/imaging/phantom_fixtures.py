"""Session-scoped phantoms for the tests (coarse grids so the suite stays fast).

Import the fixtures into a test module (``from tests.imaging.phantom_fixtures
import phantom_case``) and pytest picks them up.
"""

from __future__ import annotations

import numpy as np
import pytest

from surgplan.imaging.phantom import PhantomCase, PhantomSpec, make_phantom

#: 1.6 mm isotropic: ≈ 1.5 s to build, fine enough to measure pedicles and discs.
COARSE = PhantomSpec(spacing_mm=(1.6, 1.6, 1.6), noise_hu=15.0, seed=7)


@pytest.fixture(scope="session")
def phantom_case() -> PhantomCase:
    return make_phantom(COARSE)


@pytest.fixture(scope="session")
def phantom_six_lumbar() -> PhantomCase:
    return make_phantom(PhantomSpec(spacing_mm=(2.0, 2.0, 2.0), lumbar_count=6))


def local_points(case: PhantomCase, mask: np.ndarray, vertebra: str) -> np.ndarray:
    """Centres of the voxels in ``mask`` in a vertebra's local frame (u, v, w mm)."""
    k, j, i = np.nonzero(mask)
    lps = case.ct.index_to_lps(np.stack([i, j, k], axis=1).astype(float))
    lm = case.landmarks.vertebrae[vertebra]
    return (lps - lm.centroid_lps) @ lm.frame.T


def extent(values: np.ndarray, spacing: float) -> float:
    """Length (mm) covered by voxel centres ``values`` (one voxel width added)."""
    return float(values.max() - values.min() + spacing)
