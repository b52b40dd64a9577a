"""Great vessels of ``segment_mr`` against the phantom's truth, and on the real sagittal T2s.

Prints, per phantom MR case, each vessel's provenance (followed as a flow void or
modelled), its Dice and precision against the truth and the median / largest
in-slice centre error (mm); then, for a field 32 mm across (a narrow sagittal MR), which
vessels are left out as outside it; then the provenance per vessel on the real scans
of ``/work/shared/data/mri-lumbar-sagittal`` (no vessel truth there) when present.
Run: ``python benchmarks/seg_mr_vessels.py [1.6] [1.0]`` (phantom voxel mm).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

VESSELS = ("aorta", "inferior vena cava", "common iliac artery left", "common iliac artery right",
           "common iliac vein left", "common iliac vein right")

from seg_mr_neural import dice  # noqa: E402 (after the path set-up)


def _centre_errors_mm(ours: np.ndarray, truth: np.ndarray, aff: np.ndarray) -> np.ndarray:
    """In-slice centre distance (mm) on every array slice (axis 0) holding both masks."""
    out = []
    for k in range(ours.shape[0]):
        if ours[k].any() and truth[k].any():
            a = np.argwhere(ours[k]).mean(0)
            b = np.argwhere(truth[k]).mean(0)
            d = aff[:3, :3] @ np.array([a[1] - b[1], a[0] - b[0], 0.0])
            out.append(float(np.linalg.norm(d)))
    return np.array(out)


def _print(a, truth=None) -> None:
    for name in VESSELS:
        if name not in {s.name for s in a.items}:
            print(f"  {name:28s} not labelled")
            continue
        s = a.structure(name)
        row = f"  {s.name:28s} {s.provenance:10s}"
        if truth is not None:
            ours, ref = a.mask(name), truth.mask(name)
            err = _centre_errors_mm(ours, ref, a.ijk_to_lps)
            prec = np.count_nonzero(ours & ref) / max(np.count_nonzero(ours), 1)
            row += (f" Dice {dice(ours, ref):.2f}  precision {prec:.2f}  centre error median "
                    f"{np.median(err):.1f} / max {np.max(err):.1f} mm" if len(err) else " no overlap")
        print(row)


def run(spacing_mm: float) -> None:
    from seg_mr_neural import segmented_phantom_mr  # same phantom MR as the root figures

    from surgplan.imaging.segment.mr import segment_mr
    from surgplan.imaging.volume import Volume

    _case, truth, vol, a, dt = segmented_phantom_mr(spacing_mm)
    print(f"phantom MR {spacing_mm} mm: segment_mr {dt:.1f} s")
    _print(a, truth)
    # a sagittal field 32 mm across, centred on the spine
    half = int(round(16.0 / vol.spacing_mm[0]))
    mid = vol.array.shape[2] // 2
    aff = vol.ijk_to_lps.copy()
    aff[:3, 3] = aff[:3, :3] @ np.array([mid - half, 0.0, 0.0]) + aff[:3, 3]
    narrow = segment_mr(Volume(np.ascontiguousarray(vol.array[:, :, mid - half:mid + half]), aff,
                               metadata=vol.metadata))
    print("  field 32 mm across:")
    _print(narrow)
    for f in narrow.findings:
        if f.startswith("outside the field of view"):
            print("   ", f)


def run_real() -> None:
    folder = Path("/work/shared/data/mri-lumbar-sagittal")
    if not folder.is_dir():
        return
    sys.path.insert(0, str(REPO / "tests" / "imaging"))
    from test_segment_mr import load_real_mr

    from surgplan.imaging.segment.mr import segment_mr

    for case in ("VB2_02", "VB3_01"):
        vol, _, _ = load_real_mr(folder, case)
        a = segment_mr(vol)
        print(f"real sagittal T2 {case} ({vol.array.shape[0]} mm across):")
        _print(a)


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["1.6"]:
        run(float(arg))
    run_real()
