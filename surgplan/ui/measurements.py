"""Measurement values for the window: the model lives in :mod:`surgplan.planning.measurements`.

Kept so that ``surgplan.ui.measurements.Measurement`` (and the JSON helpers the
case files use) go on working; no Qt here.
"""

from __future__ import annotations

from surgplan.planning.measurements import (POINT_COUNT, Measurement, measurements_from_json,
                                            measurements_to_json)

__all__ = ["Measurement", "POINT_COUNT", "measurements_from_json", "measurements_to_json"]
