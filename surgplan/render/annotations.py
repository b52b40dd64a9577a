"""Screen annotations shared by the slice and 3D views: orientation letters,
a scale bar and corner text.

Each annotation is attached to a ``vtkRenderer`` and refreshes itself at the
start of every render (an observer on the renderer's ``StartEvent``), so it
follows zoom, pan and camera rotation without the caller doing anything.
Font sizes are in device pixels times ``font_scale`` (set it from the screen's
device-pixel ratio, and larger for a projector).
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from surgplan.core.geometry import orientation_letters

#: Text colour on the dark view background (a warm white, readable on bone and air).
TEXT_RGB = (1.0, 0.97, 0.85)


def _text_actor(size_px: int, *, bold: bool = True, shadow: bool = True):
    from vtkmodules.vtkRenderingCore import vtkTextActor

    a = vtkTextActor()
    p = a.GetTextProperty()
    p.SetFontSize(int(size_px))
    p.SetColor(*TEXT_RGB)
    p.SetBold(bold)
    p.SetShadow(shadow)
    p.SetFontFamilyToArial()
    a.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
    return a


def _direction_letters(vector: np.ndarray) -> str:
    """One or two LPS letters for a screen direction (``'L'``, ``'AS'`` …)."""
    v = np.asarray(vector, float)
    order = np.argsort(-np.abs(v))
    first = orientation_letters(v)
    # A second letter when the direction is clearly oblique (> ~25° off the axis).
    if abs(v[order[1]]) > 0.42 * abs(v[order[0]]):
        w = np.zeros(3)
        w[order[1]] = v[order[1]]
        return first + orientation_letters(w)
    return first


class OrientationLetters:
    """Patient-direction letters (L/R, A/P, S/I) at the four edges of a view.

    Parameters
    ----------
    renderer : vtkRenderer
    screen_axes : callable, optional
        Returns ``(right_lps, up_lps)``, the unit LPS directions of screen right
        and up.  By default they come from the renderer's camera, which is right
        for the 3D view; slice views pass their plane axes.
    font_scale : float
    """

    def __init__(self, renderer, screen_axes: Optional[Callable] = None, font_scale: float = 1.0):
        self._renderer = renderer
        self._axes = screen_axes or self._camera_axes
        self.actors = {}
        size = int(round(22 * font_scale))
        places = {"right": (0.985, 0.5, 2, 1), "left": (0.015, 0.5, 0, 1),
                  "top": (0.5, 0.975, 1, 2), "bottom": (0.5, 0.02, 1, 0)}
        for key, (x, y, hj, vj) in places.items():
            a = _text_actor(size)
            p = a.GetTextProperty()
            p.SetJustification(hj)
            p.SetVerticalJustification(vj)
            a.SetPosition(x, y)
            renderer.AddViewProp(a)
            self.actors[key] = a
        renderer.AddObserver("StartEvent", lambda *_: self.update())
        self.update()

    def _camera_axes(self):
        cam = self._renderer.GetActiveCamera()
        up = np.array(cam.GetViewUp(), float)
        d = np.array(cam.GetDirectionOfProjection(), float)
        right = np.cross(d, up)
        return right / (np.linalg.norm(right) or 1.0), up / (np.linalg.norm(up) or 1.0)

    def update(self) -> None:
        right, up = self._axes()
        right, up = np.asarray(right, float), np.asarray(up, float)
        self.actors["right"].SetInput(_direction_letters(right))
        self.actors["left"].SetInput(_direction_letters(-right))
        self.actors["top"].SetInput(_direction_letters(up))
        self.actors["bottom"].SetInput(_direction_letters(-up))

    def set_font_scale(self, font_scale: float) -> None:
        for a in self.actors.values():
            a.GetTextProperty().SetFontSize(int(round(22 * font_scale)))

    def texts(self) -> dict:
        """The letters shown, by edge (for tests and the report)."""
        return {k: a.GetInput() for k, a in self.actors.items()}

    def set_visible(self, on: bool) -> None:
        for a in self.actors.values():
            a.SetVisibility(bool(on))


_NICE_MM = (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500)


class ScaleBar:
    """A horizontal bar of a round length in millimetres (lower right of a view).

    Works for parallel projection (slice views); the length follows the
    camera's parallel scale so the bar stays true while zooming.
    """

    def __init__(self, renderer, font_scale: float = 1.0):
        from vtkmodules.vtkCommonCore import vtkPoints
        from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
        from vtkmodules.vtkRenderingCore import vtkActor2D, vtkPolyDataMapper2D

        self._renderer = renderer
        self._points = vtkPoints()
        self._points.SetNumberOfPoints(6)
        lines = vtkCellArray()
        for a, b in ((0, 1), (2, 3), (4, 5)):
            lines.InsertNextCell(2)
            lines.InsertCellPoint(a)
            lines.InsertCellPoint(b)
        poly = vtkPolyData()
        poly.SetPoints(self._points)
        poly.SetLines(lines)
        mapper = vtkPolyDataMapper2D()
        mapper.SetInputData(poly)
        self._poly = poly
        self.bar = vtkActor2D()
        self.bar.SetMapper(mapper)
        self.bar.GetProperty().SetColor(*TEXT_RGB)
        self.bar.GetProperty().SetLineWidth(max(2.0, 3.0 * font_scale))
        self.label = _text_actor(int(round(18 * font_scale)))
        self.label.GetTextProperty().SetJustification(1)
        self.label.GetPositionCoordinate().SetCoordinateSystemToViewport()
        self._font_scale = font_scale
        renderer.AddViewProp(self.bar)
        renderer.AddViewProp(self.label)
        self.length_mm = 0.0
        renderer.AddObserver("StartEvent", lambda *_: self.update())

    def set_font_scale(self, font_scale: float) -> None:
        self._font_scale = float(font_scale)
        self.label.GetTextProperty().SetFontSize(int(round(18 * font_scale)))
        self.bar.GetProperty().SetLineWidth(max(2.0, 3.0 * font_scale))

    def mm_per_pixel(self) -> float:
        cam = self._renderer.GetActiveCamera()
        h = self._renderer.GetSize()[1]
        return 2.0 * cam.GetParallelScale() / max(h, 1)

    def _dpi_scale(self) -> float:
        """Screen pixels per point / 1 (2 on a high-DPI screen whose window says so)."""
        win = self._renderer.GetRenderWindow()
        return max(1.0, win.GetDPI() / 72.0) if win is not None else 1.0

    def update(self) -> None:
        w, h = self._renderer.GetSize()
        if w <= 0 or h <= 0:
            return
        k = self._font_scale * self._dpi_scale()
        self.bar.GetProperty().SetLineWidth(max(2.0, 3.0 * k))
        mmpp = self.mm_per_pixel()
        target = 0.2 * w * mmpp
        length = max([n for n in _NICE_MM if n <= target] or [_NICE_MM[0]])
        self.length_mm = float(length)
        px = length / mmpp
        x1 = w - 20 * k
        x0 = x1 - px
        y = 22 * k
        tick = 7 * k
        pts = [(x0, y), (x1, y), (x0, y - tick), (x0, y + tick), (x1, y - tick), (x1, y + tick)]
        for n, (x, yy) in enumerate(pts):
            self._points.SetPoint(n, x, yy, 0.0)
        self._points.Modified()
        self._poly.Modified()
        self.label.SetInput(f"{length:g} mm")
        self.label.SetPosition((x0 + x1) / 2.0, y + tick + 2)

    def set_visible(self, on: bool) -> None:
        self.bar.SetVisibility(bool(on))
        self.label.SetVisibility(bool(on))


def _elide(line: str, chars: int) -> str:
    """``line`` cut to ``chars`` characters, ending in "…" when cut."""
    return line if len(line) <= chars else line[: max(chars - 1, 1)].rstrip() + "…"


class CornerText:
    """Text in the four corners of a view (patient, series, slice, window/level).

    ``set(corner, text)`` with corner one of ``upper left``, ``upper right``,
    ``lower left``, ``lower right``.
    """

    _PLACES = {
        "upper left": (0.01, 0.985, 0, 2),
        "upper right": (0.99, 0.985, 2, 2),
        "lower left": (0.01, 0.015, 0, 0),
        "lower right": (0.99, 0.10, 2, 0),
    }

    def __init__(self, renderer, font_scale: float = 1.0):
        self.actors = {}
        self._full = {}  # corner → the whole text; the actor may show it shortened
        self._renderer = renderer
        # Before each render, shorten the upper texts to their half of the view, so
        # that patient and series lines never run into each other or into the
        # orientation letter at the top centre of a small view (1366×768, 2×2).
        renderer.AddObserver("StartEvent", lambda *_: self.fit())
        for key, (x, y, hj, vj) in self._PLACES.items():
            a = _text_actor(int(round(15 * font_scale)), bold=False)
            a.GetTextProperty().SetJustification(hj)
            a.GetTextProperty().SetVerticalJustification(vj)
            a.SetPosition(x, y)
            a.SetInput("")
            renderer.AddViewProp(a)
            self.actors[key] = a

    def set_font_scale(self, font_scale: float) -> None:
        for a in self.actors.values():
            a.GetTextProperty().SetFontSize(int(round(15 * font_scale)))

    def set(self, corner: str, text: str) -> None:
        self._full[corner] = text
        self.actors[corner].SetInput(text)
        self.fit()

    def get(self, corner: str) -> str:
        """The whole text of ``corner`` (the view may show it shortened with "…")."""
        return self._full.get(corner, self.actors[corner].GetInput() or "")

    def fit(self) -> None:
        """Shorten each line of the upper corners to fit half the view's width."""
        width_px = self._renderer.GetSize()[0]
        if width_px <= 1:
            return  # not laid out yet
        win = self._renderer.GetRenderWindow()
        dpi = win.GetDPI() if win is not None else 72
        for corner in ("upper left", "upper right"):
            actor = self.actors[corner]
            font_px = actor.GetTextProperty().GetFontSize() * dpi / 72.0
            # Half the width, less room for the orientation letter in the middle;
            # ≈ 0.6 em per character in the sans font VTK uses.
            room = max(width_px / 2.0 - 1.5 * font_px, 0.0)
            chars = max(int(room / (0.6 * font_px)), 4)
            text = "\n".join(_elide(line, chars)
                             for line in self._full.get(corner, "").split("\n"))
            if text != (actor.GetInput() or ""):
                actor.SetInput(text)

    def set_visible(self, corner: str, on: bool) -> None:
        self.actors[corner].SetVisibility(bool(on))
