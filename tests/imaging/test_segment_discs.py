"""Disc masks between the endplates (``discs.label_discs``) and their edges at the
input's resolution (``discs.refine_discs_on_input``), on a synthetic motion segment:
two vertebral bodies with their cortex, the disc between them and a psoas of the
same density touching the disc's side."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from surgplan.imaging.segment.discs import DiscPlane, label_discs, refine_discs_on_input
from surgplan.imaging.segment.grid import WorkGrid
from surgplan.imaging.segment.vertebrae import Segment

#: Body (and disc) section: half-axes left-right and antero-posterior (mm).
HALF_LR_MM, HALF_AP_MM = 20.0, 15.0
#: The disc spans −5…+5 mm along S, the bodies 25 mm on either side.
DISC_HALF_MM, BODY_MM = 5.0, 25.0


def _motion_segment(spacing_mm: float, gas: bool = False, notch_mm: float = 0.0,
                    fleck: bool = False):
    """(hu, grid, disc truth, vertebra labels, psoas mask) on an LPS grid of ``spacing_mm``.

    ``notch_mm``: within that height of the disc the bodies' rims are set back by
    3 mm, with soft tissue in the notch (a worn or irregular endplate rim).
    """
    grid = WorkGrid.covering(np.array([-45.0, -30.0, -30.0]), np.array([45.0, 35.0, 30.0]),
                             spacing_mm)
    zyx = np.indices(grid.shape).reshape(3, -1).T
    p = grid.index_to_lps(zyx).reshape(grid.shape + (3,))
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    ell = (x / HALF_LR_MM) ** 2 + (y / HALF_AP_MM) ** 2
    section = ell <= 1.0
    cancellous = ((x / (HALF_LR_MM - 1.5)) ** 2 + (y / (HALF_AP_MM - 1.5)) ** 2) <= 1.0
    lower = section & (z < -DISC_HALF_MM) & (z >= -DISC_HALF_MM - BODY_MM)
    upper = section & (z > DISC_HALF_MM) & (z <= DISC_HALF_MM + BODY_MM)
    if notch_mm > 0:
        shrink = np.where(np.abs(z) - DISC_HALF_MM < notch_mm, 3.0, 0.0)
        inside = ((x / (HALF_LR_MM - shrink)) ** 2 + (y / (HALF_AP_MM - shrink)) ** 2) <= 1.0
        notch = (lower | upper) & ~inside
        lower &= inside
        upper &= inside
    disc = section & (np.abs(z) <= DISC_HALF_MM)
    # psoas beside the disc and the bodies, touching the disc's left side, as dense
    psoas = ((x - 29.0) / 9.0) ** 2 + (y / 10.0) ** 2 <= 1.0
    psoas &= ~section
    hu = np.full(grid.shape, -100.0, np.float32)  # fat
    hu[psoas] = 60.0
    if notch_mm > 0:
        hu[notch] = 60.0
    hu[disc] = 80.0
    hu[disc & (ell < 0.4)] = 68.0  # nucleus
    bone = lower | upper
    hu[bone] = 700.0  # cortex
    inner_lo = cancellous & (z < -DISC_HALF_MM - 1.0) & (z >= -DISC_HALF_MM - BODY_MM + 1.0)
    inner_up = cancellous & (z > DISC_HALF_MM + 1.0) & (z <= DISC_HALF_MM + BODY_MM - 1.0)
    hu[inner_lo | inner_up] = 200.0
    if gas:
        hu[disc & (ell < 0.15) & (np.abs(z) < 2.0)] = -500.0  # vacuum phenomenon
    if fleck:
        hu[disc & (ell < 0.05) & (np.abs(z) < 2.0)] = 400.0  # calcified nucleus
    hu = ndi.gaussian_filter(hu, 0.6 / spacing_mm)  # the scanner's blur
    vert = np.zeros(grid.shape, np.uint8)
    vert[lower] = 1
    vert[upper] = 2
    return hu, grid, disc, vert, psoas


def _segments():
    plane = DiscPlane(np.zeros(3), np.array([0.0, 0.0, 1.0]), 30.0, 60.0, 120.0, 10.0, 75.0)
    axes = dict(t=np.array([0.0, 0.0, 1.0]), u=np.array([1.0, 0.0, 0.0]),
                v=np.array([0.0, 1.0, 0.0]), canal_offset_mm=22.0)
    lower = Segment(None, plane, np.array([0.0, 0.0, -17.5]), **axes)
    upper = Segment(plane, None, np.array([0.0, 0.0, 17.5]), **axes)
    return [lower, upper]


def _dice(a, b):
    return 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


@pytest.fixture(scope="module")
def segment_1p5():
    return _motion_segment(1.5)


def test_disc_fills_the_space_between_the_endplates(segment_1p5):
    hu, grid, disc, vert, psoas = segment_1p5
    out = label_discs(hu, grid, _segments(), vert)
    assert set(out) == {1}
    m = out[1]
    assert _dice(m, disc) >= 0.85
    # nothing of it in the bodies, and the middle of the disc all there
    assert not np.any(m & (vert > 0))
    core = ndi.binary_erosion(disc, iterations=2)
    assert np.count_nonzero(m & core) >= 0.98 * np.count_nonzero(core)


def test_disc_stops_at_the_endplates_rim_not_in_the_psoas(segment_1p5):
    """The psoas beside the disc reads as the annulus; the endplates bound the disc."""
    hu, grid, disc, vert, psoas = segment_1p5
    m = label_discs(hu, grid, _segments(), vert)[1]
    # at most the one cell of annulus beyond the endplates' rim, and never above
    # or below the disc's own height along the bodies' sides
    beyond = ndi.distance_transform_edt(~disc, sampling=grid.spacing_mm)
    assert beyond[m].max() <= 2.0 * grid.spacing_mm
    zyx = np.argwhere(m)
    z = grid.index_to_lps(zyx)[:, 2]
    assert z.min() >= -DISC_HALF_MM - grid.spacing_mm and z.max() <= DISC_HALF_MM + grid.spacing_mm
    level = np.abs(grid.index_to_lps(np.indices(grid.shape).reshape(3, -1).T)[:, 2])
    beside = psoas & (level <= DISC_HALF_MM).reshape(grid.shape)
    assert np.count_nonzero(m & psoas) <= 0.1 * np.count_nonzero(beside)


def test_disc_does_not_run_up_a_notched_rim():
    """Where the endplate's rim is set back, a cell at the rim sees the body's wall
    millimetres beyond the endplate; the disc stays near its own height there."""
    hu, grid, disc, vert, _ = _motion_segment(1.5, notch_mm=6.0)
    m = label_discs(hu, grid, _segments(), vert)[1]
    assert _dice(m, disc) >= 0.85
    z = grid.index_to_lps(np.argwhere(m))[:, 2]
    # the rim's slack (2 mm) and one voxel, not the 6 mm of the notch
    assert np.abs(z).max() <= DISC_HALF_MM + 2.0 + grid.spacing_mm


def test_vacuum_gas_in_a_degenerate_disc_stays_disc():
    hu, grid, disc, vert, _ = _motion_segment(1.5, gas=True)
    m = label_discs(hu, grid, _segments(), vert)[1]
    gas = disc & (hu < -200.0)
    assert gas.any()
    assert np.count_nonzero(m & gas) >= 0.9 * np.count_nonzero(gas)


def test_calcified_fleck_inside_a_disc_stays_disc():
    hu, grid, disc, vert, _ = _motion_segment(1.5, fleck=True)
    m = label_discs(hu, grid, _segments(), vert)[1]
    fleck = disc & (hu > 250.0)
    assert fleck.any()
    assert np.all(m[fleck])


def test_no_disc_without_a_body_on_both_sides(segment_1p5):
    hu, grid, _, vert, _ = segment_1p5
    only_lower = np.where(vert == 1, 1, 0).astype(np.uint8)
    assert label_discs(hu, grid, _segments(), only_lower) == {}


def test_edges_against_the_endplates_settled_at_a_finer_input():
    """A disc brought from a 1.5 mm grid onto a 0.75 mm input gains its last
    voxels before the cortex, and does not grow into the psoas."""
    hu, grid, disc, vert, psoas = _motion_segment(0.75)
    # the staircase of the working grid: one input voxel short at each endplate
    coarse = ndi.binary_erosion(disc, structure=np.ones((3, 1, 1), bool))
    structures = np.where(coarse, 3, 0).astype(np.uint16)
    structures[psoas] = 9  # another structure
    before = _dice(structures == 3, disc)
    out = refine_discs_on_input(structures, [3], hu, (0.75, 0.75, 0.75), vert, 1.5)
    after = _dice(out == 3, disc)
    assert after > before + 0.03
    assert after >= 0.95
    assert np.array_equal(out == 9, structures == 9)
    assert not np.any((out == 3) & (vert > 0))
    # at the input's own resolution nothing changes
    same = refine_discs_on_input(structures, [3], hu, (1.5, 1.5, 1.5), vert, 1.5)
    assert same is structures
