import numpy as np
import pytest

from surgplan.core.errors import GeometryError
from surgplan.imaging.volume import ImageMetadata, LoadWarning, Volume


def oblique_volume():
    rng = np.random.default_rng(1)
    arr = rng.integers(-1000, 1500, size=(7, 5, 6)).astype(np.int16)
    theta = np.radians(20)
    direction = np.array(
        [[1, 0, 0], [0, np.cos(theta), -np.sin(theta)], [0, np.sin(theta), np.cos(theta)]]
    )
    aff = np.eye(4)
    aff[:3, :3] = direction * np.array([0.7, 0.8, 2.5])
    aff[:3, 3] = [-10.0, 20.0, 35.0]
    return Volume(arr, aff, "1.2.3", ImageMetadata(modality="CT"))


def test_index_and_lps_round_trip():
    v = oblique_volume()
    ijk = np.array([[0, 0, 0], [5, 4, 6], [2.5, 1.25, 3.0]])
    lps = v.index_to_lps(ijk)
    np.testing.assert_allclose(lps[0], [-10, 20, 35])
    np.testing.assert_allclose(v.lps_to_index(lps), ijk, atol=1e-9)
    np.testing.assert_allclose(v.spacing_mm, [0.7, 0.8, 2.5])
    assert v.shape_ijk == (6, 5, 7)


def test_volume_is_immutable():
    v = oblique_volume()
    with pytest.raises(ValueError):
        v.array[0, 0, 0] = 5
    with pytest.raises(ValueError):
        v.ijk_to_lps[0, 0] = 5
    with pytest.raises(Exception):
        v.source = "x"  # frozen dataclass
    w = v.with_warnings(LoadWarning("gantry-tilt", "tilted 20°"))
    assert v.warnings == () and w.warnings[0].code == "gantry-tilt"


def test_sitk_round_trip_keeps_geometry_and_voxels():
    v = oblique_volume()
    img = v.to_sitk()
    assert img.GetSize() == (6, 5, 7)
    # ITK's physical point of an index is the same LPS point as ours.
    np.testing.assert_allclose(
        img.TransformContinuousIndexToPhysicalPoint((2.0, 3.0, 4.0)),
        v.index_to_lps(np.array([2.0, 3.0, 4.0])),
        atol=1e-6,
    )
    back = Volume.from_sitk(img, metadata=v.metadata)
    np.testing.assert_array_equal(back.array, v.array)
    np.testing.assert_allclose(back.ijk_to_lps, v.ijk_to_lps, atol=1e-9)
    assert back.array.dtype == np.int16


@pytest.mark.parametrize(
    "array, affine, match",
    [
        (np.zeros((4, 4)), np.eye(4), "3D array"),
        (np.zeros((0, 4, 4)), np.eye(4), "empty"),
        (np.zeros((2, 2, 2)), np.diag([1, 0, 1, 1]), "singular"),
        (np.zeros((2, 2, 2)), np.full((4, 4), np.nan), "finite"),
    ],
)
def test_invalid_volumes_are_refused(array, affine, match):
    with pytest.raises(GeometryError, match=match):
        Volume(array, affine)


def test_unknown_warning_code_is_refused():
    with pytest.raises(ValueError, match="unknown warning code"):
        LoadWarning("tilted", "x")
