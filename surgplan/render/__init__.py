"""VTK scene building shared by the GUI and the report (no Qt here).

Everything is in patient LPS millimetres.  The pieces:

``SliceScene(orientation="axial"|"coronal"|"sagittal"|(u, v), font_scale=1.0)``
    (:mod:`surgplan.render.slice_scene`) a reslice of a Volume along any plane:
    ``set_volume(volume, window=None)``, ``set_window(width, level)``,
    ``set_labels(label_display(anatomy), visible=None, colours=None)``,
    ``set_overlay_opacity(a)``, ``set_cursor(p_lps)``, ``scroll(steps)``,
    ``set_tools([ToolGlyph, …])``, ``display_to_lps(x, y)``,
    ``lps_to_display(p)``, ``handle_at((x, y))``, ``zoom_about``, ``pan_pixels``,
    ``set_patient_text(...)``; orientation letters, scale bar and corner text included.
``trajectory_axes(entry_lps, target_lps, roll_deg)`` → ``{"along": (u, v), "probe": (u, v)}``
    for ``SliceScene.set_axes``: the view resliced along a tool and the probe's eye.
``Scene3D(font_scale=1.0)`` (:mod:`surgplan.render.scene3d`)
    ``set_surfaces({name: Mesh})`` (coloured per structure, vertebrae labelled),
    ``set_visible(names)``, ``set_tools([ToolGlyph])`` (cylinders of the real
    diameter), ``set_scalar_surface(mesh, values, lo, hi)`` (entry risk map),
    ``set_volume_rendering(volume, on)``, ``reset_camera(view)``.
``anatomy_meshes(anatomy, names=None, progress=, cancel=)`` → ``{name: Mesh}``.
``ToolGlyph(entry_lps, target_lps, diameter_mm, colour, label, selected)``.
``label_display(anatomy)`` → ``LabelDisplay``, ``auto_window(array, modality)``,
``WINDOW_PRESETS_HU``.
``render_offscreen(scene | [scenes], size=(w, h), reset_camera=False)`` → ``(h, w, 3)``
uint8 RGB; ``capture_render_window(window)``; ``write_png(rgb, path)``.

Example (the report's figure of an axial slice with the plan)::

    from surgplan.render import SliceScene, ToolGlyph, label_display, render_offscreen, write_png
    s = SliceScene("axial")
    s.set_volume(volume)
    s.set_labels(label_display(anatomy))
    s.set_cursor(target_lps)
    s.set_tools([ToolGlyph(entry_lps, target_lps, 7.0, selected=True)])
    write_png(render_offscreen(s, (900, 900), reset_camera=True), "axial.png")
"""

from surgplan.render import _backends  # noqa: F401  (first: VTK factories)
from surgplan.render.glyphs import ToolGlyph
from surgplan.render.images import (
    WINDOW_PRESETS_HU,
    LabelDisplay,
    auto_window,
    label_display,
    label_lookup_table,
    scalar_lookup_table,
)
from surgplan.render.offscreen import capture_render_window, render_offscreen, write_png
from surgplan.render.scene3d import Scene3D, anatomy_meshes, scalar_surface_actor, surface_actor, tool_actor
from surgplan.render.slice_scene import STANDARD_AXES, SliceScene, trajectory_axes

__all__ = [
    "ToolGlyph", "WINDOW_PRESETS_HU", "LabelDisplay", "auto_window", "label_display",
    "label_lookup_table", "scalar_lookup_table", "capture_render_window", "render_offscreen",
    "write_png", "Scene3D", "anatomy_meshes", "scalar_surface_actor", "surface_actor",
    "tool_actor", "STANDARD_AXES", "SliceScene", "trajectory_axes",
]
