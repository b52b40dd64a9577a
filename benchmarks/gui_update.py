"""Time one live update of the plan while a handle is dragged (issue 5: <= 20 ms).

An update is what the window does on every mouse move of a drag: evaluate the
moved trajectory (risk engine, shown at once in the risk panel) and redraw the
view being dragged in; the other views follow at most every 80 ms.  Measured offscreen (EGL, no display needed) at the size of the
views at 1366 x 768, on the 1.6 mm phantom's exact anatomy.  Prints figures.

    .venv/bin/python benchmarks/gui_update.py
"""

from __future__ import annotations

import time

import numpy as np


def main() -> None:
    from vtkmodules.vtkRenderingCore import vtkRenderWindow

    from surgplan.imaging.phantom import PhantomSpec, make_phantom
    from surgplan.imaging.phantom_truth import truth_anatomy
    from surgplan.planning import PlanningContext, evaluate, propose
    from surgplan.render import Scene3D, SliceScene, ToolGlyph, anatomy_meshes, label_display

    case = make_phantom(PhantomSpec(spacing_mm=(1.6, 1.6, 1.6), noise_hu=15.0, seed=7))
    anatomy = truth_anatomy(case)
    t0 = time.perf_counter()
    ctx = PlanningContext.build(anatomy, case.ct)
    print(f"planning context: {time.perf_counter() - t0:.1f} s (once per anatomy)")
    best = propose(ctx, "teld", "L4-L5", "left", count=1)[0].trajectory

    labels = label_display(anatomy)
    scenes = []
    for o in ("axial", "sagittal", "coronal"):
        s = SliceScene(o)
        s.set_volume(case.ct)
        s.set_labels(labels)
        s.set_cursor(best.target_lps)
        scenes.append(s)
    s3 = Scene3D()
    s3.set_surfaces(anatomy_meshes(anatomy, [n for n in anatomy.vertebra_names]))
    scenes.append(s3)
    windows = []
    for s in scenes:
        w = vtkRenderWindow()
        w.SetOffScreenRendering(1)
        w.SetSize(350, 330)  # one view of the 2x2 grid at 1366 x 768
        w.AddRenderer(s.renderer)
        w.Render()
        s.reset_camera()
        windows.append(w)

    caps = windows[0].ReportCapabilities() or ""
    renderer = next((ln.split(":", 1)[1].strip() for ln in caps.splitlines()
                     if "renderer string" in ln), "unknown")
    print(f"OpenGL renderer: {renderer}")
    rng = np.random.default_rng(0)
    t_eval, t_slice, t_3d = [], [], []
    for _ in range(40):
        entry = np.asarray(best.entry_lps) + rng.normal(0, 4.0, 3)
        traj = best.with_entry(entry)
        a = time.perf_counter()
        evaluate(ctx, traj)
        b = time.perf_counter()
        glyph = [ToolGlyph(traj.entry_lps, traj.target_lps, traj.tool.diameter_mm, selected=True)]
        scenes[0].set_tools(glyph)
        windows[0].Render()
        c = time.perf_counter()
        scenes[3].set_tools(glyph)
        windows[3].Render()
        d = time.perf_counter()
        t_eval.append((b - a) * 1000)
        t_slice.append((c - b) * 1000)
        t_3d.append((d - c) * 1000)
    for name, v in (("evaluate (risk panel)", t_eval), ("redraw one slice view", t_slice),
                    ("redraw the 3D view", t_3d)):
        print(f"{name:>22}: median {np.median(v):6.1f} ms, 95th percentile "
              f"{np.percentile(v, 95):6.1f} ms")


if __name__ == "__main__":
    main()
