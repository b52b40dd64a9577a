"""Measurements keep their label through the case file, and files written before labels
(or before the value and unit were written beside the points) still read."""

from __future__ import annotations

import json
import zipfile

import pytest

from surgplan.core.errors import PlanFileError
from surgplan.planning.measurements import Measurement, measurements_from_json, \
    measurements_to_json
from surgplan.planning.case_files import read_measurements, save_case


def _items():
    return [Measurement("distance", ((10.0, -20.5, 30.0), (10.0, -20.5, 52.5)),
                        "foraminal height  L4-L5\nleft"),
            Measurement("angle", ((0.0, 0.0, 0.0), (10.0, 0.0, 0.0), (10.0, 10.0, 0.0)))]


def test_labels_values_and_units():
    d, a = _items()
    assert d.label == "foraminal height L4-L5 left"  # one line: it is a caption
    assert (d.value_text, d.unit, d.title) == ("22.5 mm", "mm", "foraminal height L4-L5 left")
    assert (a.value_text, a.unit, a.title) == ("90.0°", "°", "Angle")
    assert a.with_label("lordosis").label == "lordosis" and a.label == ""
    with pytest.raises(ValueError, match="keep it under 80"):
        Measurement("angle", a.points_lps, "x" * 81)
    # The JSON holds the value and its unit for other programs; reading recomputes them.
    data = measurements_to_json([d, a])
    assert data["measurements"][0]["label"] == d.label
    assert data["measurements"][0]["value"] == pytest.approx(22.5)
    assert data["measurements"][1]["unit"] == "deg" and "label" not in data["measurements"][1]
    data["measurements"][0]["value"] = 99.0
    assert measurements_from_json(data) == [d, a]


def test_case_file_round_trip_keeps_labels_and_reads_files_without_them(small_phantom,
                                                                        tmp_path):
    vol = small_phantom.ct
    path = save_case(tmp_path / "case.surgplan", None, None, vol, measurements=_items())
    assert read_measurements(path) == _items()
    # measurements.json as the first version wrote it: kind and points only.
    old = tmp_path / "old.surgplan"
    first = {"format": "surgplan-measurements", "version": 1, "frame": "LPS", "unit": "mm",
             "measurements": [{"kind": m.kind, "points_lps": [list(p) for p in m.points_lps]}
                              for m in _items()]}
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(old, "w") as dst:
        for name in src.namelist():
            if name != "measurements.json":
                dst.writestr(name, src.read(name))
        dst.writestr("measurements.json", json.dumps(first))
    back = read_measurements(old)
    assert [m.label for m in back] == ["", ""]
    assert [m.points_lps for m in back] == [m.points_lps for m in _items()]
    # A label that is not text is a damaged file, named as such.
    bad = tmp_path / "bad.surgplan"
    first["measurements"][1]["label"] = {"not": "text"}
    with zipfile.ZipFile(old) as src, zipfile.ZipFile(bad, "w") as dst:
        for name in src.namelist():
            if name != "measurements.json":
                dst.writestr(name, src.read(name))
        dst.writestr("measurements.json", json.dumps(first))
    with pytest.raises(PlanFileError, match="bad.surgplan.*measurement 2 is not valid"):
        read_measurements(bad)
