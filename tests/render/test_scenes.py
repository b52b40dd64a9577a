"""Rendering tests: scenes drawn offscreen (EGL, or X under Xvfb) and their pixels checked."""

from __future__ import annotations

import numpy as np
import pytest

from surgplan.imaging.structures import colour_of
from surgplan.imaging.volume import Volume
from surgplan.render import (
    Scene3D,
    SliceScene,
    ToolGlyph,
    anatomy_meshes,
    auto_window,
    label_display,
    render_offscreen,
    write_png,
)

SIZE = (400, 400)


def _pixel(img: np.ndarray, display_xy) -> np.ndarray:
    """RGB at a VTK display point (origin lower left) of a top-row-first image."""
    x, y = int(round(display_xy[0])), int(round(display_xy[1]))
    return img[img.shape[0] - 1 - y, x].astype(int)


def _render_at(scene, size=SIZE):
    """Render once offscreen, then return the image and a display mapper valid for it."""
    from vtkmodules.vtkRenderingCore import vtkRenderWindow

    win = vtkRenderWindow()
    win.SetOffScreenRendering(1)
    win.SetSize(*size)
    win.AddRenderer(scene.renderer)
    win.Render()
    scene.reset_camera()
    from surgplan.render import capture_render_window

    img = capture_render_window(win)
    return img, win


@pytest.fixture()
def axial_l4(small_phantom, small_phantom_truth):
    s = SliceScene("axial")
    s.set_volume(small_phantom.ct)
    s.set_labels(label_display(small_phantom_truth))
    s.set_cursor(small_phantom_truth.centroid_lps("L4"))
    return s


def test_label_overlay_shows_the_vertebra_colour_where_it_is(axial_l4, small_phantom_truth):
    axial_l4.set_overlay_opacity(1.0)
    img, win = _render_at(axial_l4)
    c = small_phantom_truth.centroid_lps("L4")
    assert np.abs(_pixel(img, axial_l4.lps_to_display(c)) - colour_of("L4")).max() <= 3
    # Hiding L4 shows the grey CT there again (cancellous bone: a light grey).
    axial_l4.set_label_visibility([n for n in small_phantom_truth.names if n != "L4"])
    win.Render()
    from surgplan.render import capture_render_window

    grey = _pixel(capture_render_window(win), axial_l4.lps_to_display(c))
    assert grey.max() - grey.min() <= 3 and 60 < grey[0] < 250


def test_ct_window_bone_brighter_than_fat_and_presets_change_it(axial_l4, small_phantom_truth):
    axial_l4.set_overlay_opacity(0.0)
    body = small_phantom_truth.centroid_lps("L4")
    img, win = _render_at(axial_l4)
    bone = _pixel(img, axial_l4.lps_to_display(body))[0]
    air = _pixel(img, (3, 3))
    assert bone > 80 and air.max() < 40
    axial_l4.set_window(400.0, 40.0)  # soft tissue: cancellous bone (≈ 230 HU) saturates
    win.Render()
    from surgplan.render import capture_render_window

    soft = _pixel(capture_render_window(win), axial_l4.lps_to_display(body))[0]
    assert soft > bone


def test_display_and_lps_round_trip_and_letters(axial_l4):
    img, win = _render_at(axial_l4)
    p = axial_l4.cursor_lps + np.array([12.0, -7.0, 0.0])
    d = axial_l4.lps_to_display(p)
    back = axial_l4.display_to_lps(*d)
    assert np.allclose(back, p, atol=1e-6)
    assert axial_l4.letters.texts() == {"right": "L", "left": "R", "top": "A", "bottom": "P"}
    sag = SliceScene("sagittal")
    assert sag.letters.texts() == {"right": "P", "left": "A", "top": "S", "bottom": "I"}
    # The scale bar is a round length that matches the zoom.
    mmpp = axial_l4.scale_bar.mm_per_pixel()
    assert axial_l4.scale_bar.length_mm in (10, 20, 25, 50, 100)
    assert axial_l4.scale_bar.length_mm / mmpp <= 0.2 * SIZE[0] + 1
    axial_l4.zoom(4.0)
    win.Render()
    assert axial_l4.scale_bar.mm_per_pixel() == pytest.approx(mmpp / 4.0)


