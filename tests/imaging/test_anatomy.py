"""The Anatomy value: validation, queries and the rename edit."""

import numpy as np
import pytest

from surgplan.imaging.anatomy import Anatomy, Structure


def _anatomy():
    v = np.zeros((4, 5, 6), np.uint16)
    v[:2] = 1
    v[2:] = 2
    s = np.zeros_like(v)
    s[0, 0, 0] = 1
    items = (
        Structure("L4", 1, "vertebrae", "vertebra", provisional=True, notes="sacrum out of view"),
        Structure("L5", 2, "vertebrae", "vertebra", provisional=True),
        Structure("disc L4-L5", 1, "structures", "disc"),
    )
    return Anatomy(v.shape, np.eye(4), v, s, items, ("two vertebrae",))


def test_rename_returns_new_anatomy_and_records_the_edit():
    a = _anatomy()
    b = a.rename("L5", "L6", note="six lumbar vertebrae on the full-spine film")
    assert a.vertebra_names == ("L4", "L5")  # the original is untouched
    assert b.vertebra_names == ("L4", "L6")
    s = b.structure("L6")
    assert s.provenance == "edited" and not s.provisional and "six lumbar" in s.notes
    assert "disc L4-L6" in b.names  # the disc follows its vertebra
    assert np.array_equal(b.mask("L6"), a.mask("L5"))
    assert any("renamed" in f for f in b.findings)


def test_rename_refuses_bad_names():
    a = _anatomy()
    with pytest.raises(KeyError, match="L3"):
        a.rename("L3", "L2")
    with pytest.raises(ValueError, match="already used"):
        a.rename("L5", "L4")
    with pytest.raises(ValueError, match="not a vertebra name"):
        a.rename("L5", "spinal canal")
    with pytest.raises(ValueError, match="only vertebrae"):
        a.rename("disc L4-L5", "L3")


def test_maps_are_read_only_and_checked():
    a = _anatomy()
    with pytest.raises(ValueError):
        a.vertebrae[0, 0, 0] = 3
    with pytest.raises(ValueError, match="shape"):
        Anatomy((1, 1, 1), np.eye(4), a.vertebrae, a.structures)
    with pytest.raises(ValueError, match="is a .vertebra., not a .disc."):
        Structure("L4", 1, "vertebrae", "disc")
