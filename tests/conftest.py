"""Shared fixtures: where the real scans are, and cheap synthetic inputs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The folder of real scans: $SURGPLAN_TEST_DATA or ../shared/data."""
    env = os.environ.get("SURGPLAN_TEST_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the real-data folder; skips the test with a reason when it is absent."""
    d = shared_data_dir()
    if not d.is_dir():
        pytest.skip(f"real scans not found at {d} (set SURGPLAN_TEST_DATA to their folder)")
    return d


@pytest.fixture(scope="session")
def small_phantom():
    """The coarse (1.6 mm) phantom shared by every test package (≈ 1.5 s, built once)."""
    from tests.imaging.phantom_fixtures import COARSE
    from surgplan.imaging.phantom import make_phantom

    return make_phantom(COARSE)


@pytest.fixture(scope="session")
def small_phantom_truth(small_phantom):
    """:func:`truth_anatomy` of :func:`small_phantom`: exact labels, parts and frames."""
    from surgplan.imaging.phantom_truth import truth_anatomy

    return truth_anatomy(small_phantom)