def test_reslice_is_exact_on_an_oblique_left_handed_grid():
    """A bright voxel block lands where its LPS position says, whatever the grid's axes."""
    rot = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])  # swaps x/y, flips z
    theta = np.radians(20)
    tilt = np.array([[np.cos(theta), 0, np.sin(theta)], [0, 1, 0], [-np.sin(theta), 0, np.cos(theta)]])
    aff = np.eye(4)
    aff[:3, :3] = tilt @ rot @ np.diag([1.0, 1.5, 2.0])
    aff[:3, 3] = [-30.0, 40.0, 100.0]
    arr = np.full((40, 60, 60), -1000, np.int16)
    arr[18:22, 28:33, 35:40] = 1500  # k, j, i
    vol = Volume(arr, aff)
    centre_lps = vol.index_to_lps(np.array([37.0, 30.0, 20.0]))
    for orientation in ("axial", "coronal", "sagittal"):
        s = SliceScene(orientation)
        s.set_volume(vol, window=(2000.0, 0.0))
        s.set_cursor(centre_lps)
        img, _ = _render_at(s)
        assert _pixel(img, s.lps_to_display(centre_lps))[0] > 200, orientation
        away = centre_lps + 12.0 * (s.u + s.v)  # off the crosshair lines
        assert _pixel(img, s.lps_to_display(away))[0] < 60, orientation


def test_scroll_moves_the_slice_by_a_voxel_and_stays_inside(small_phantom):
    s = SliceScene("axial")
    s.set_volume(small_phantom.ct)
    z0 = s.cursor_lps[2]
    s.scroll(1)
    assert abs(s.cursor_lps[2] - z0) == pytest.approx(1.6, abs=1e-6)
    s.scroll(10_000)
    lo, hi = small_phantom.ct.bounds_lps()
    assert lo[2] - 1 <= s.cursor_lps[2] <= hi[2] + 1


def test_tool_in_a_slice_is_a_band_of_its_real_diameter(small_phantom):
    s = SliceScene("axial")
    s.set_volume(small_phantom.ct)
    s.set_overlay_opacity(0.0)
    s.set_crosshair_visible(False)
    c = s.cursor_lps
    tool = ToolGlyph(c + [-60.0, 0, 0], c + [60.0, 0, 0], 8.0, colour=(255, 0, 255))
    s.set_tools([tool])
    img, _ = _render_at(s)
    x, y = s.lps_to_display(c)
    column = img[:, int(round(x))].astype(int)
    magenta = (column[:, 0] - column[:, 1] > 60) & (column[:, 2] - column[:, 1] > 60)
    width_mm = magenta.sum() * s.scale_bar.mm_per_pixel()
    assert width_mm == pytest.approx(8.0, abs=1.5)
    assert s.handle_at((x, y)) is None  # not selected: no handles
    s.set_tools([ToolGlyph(tool.entry_lps, tool.target_lps, 8.0, selected=True)])
    assert s.handle_at(s.lps_to_display(tool.target_lps)) == (0, "target")
    assert s.handle_at(s.lps_to_display(tool.entry_lps)) == (0, "entry")


