"""Stack geometry: sorting, spacing, gaps, duplicates, tilt, and the resampled grid.

The synthetic slices hold a linear function of world position
(:func:`dicom_synth.ramp_hu`), which linear interpolation reproduces exactly: a
voxel's value must equal the function at the voxel's LPS centre wherever the
voxel lies inside the original stack.
"""

from __future__ import annotations

import numpy as np
import pytest

from surgplan.core.errors import GeometryError, OperationCancelled
from surgplan.core.progress import CancelToken
from surgplan.imaging.dicom.geometry import analyse_stack
from surgplan.imaging.dicom.index import index_files
from surgplan.imaging.dicom.reader import load_series
from tests.imaging import dicom_synth as syn


def load(paths):
    idx = index_files(paths)
    assert len(idx.series) == 1, idx
    return idx.series[0], load_series(idx.series[0])


def world_of_all_voxels(vol):
    nk, nj, ni = vol.array.shape
    k, j, i = np.mgrid[0:nk, 0:nj, 0:ni]
    return vol.index_to_lps(np.stack([i, j, k], axis=-1).astype(float))


def codes(vol):
    return [w.code for w in vol.warnings]


def test_regular_stack_is_not_resampled_and_values_sit_at_their_world_positions(tmp_path):
    series, vol = load(syn.write_stack(tmp_path, syn.axial_positions(7, step=1.5),
                                       shuffle=True, spacing=(0.8, 0.6), thickness=1.5))
    assert vol.array.dtype == np.int16 and vol.array.shape == (7, 24, 20)
    assert not series.geometry.resample and codes(vol) == []
    assert vol.spacing_mm == pytest.approx([0.6, 0.8, 1.5])
    # Stored values are the ramp rounded to integers: equal within rounding.
    assert np.max(np.abs(vol.array - syn.ramp_hu(world_of_all_voxels(vol)))) <= 0.5 + 1e-6
    assert vol.frame_of_reference_uid == "1.2.3.4.9"
    assert vol.metadata.patient_id == "SYN001"
    assert vol.source == str(tmp_path)


def test_tilted_stack_is_resampled_onto_the_slice_normal_without_shear(tmp_path):
    positions, orientation = syn.tilted_positions(8, step_z=2.0, tilt_deg=20.0)
    series, vol = load(syn.write_stack(tmp_path, positions, orientation=orientation))
    assert {"gantry-tilt", "resampled"} <= set(codes(vol))
    assert "irregular-spacing" not in codes(vol)
    tilt = next(w for w in vol.warnings if w.code == "gantry-tilt")
    assert "20.0°" in tilt.message
    assert series.geometry.tilt_deg == pytest.approx(20.0, abs=0.01)
    # Axes: row, column, and the true normal (not the table direction).
    r, c = np.array(orientation[:3]), np.array(orientation[3:])
    assert np.allclose(vol.direction, np.column_stack([r, c, np.cross(r, c)]), atol=1e-6)
    assert vol.spacing_mm[2] == pytest.approx(2.0 * np.cos(np.radians(20.0)), abs=1e-4)
    assert vol.array.dtype == np.int16
    # Inside the stack every voxel equals the ramp at its world position.
    inside = vol.array != -1024
    assert inside.mean() > 0.5
    expected = syn.ramp_hu(world_of_all_voxels(vol))
    assert np.max(np.abs(vol.array[inside] - expected[inside])) <= 1.0


def test_irregular_spacing_is_reported_and_resampled_onto_a_regular_grid(tmp_path):
    z = [0.0, 2.0, 4.0, 7.5, 9.5, 11.5]
    paths = syn.write_stack(tmp_path, [(-10, -12, v) for v in z])
    series, vol = load(paths)
    assert {"irregular-spacing", "resampled"} <= set(codes(vol))
    msg = next(w.message for w in vol.warnings if w.code == "irregular-spacing")
    assert "2.00 to 3.50 mm" in msg
    assert vol.spacing_mm[2] <= 2.0 + 1e-6
    assert vol.index_to_lps(np.array([0, 0, vol.array.shape[0] - 1.0]))[2] == pytest.approx(11.5)
    expected = syn.ramp_hu(world_of_all_voxels(vol))
    assert np.max(np.abs(vol.array - expected)) <= 1.0


def test_a_dropped_slice_is_reported_where_it_is_and_filled(tmp_path):
    z = [0, 2, 4, 8, 10, 12]
    series, vol = load(syn.write_stack(tmp_path, [(-10, -12, v) for v in z]))
    assert "missing-slice" in codes(vol) and "irregular-spacing" not in codes(vol)
    msg = next(w.message for w in vol.warnings if w.code == "missing-slice")
    assert "1 slice(s) missing" in msg and "IM0002.dcm" in msg and "IM0003.dcm" in msg
    assert vol.array.shape[0] == 7 and vol.spacing_mm[2] == pytest.approx(2.0)
    assert np.max(np.abs(vol.array - syn.ramp_hu(world_of_all_voxels(vol)))) <= 1.0


def test_duplicated_positions_are_dropped_and_reported(tmp_path):
    z = [0, 2, 2, 4, 6]
    series, vol = load(syn.write_stack(tmp_path, [(-10, -12, v) for v in z]))
    assert vol.array.shape[0] == 4
    msg = next(w.message for w in vol.warnings if w.code == "overlapping-slices")
    assert "dropped" in msg and "IM0002.dcm" in msg
    assert not series.geometry.resample


def test_thicker_than_step_is_reported_as_overlap_but_kept(tmp_path):
    series, vol = load(syn.write_stack(tmp_path, syn.axial_positions(4, step=2.0),
                                       thickness=3.0))
    msg = next(w.message for w in vol.warnings if w.code == "overlapping-slices")
    assert "3 mm thick but 2 mm apart" in msg and "kept" in msg
    assert vol.array.shape[0] == 4 and vol.spacing_mm[2] == pytest.approx(2.0)


def test_mixed_orientations_inside_one_stack_are_an_error(tmp_path):
    a = syn.write_slice(tmp_path / "a.dcm", position=(0, 0, 0))
    b = syn.write_slice(tmp_path / "b.dcm", position=(0, 0, 2), orientation=(1, 0, 0, 0, 0.8,
                                                                              -0.6), instance=2)
    idx = index_files([a, b])
    headers = [s for series in idx.series for s in series.slices]
    with pytest.raises(GeometryError, match="different orientations.*separate series"):
        analyse_stack(headers)


def test_single_slice_loads_as_one_slice_volume_with_a_note(tmp_path):
    path = syn.write_slice(tmp_path / "one.dcm", position=(1, 2, 3), thickness=5.0)
    series, vol = load([path])
    assert vol.array.shape == (1, 24, 20)
    assert vol.spacing_mm[2] == pytest.approx(5.0)
    note = next(w.message for w in vol.warnings if w.code == "other")
    assert "SliceThickness" in note


def test_cancel_during_load_raises_and_returns_nothing(tmp_path):
    idx = index_files(syn.write_stack(tmp_path, syn.axial_positions(5)))
    token = CancelToken()
    seen = []

    def progress(f, m):
        seen.append(f)
        if len(seen) == 2:
            token.cancel()

    with pytest.raises(OperationCancelled):
        load_series(idx.series[0], progress=progress, cancel=token)
    assert len(seen) == 2
