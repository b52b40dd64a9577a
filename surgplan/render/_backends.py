"""Load VTK's rendering back-ends once (``vtkmodules`` registers them on import).

Without these imports VTK's abstract classes have no implementation: no
OpenGL render window, no font rendering for text, no volume ray casting.
"""

import vtkmodules.vtkInteractionStyle  # noqa: F401  (default interactor styles)
import vtkmodules.vtkRenderingFreeType  # noqa: F401  (text)
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (render windows, mappers)
import vtkmodules.vtkRenderingVolumeOpenGL2  # noqa: F401  (volume rendering)
