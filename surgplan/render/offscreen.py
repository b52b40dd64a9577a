"""Rendering without a window: scenes to numpy RGB images and PNG files.

With VTK's PyPI wheel an offscreen render window uses EGL and needs no display
(the report renders its figures this way); under Xvfb the ordinary X window
path works too.  :func:`capture_render_window` reads the pixels back from a
window that is already on screen (the GUI's views, for screenshots and tests).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, Tuple, Union

import numpy as np


def capture_render_window(render_window, *, render: bool = True) -> np.ndarray:
    """The pixels of a ``vtkRenderWindow`` as ``(height, width, 3)`` uint8 RGB, top row first.

    Reads the back buffer after a render (``render=True``), which is what
    ``vtkWindowToImageFilter`` is for: Qt's widget grab does not see OpenGL pixels.
    """
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkRenderingCore import vtkWindowToImageFilter

    if render:
        render_window.Render()
    f = vtkWindowToImageFilter()
    f.SetInput(render_window)
    f.SetInputBufferTypeToRGB()
    f.ReadFrontBufferOff()
    f.ShouldRerenderOff()
    f.Update()
    img = f.GetOutput()
    w, h, _ = img.GetDimensions()
    arr = vtk_to_numpy(img.GetPointData().GetScalars()).reshape(h, w, -1)[:, :, :3]
    return np.ascontiguousarray(arr[::-1])


def render_offscreen(
    scene_or_renderers: Union[object, Sequence[object]],
    size: Tuple[int, int] = (800, 800),
    *,
    reset_camera: bool = False,
) -> np.ndarray:
    """Render a scene (or renderers side by side) offscreen to an RGB array.

    Parameters
    ----------
    scene_or_renderers : SliceScene, Scene3D, vtkRenderer, or a sequence of them
        Several are laid out left to right in equal viewports.
    size : (width, height)
        Image size in pixels.
    reset_camera : bool
        Call each scene's ``reset_camera()`` for the new size first (slice
        scenes fit the slice, 3D scenes frame the visible props).

    Returns
    -------
    numpy.ndarray
        ``(height, width, 3)`` uint8, top row first.

    Notes
    -----
    A renderer belongs to one window at a time: it is taken out of the
    offscreen window again before returning, so it can go back on screen.
    """
    from vtkmodules.vtkRenderingCore import vtkRenderWindow

    items = list(scene_or_renderers) if isinstance(scene_or_renderers, (list, tuple)) else [
        scene_or_renderers]
    win = vtkRenderWindow()
    win.SetOffScreenRendering(1)
    win.SetSize(int(size[0]), int(size[1]))
    win.SetMultiSamples(0)
    renderers = []
    n = len(items)
    for idx, item in enumerate(items):
        ren = getattr(item, "renderer", item)
        ren.SetViewport(idx / n, 0.0, (idx + 1) / n, 1.0)
        win.AddRenderer(ren)
        renderers.append(ren)
    try:
        if reset_camera:
            win.Render()  # renderers learn their size, which the camera fit needs
            for item in items:
                if hasattr(item, "reset_camera"):
                    item.reset_camera()
        return capture_render_window(win)
    finally:
        for ren in renderers:
            win.RemoveRenderer(ren)
            ren.SetViewport(0.0, 0.0, 1.0, 1.0)
        win.Finalize()


def write_png(rgb: np.ndarray, path: Union[str, Path]) -> Path:
    """Write ``(height, width, 3)`` uint8 RGB (top row first) as a PNG file."""
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonDataModel import vtkImageData
    from vtkmodules.vtkIOImage import vtkPNGWriter

    a = np.ascontiguousarray(np.asarray(rgb, np.uint8)[::-1])
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"expected an (h, w, 3) RGB image, got shape {a.shape}")
    h, w, c = a.shape
    img = vtkImageData()
    img.SetDimensions(w, h, 1)
    arr = numpy_to_vtk(a.reshape(-1, c), deep=True)
    img.GetPointData().SetScalars(arr)
    p = Path(path)
    writer = vtkPNGWriter()
    writer.SetFileName(str(p))
    writer.SetInputData(img)
    writer.Write()
    if not p.is_file():
        raise OSError(f"{p}: the PNG could not be written (is the folder writable?)")
    return p
