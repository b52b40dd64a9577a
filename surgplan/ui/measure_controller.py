"""Distance and angle measurements drawn with the mouse on the slices (M, A, Shift+M;
Ctrl+M names the last one).

Finished measurements are :class:`~surgplan.planning.measurements.Measurement` values in
LPS millimetres; they are drawn in every slice view, saved in the ``.surgplan``
case file and restored with it.
"""

from __future__ import annotations

from typing import Iterable, List, Optional

import numpy as np

from surgplan.planning.measurements import Measurement


class MeasureController:
    """Builds measurements from slice-view mouse events and shows them."""

    def __init__(self, window):
        self.w = window
        self.measurements: List[Measurement] = []
        self._measuring = None  # [kind, points, phase] while one is drawn

    def measure(self, mode: str, p_lps, released: bool):
        """Build a distance (press → release) or an angle (vertex → first arm by a drag,
        then a click at the end of the second arm) from slice-view mouse events."""
        from surgplan.render.slice_scene import measurement_text

        p = np.asarray(p_lps, float)
        m = self._measuring
        if m is None or m[0] != mode:
            # A press starts a measurement: a distance [start, end] or an angle
            # [arm end, vertex] (both at the press point until the mouse moves).
            m = self._measuring = [mode, [p, p.copy()], 1]
        elif mode == "angle" and m[2] == 2 and len(m[1]) == 2:
            m[1].append(p)  # the press of the second arm
        elif mode == "distance":
            m[1][1] = p
        elif m[2] == 1:
            m[1][0] = p
        else:
            m[1][2] = p
        if released:
            if mode == "distance" or m[2] == 2:
                self.measurements.append(Measurement.of(mode, m[1]))
                self._measuring = None
                # Measurements are saved with the case: unsaved ones are kept on close.
                self.w.session.dirty = True
                self.w.update_actions()
                self.w.status_text.setText(f"Measured {measurement_text(mode, m[1])}")
            else:
                m[2] = 2  # now the second arm
        self.show()

    def label_last(self, text: Optional[str] = None) -> bool:
        """Name the last finished measurement (``'foraminal height L4-L5'``): the name is
        saved with the case and printed in the plan report.  Asks for it when ``text``
        is None; an empty name removes it.  Returns True when the name changed."""
        w = self.w
        if not self.measurements:
            w.status_text.setText("No measurement to name: measure a distance (M) or an "
                                  "angle (A) first.")
            return False
        last = self.measurements[-1]
        if text is None:
            from PySide6.QtWidgets import QInputDialog

            text, ok = QInputDialog.getText(
                w, "Name the measurement", f"What does this {last.kind} of {last.value_text} "
                "measure? (printed in the plan report)", text=last.label)
            if not ok:
                return False
        try:
            named = last.with_label(text)
        except ValueError as exc:
            w.report_error("The name was not kept", exc)
            return False
        if named == last:
            return False
        self.measurements[-1] = named
        w.session.dirty = True
        w.update_actions()
        w.status_text.setText(f"Measurement {len(self.measurements)}: "
                              f"{named.title}, {named.value_text}")
        return True

    def abandon(self):
        """Drop a measurement being drawn (the mode changed)."""
        self._measuring = None

    def show(self):
        items = list(self.measurements)
        if self._measuring is not None:
            items.append((self._measuring[0], list(self._measuring[1])))
        for v in self.w.views:
            v.scene.set_measurements(items)
        self.w.viewer.render_all()

    def clear(self):
        if self.measurements:
            self.w.session.dirty = True
        self.measurements = []
        self._measuring = None
        self.w.update_actions()
        self.show()

    def replace(self, items: Iterable[Measurement]):
        """Show ``items`` instead of the current measurements (a case file was opened)."""
        self.measurements = list(items)
        self._measuring = None
        self.show()


__all__ = ["MeasureController"]
