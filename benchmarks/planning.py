"""Measure the planning engine's speed on a 512 × 512 × 300 CT-sized case.

Run: ``.venv/bin/python benchmarks/planning.py``.

The case is the phantom at 0.8 × 0.8 × 1.0 mm with its field of view cut to 300 mm
along z (T12 … S1) and padded with air to 512 × 512 voxels in x and y (a 410 mm
reconstruction circle), with its exact anatomy (every critical structure present,
the worst case for the number of distance fields).  Prints:

* the one-off preparation (:meth:`PlanningContext.build`) and its peak memory growth;
* re-evaluating one trajectory while its entry is dragged (200 positions 0.25 mm
  apart, each a full :func:`evaluate` with 128 Monte Carlo samples): median and
  95th percentile (target ≤ 20 ms);
* an entry risk map over ≥ 10,000 skin entries (target ≤ 1 s);
* an automatic TELD proposal at L4-L5 (target ≤ 2 s), after a first call that fills
  the per-level caches (disc geometry, Kambin triangle), and that first call too;
* per lumbar vertebra (left side), the pedicle axis and isthmus width found from the
  labels against the phantom's own, and the screw templated on them (diameter ≤ 80 %
  of the isthmus, length ≈ 80 % of the chord) with its Gertzbein–Robbins grade.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def padded_case(shape_xy: int = 512, slices: int = 300):
    """(Volume, Anatomy, Landmarks) of the phantom padded/cropped to ``shape_xy² × slices``."""
    from surgplan.imaging.anatomy import Anatomy
    from surgplan.imaging.phantom import PhantomSpec, make_phantom
    from surgplan.imaging.phantom_truth import truth_anatomy
    from surgplan.imaging.volume import Volume

    lm = make_phantom(PhantomSpec(spacing_mm=(2.0, 2.0, 2.0))).landmarks
    z_mid = 0.5 * (lm.vertebrae["T12"].centroid_lps[2] + lm.vertebrae["S1"].centroid_lps[2])
    spec = PhantomSpec(spacing_mm=(0.8, 0.8, 1.0),
                       fov_z_mm=(z_mid - slices / 2 + 0.5, z_mid + slices / 2 - 0.5))
    case = make_phantom(spec)
    an = truth_anatomy(case)
    nk, nj, ni = case.ct.array.shape
    pj, pi = max(shape_xy - nj, 0), max(shape_xy - ni, 0)
    pad = ((0, max(slices - nk, 0)), (pj // 2, pj - pj // 2), (pi // 2, pi - pi // 2))

    def fit(a, value):
        a = np.pad(np.asarray(a), pad, constant_values=value)
        return np.ascontiguousarray(a[:slices, :shape_xy, :shape_xy])

    aff = np.array(case.ct.ijk_to_lps, float)
    aff[:3, 3] -= aff[:3, :3] @ np.array([pad[2][0], pad[1][0], 0.0])
    vol = Volume(fit(case.ct.array, -1000).astype(np.int16), aff,
                 metadata=case.ct.metadata)
    anat = Anatomy(vol.array.shape, aff, fit(an.vertebrae, 0), fit(an.structures, 0),
                   an.items, an.findings, fit(an.parts, 0))
    return vol, anat, case.landmarks


def screws(ctx, landmarks) -> None:
    """Pedicle axes, isthmus widths and templated screws against the phantom's truth."""
    from surgplan.planning import pedicle_axis, propose

    for v in ("L1", "L2", "L3", "L4", "L5"):
        truth = landmarks.vertebrae[v].pedicles["left"]
        ax = pedicle_axis(ctx, v, "left")
        err = np.degrees(np.arccos(np.clip(ax["direction"] @ truth.direction, -1.0, 1.0)))
        best = propose(ctx, "pedicle-screw", v, "left", count=1)[0]
        print(f"  {v} left: medial angle {ax['medial_angle_deg']:.1f}° (truth "
              f"{truth.medial_angle_deg:.0f}°, axis {err:.1f}° off), isthmus "
              f"{ax['isthmus_width_mm']:.1f} mm (truth {truth.isthmus_width_mm:g}), chord "
              f"{ax['chord_mm']:.0f} mm (truth {truth.length_mm:.0f}) -> "
              f"{best.trajectory.tool.diameter_mm:g} × {best.trajectory.tool.implant_length_mm:g}"
              f" mm, grade {best.pedicle.grade} (breach {best.pedicle.breach_mm:.1f} mm), "
              f"{best.category}")


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> int:
    from surgplan.planning import PlanningContext, entry_risk_map, evaluate, propose

    t0 = time.perf_counter()
    vol, anat, landmarks = padded_case()
    print(f"case: phantom 0.8 × 0.8 × 1.0 mm, {vol.array.shape[2]} × {vol.array.shape[1]} × "
          f"{vol.array.shape[0]} voxels (built in {time.perf_counter() - t0:.1f} s); "
          f"{os.cpu_count()} cores")
    before = rss_mib()
    t0, c0 = time.perf_counter(), time.process_time()
    ctx = PlanningContext.build(anat, vol)
    t_build = time.perf_counter() - t0
    print(f"PlanningContext.build: {t_build:.1f} s (CPU {time.process_time() - c0:.1f} s, "
          f"ITK threads included), {len(ctx.fields)} distance fields, "
          f"{len(ctx.skin_vertices_lps)} skin points, peak RSS +{rss_mib() - before:.0f} MiB")

    t0 = time.perf_counter()
    first = propose(ctx, "teld", "L4-L5", "left")
    t_first = time.perf_counter() - t0
    times, cpu = [], []
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        props = propose(ctx, "teld", "L4-L5", "left")
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    best = props[0]
    print(f"propose teld L4-L5 left: {np.median(times):.2f} s (CPU {np.median(cpu):.2f} s; "
          f"first call {t_first:.2f} s, "
          f"fills the level's caches) — target ≤ 2 s; best: {best.category}, "
          f"{best.midline_distance_mm:.0f} mm from the midline")
    del first

    tr = best.trajectory
    entry = np.asarray(tr.entry_lps)
    step = np.array([0.0, 0.0, 0.25])
    evaluate(ctx, tr)
    drag, drag_cpu = [], []
    for k in range(200):
        t0, c0 = time.perf_counter(), time.process_time()
        evaluate(ctx, tr.with_entry(entry + (k - 100) * step))
        drag.append((time.perf_counter() - t0) * 1000)
        drag_cpu.append((time.process_time() - c0) * 1000)
    print(f"evaluate while dragging the entry (200 positions): median {np.median(drag):.1f} ms, "
          f"95th percentile {np.percentile(drag, 95):.1f} ms (CPU {np.median(drag_cpu):.1f} ms) "
          f"— target ≤ 20 ms")

    verts = ctx.skin_vertices_lps
    target = np.asarray(tr.target_lps)
    near = verts[np.linalg.norm(verts - target, axis=1) <= tr.tool.working_length_mm]
    n = max(10000, min(len(near), 12000))
    sel = near[np.linspace(0, len(near) - 1, n).astype(int)] if len(near) >= n else near
    entry_risk_map(ctx, "teld", target, sel[:100], level="L4-L5", side="left")
    maps, maps_cpu = [], []
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        risk = entry_risk_map(ctx, "teld", target, sel, level="L4-L5", side="left")
        maps.append(time.perf_counter() - t0)
        maps_cpu.append(time.process_time() - c0)
    print(f"entry risk map over {len(sel)} skin entries: {np.median(maps):.2f} s (CPU "
          f"{np.median(maps_cpu):.2f} s) — target ≤ 1 s ({int((risk < 1).sum())} feasible)")
    print("pedicle screws (0.8 mm labels):")
    screws(ctx, landmarks)
    print(f"peak RSS {rss_mib():.0f} MiB; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores (wall times include waiting for a core; CPU times do not)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