def test_3d_surfaces_in_their_colours_with_names(small_phantom_truth):
    meshes = anatomy_meshes(small_phantom_truth, ["L3", "L4", "aorta"])
    assert set(meshes) == {"L3", "L4", "aorta"}
    scene = Scene3D()
    scene.set_surfaces(meshes)
    assert set(scene.label_actors) == {"L3", "L4"}  # vertebrae are named
    scene.set_visible(["L4"])
    scene.reset_camera("posterior")
    img = render_offscreen(scene, SIZE)
    centre = img[SIZE[1] // 2 - 5 : SIZE[1] // 2 + 5, SIZE[0] // 2 - 5 : SIZE[0] // 2 + 5]
    rgb = centre.reshape(-1, 3).mean(axis=0)
    target = np.array(colour_of("L4"), float)
    # Lit surface: same hue as the structure colour (direction in RGB), any brightness.
    cos = rgb @ target / (np.linalg.norm(rgb) * np.linalg.norm(target))
    assert cos > 0.97
    assert scene.letters.texts()["top"] == "S"


def test_3d_tool_cylinder_and_offscreen_png(tmp_path):
    scene = Scene3D()
    scene.set_tools([ToolGlyph([0, 0, -50], [0, 0, 50], 10.0, colour=(0, 255, 0), selected=True)])
    scene.reset_camera("anterior")
    cam = scene.renderer.GetActiveCamera()
    cam.ParallelProjectionOn()
    cam.SetParallelScale(100.0)  # 200 mm over 400 px: 0.5 mm per pixel
    img = render_offscreen(scene, SIZE)
    row = img[SIZE[1] // 2].astype(int)
    green = (row[:, 1] > 80) & (row[:, 1] > row[:, 0] + 40)
    assert green.sum() * 0.5 == pytest.approx(10.0, abs=1.5)
    path = write_png(img, tmp_path / "tool.png")
    from vtkmodules.vtkIOImage import vtkPNGReader

    r = vtkPNGReader()
    r.SetFileName(str(path))
    r.Update()
    assert r.GetOutput().GetDimensions()[:2] == SIZE


def test_auto_window_for_mr_spans_the_content():
    rng = np.random.default_rng(0)
    arr = np.zeros((20, 30, 30), np.int16)
    arr[5:15, 5:25, 5:25] = rng.normal(600, 100, (10, 20, 20)).astype(np.int16)
    width, level = auto_window(arr, modality="MR")
    assert 300 < level < 900 and 300 < width < 1000
    assert auto_window(arr, modality="CT") == (1200.0, 250.0)


def test_measurements_are_drawn_and_labelled(small_phantom):
    from surgplan.render.slice_scene import measurement_text

    s = SliceScene("axial")
    s.set_volume(small_phantom.ct)
    s.set_overlay_opacity(0.0)
    c = s.cursor_lps
    s.set_measurements([("distance", [c + [-30.0, 20, 0], c + [30.0, 20, 0]])])
    img, _ = _render_at(s)
    x, y = s.lps_to_display(c + [10.0, 20, 0])
    yellow = _pixel(img, (x, y))
    assert yellow[0] > 200 and yellow[1] > 170 and yellow[2] < 120
    assert measurement_text("distance", [c, c + [3.0, 4.0, 0]]) == "5.0 mm"
    assert measurement_text("angle", [c + [1.0, 0, 0], c, c + [0, 0, 2.0]]) == "90.0°"
    assert measurement_text("angle", [c, c]) == ""


def test_volume_rendering_shows_bone(small_phantom):
    scene = Scene3D()
    scene.set_volume_rendering(small_phantom.ct, True)
    scene.reset_camera("anterior")
    img = render_offscreen(scene, (300, 300))
    centre = img[100:200, 100:200].reshape(-1, 3).astype(int)
    assert (centre.sum(axis=1) > 300).sum() > 200  # bright bone where the spine is
    scene.set_volume_rendering(None, False)
    img = render_offscreen(scene, (300, 300))
    assert img[100:200, 100:200].max() < 80  # background only


def test_scalar_surface_goes_green_to_red(small_phantom_truth):
    """The entry risk map's colouring: low values green, high values red."""
    (mesh,) = anatomy_meshes(small_phantom_truth, ["L4"]).values()
    x = mesh.vertices_lps[:, 0]
    values = (x > np.median(x)).astype(np.float32)  # patient left half 1, right half 0
    scene = Scene3D()
    scene.set_scalar_surface(mesh, values, 0.0, 1.0)
    scene.reset_camera("anterior")  # patient left on the screen's right
    img = render_offscreen(scene, SIZE).astype(int)
    left_half, right_half = img[:, : SIZE[0] // 2], img[:, SIZE[0] // 2 :]
    greenish = lambda a: ((a[..., 1] > a[..., 0] + 40) & (a[..., 1] > 60)).sum()  # noqa: E731
    reddish = lambda a: ((a[..., 0] > a[..., 1] + 60) & (a[..., 0] > 90)).sum()  # noqa: E731
    assert greenish(left_half) > 200 and reddish(right_half) > 200
    assert reddish(left_half) < greenish(left_half) / 10


def test_patient_and_series_text_shortened_in_a_small_view(small_phantom):
    """At 1366×768 a 2×2 view is ≈ 340 px wide: the corner lines must not run together."""
    s = SliceScene("axial")
    s.set_volume(small_phantom.ct)
    series = "CT Phantom CT lumbar spine arterial phase with a long description"
    s.set_patient_text("PHANTOM^SPINE\nID SURGPLAN-PHANTOM", series + "\n20240101")
    render_offscreen(s, (340, 340), reset_camera=True)
    shown = s.corners.actors["upper right"].GetInput().split("\n")
    assert shown[0].endswith("…") and len(shown[0]) < len(series)
    assert shown[1] == "20240101"  # short lines stay whole
    assert s.corners.get("upper right") == series + "\n20240101"  # the text itself is kept
    render_offscreen(s, (1600, 900), reset_camera=True)
    assert s.corners.actors["upper right"].GetInput().split("\n")[0] == series
