"""The report renders its pictures on machines with no display (servers, CI, ssh)."""

import os
import subprocess
import sys

SCRIPT = """
import numpy as np
from vtkmodules.vtkFiltersSources import vtkSphereSource
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper, vtkRenderer
from surgplan.render import render_offscreen
src = vtkSphereSource(); m = vtkPolyDataMapper(); m.SetInputConnection(src.GetOutputPort())
a = vtkActor(); a.SetMapper(m); r = vtkRenderer(); r.AddActor(a); r.ResetCamera()
rgb = render_offscreen(r, (64, 64))
print(rgb.shape, int(rgb.max()))
"""


def test_offscreen_rendering_without_a_display_is_quiet():
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "VTK_DEFAULT_OPENGL_WINDOW")}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "(64, 64, 3)" in out.stdout
    assert int(out.stdout.split()[-1]) > 100  # the sphere is lit, not a black image
    assert "bad X server" not in out.stderr  # no colour-coded warning on the terminal
