"""Spinal canal and nerve roots of ``segment_mr`` against the phantom's truth.

Prints, per phantom MR case, each root's provenance (found in the foramen, or
for the S1 roots, the traversing roots at L5-S1, in the lateral recess; or
modelled), its Dice and the median / largest distance (mm) from the truth's
centre line to the centre of our root, and the Dice of canal ∪ sac against the
truth's.  Run: ``python benchmarks/seg_mr_neural.py [1.6] [1.0]`` (voxel mm).
"""

from __future__ import annotations

import sys
import time

import numpy as np


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1)


def segmented_phantom_mr(spacing_mm: float):
    """``(case, truth, mr volume, segment_mr's anatomy, its seconds)`` of the phantom MR
    at ``spacing_mm`` (seed 7), as the MR benchmarks measure it."""
    from surgplan.imaging.phantom import PhantomSpec, make_phantom, mr_volume
    from surgplan.imaging.phantom_truth import truth_anatomy
    from surgplan.imaging.segment.mr import segment_mr

    case = make_phantom(PhantomSpec(spacing_mm=(spacing_mm,) * 3, seed=7))
    vol = mr_volume(case)
    t = time.perf_counter()
    a = segment_mr(vol)
    return case, truth_anatomy(case), vol, a, time.perf_counter() - t


def run(spacing_mm: float) -> None:
    from surgplan.imaging.segment.neural import centre_line_distance_mm

    case, truth, vol, a, dt = segmented_phantom_mr(spacing_mm)
    aff = vol.ijk_to_lps
    print(f"\n== phantom MR {spacing_mm} mm: segment_mr {dt:.1f} s")
    whole = a.mask("spinal canal") | a.mask("dural sac")
    ref = truth.mask("spinal canal") | truth.mask("dural sac")
    print(f"   canal ∪ sac Dice {dice(whole, ref):.3f}; dural sac Dice "
          f"{dice(a.mask('dural sac'), truth.mask('dural sac')):.3f}")
    print(f"   {'root':22} {'provenance':>10} {'Dice':>6} {'median mm':>9} {'max mm':>7}")
    for s in a.items:
        if not s.name.startswith("nerve root") or s.name not in case.landmarks.roots:
            continue
        m = a.mask(s.name)
        lps = np.argwhere(m)[:, ::-1] @ aff[:3, :3].T + aff[:3, 3]
        d = centre_line_distance_mm(case.landmarks.roots[s.name].points_lps, lps)
        print(f"   {s.name:22} {s.provenance:>10} {dice(m, truth.mask(s.name)):6.3f} "
              f"{np.nanmedian(d):9.1f} {np.nanmax(d):7.1f}")


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["1.6", "1.0"]:
        run(float(arg))
