"""WorkGrid.covering: the working grids reach every slice of the input.

A grid that stopped at the last voxel centre before the box's far face left the
input's last slice more than half a working voxel outside it; mapping the labels
back by nearest neighbour then gave that slice no labels at all.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from surgplan.imaging.segment.grid import WorkGrid, volume_box_lps


@pytest.mark.parametrize("extent_mm, spacing_mm", [
    (94.4, 1.5),      # 60 slices of 1.6 mm on the 1.5 mm working grid: the reported crop
    (59.0, 2.0),      # half a voxel short under flooring
    (3 * 0.1, 0.1),   # an exact multiple in floating point noise (0.30000000000000004)
    (0.7 * 3, 0.7),
    (100.0, 0.8),
])
def test_covering_reaches_the_far_face_without_an_extra_voxel(extent_mm, spacing_mm):
    lo = np.array([-12.3, 40.0, -300.7])
    hi = lo + extent_mm
    g = WorkGrid.covering(lo, hi, spacing_mm)
    last = g.index_to_lps(np.array([g.shape[0] - 1, g.shape[1] - 1, g.shape[2] - 1]))
    assert np.allclose(g.origin_lps, lo)
    # the last centre is at or past hi, but by less than one voxel (no extra slice)
    assert np.all(last >= hi - 1e-6 * spacing_mm), (last, hi)
    assert np.all(last < hi + spacing_mm - 1e-9), (last, hi)


def test_covering_a_flat_box_is_one_voxel_thick():
    g = WorkGrid.covering(np.zeros(3), np.array([10.0, 10.0, 0.0]), 1.0)
    assert g.shape == (1, 11, 11)


@pytest.mark.parametrize("n_slices, slice_mm, work_mm", [
    (60, 1.6, 1.5), (60, 1.6, 2.0), (37, 1.0, 1.5), (41, 3.0, 0.8)])
def test_labels_mapped_back_cover_every_input_slice(n_slices, slice_mm, work_mm):
    """Labels painted over the whole working grid land on every slice of the input."""
    image = sitk.Image([24, 20, n_slices], sitk.sitkInt16)
    image.SetSpacing([0.9, 0.9, slice_mm])
    image.SetOrigin([-10.0, 5.0, -120.0])
    lo, hi = volume_box_lps(image)
    grid = WorkGrid.covering(lo, hi, work_mm)
    back = grid.labels_onto(np.ones(grid.shape, np.uint16), image)
    assert back.shape == (n_slices, 20, 24)
    empty = [k for k in range(n_slices) if not back[k].all()]
    assert not empty, f"input slices without labels: {empty}"


def test_segmenting_a_60_slice_crop_labels_its_last_slice(small_phantom, small_phantom_truth):
    """The reported case: a 60-slice crop of the phantom whose last slice cuts a vertebra."""
    from surgplan.imaging.segment import segment_ct

    vol = small_phantom.ct
    truth = np.asarray(small_phantom_truth.vertebrae)
    per_slice = (truth > 0).sum(axis=(1, 2))
    # end the crop in the slice cutting the most vertebral bone, so it must be labelled
    k_end = int(np.argmax(per_slice[60:])) + 60
    k0 = k_end - 59
    shift = np.eye(4)
    shift[2, 3] = k0
    crop = vol.replace(array=np.asarray(vol.array)[k0:k_end + 1],
                       ijk_to_lps=np.asarray(vol.ijk_to_lps) @ shift)
    assert crop.array.shape[0] == 60
    a = segment_ct(crop)
    assert a.vertebra_names, a.findings
    seg_last = np.asarray(a.vertebrae)[-1] > 0
    true_last = truth[k_end] > 0
    # most of the bone that the last slice cuts is labelled, as in the slice before it
    assert (seg_last & true_last).sum() >= 0.5 * true_last.sum(), (
        (seg_last & true_last).sum(), true_last.sum())
