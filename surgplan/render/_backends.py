"""Load VTK's rendering back-ends once (``vtkmodules`` registers them on import).

Without these imports VTK's abstract classes have no implementation: no
OpenGL render window, no font rendering for text, no volume ray casting.

With no X display (a server, CI, ``surgplan plan --pdf`` over ssh) VTK would
first try X, print "bad X server connection" in colour on the terminal, and
only then fall back to EGL; asking for EGL straight away keeps the terminal
clean.  A choice already made in ``VTK_DEFAULT_OPENGL_WINDOW`` is respected.
"""

import os

if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

import vtkmodules.vtkInteractionStyle  # noqa: E402,F401  (default interactor styles)
import vtkmodules.vtkRenderingFreeType  # noqa: E402,F401  (text)
import vtkmodules.vtkRenderingOpenGL2  # noqa: E402,F401  (render windows, mappers)
import vtkmodules.vtkRenderingVolumeOpenGL2  # noqa: E402,F401  (volume rendering)
