"""Where the disc masks go wrong: false-positive and false-negative voxels per disc by direction.

Run: ``.venv/bin/python benchmarks/seg_discs.py [--case default|noise|tilt ...]``
(phantom cases of ``benchmarks/segmentation.py``; each in a child process).

For every disc of the phantom, each wrong voxel is put in one class by where it lies
in the disc's own frame (the reference disc's centroid, the nearest found disc
plane's normal, antero-posterior from the patient's P axis):

- ``endplate↑`` / ``endplate↓``: over the reference disc's footprint (shrunk by
  1 mm), above or below the mid-plane: the disc's height is wrong;
- ``anterior`` / ``lateral`` / ``posterior``: beyond the footprint, by the angle of
  its in-plane direction (±45° about anterior or posterior, else lateral): the rim
  is wrong there.

Printed per disc: Dice, reference size, and the FP and FN counts per class.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

CLASSES = ("endplate↑", "endplate↓", "anterior", "lateral", "posterior")


def _cases():
    import segmentation as seg

    return {
        "default": ("phantom 0.8×0.8×1 mm, noise 15 HU (default)", lambda: seg.case_phantom()),
        "noise": ("phantom 1 mm, noise 40 HU",
                  lambda: seg.case_phantom(spacing_mm=(1.0, 1.0, 1.0), noise_hu=40.0, seed=3)),
        "tilt": ("phantom 1 mm, gantry tilt 15° (DICOM written, reloaded, resampled)",
                 seg.case_phantom_tilted),
    }


def error_by_direction(found: np.ndarray, ref: np.ndarray, ijk_to_lps: np.ndarray,
                       normal: np.ndarray, cell_mm: float = 0.5) -> dict:
    """FP and FN voxel counts of one disc per class (see the module doc).

    Parameters
    ----------
    found, ref : numpy.ndarray of bool
        The segmented and the reference disc on the volume's grid ``[k, j, i]``.
    ijk_to_lps : numpy.ndarray
        The volume's 4 × 4 index → LPS (mm) matrix.
    normal : numpy.ndarray
        Unit normal of the disc's mid-plane (LPS).
    cell_mm : float
        Cell of the in-plane grid on which the reference footprint is drawn (mm).
    """
    from scipy import ndimage as ndi

    aff = np.asarray(ijk_to_lps, float)

    def lps(mask):
        return np.argwhere(mask)[:, ::-1] @ aff[:3, :3].T + aff[:3, 3]

    n = np.asarray(normal, float) / np.linalg.norm(normal)
    ap = np.array([0.0, 1.0, 0.0]) - n[1] * n
    ap /= np.linalg.norm(ap)
    lr = np.cross(ap, n)
    tp = lps(ref)
    centre = tp.mean(0)
    half = int(np.ceil(80.0 / cell_mm))

    def plane(p):
        q = p - centre
        a = np.round(q @ lr / cell_mm).astype(int)
        b = np.round(q @ ap / cell_mm).astype(int)
        return a, b, q @ n

    a, b, _ = plane(tp)
    fp = np.zeros((2 * half + 1,) * 2, bool)
    ok = (np.abs(a) <= half) & (np.abs(b) <= half)
    fp[a[ok] + half, b[ok] + half] = True
    fp = ndi.binary_fill_holes(ndi.binary_closing(fp, iterations=2))
    inner = ndi.binary_erosion(fp, iterations=max(1, int(round(1.0 / cell_mm))))
    out = {}
    for kind, wrong in (("FP", found & ~ref), ("FN", ref & ~found)):
        a, b, w = plane(lps(wrong))
        ok = (np.abs(a) <= half) & (np.abs(b) <= half)
        over = np.zeros(len(a), bool)
        over[ok] = inner[a[ok] + half, b[ok] + half]
        ang = np.degrees(np.arctan2(np.abs(a), -b))  # 0° anterior, 180° posterior
        out[kind] = dict(zip(CLASSES, (
            int(np.count_nonzero(over & (w > 0))), int(np.count_nonzero(over & (w <= 0))),
            int(np.count_nonzero(~over & (ang < 45))),
            int(np.count_nonzero(~over & (ang >= 45) & (ang <= 135))),
            int(np.count_nonzero(~over & (ang > 135))))))
    return out


def run_case(key: str, q) -> None:
    from surgplan.imaging.segment import segment_ct

    title, make = _cases()[key]
    vol, ref, ids, _ = make()
    a = segment_ct(vol)
    rows = []
    for name, value in sorted(ids.items()):
        if not name.startswith("disc "):
            continue
        r = ref == value
        if not r.any():
            continue
        if name not in a.names:
            rows.append((name, float("nan"), int(r.sum()), None))
            continue
        m = a.mask(name)
        dice = 2 * np.count_nonzero(m & r) / (np.count_nonzero(m) + np.count_nonzero(r))
        # the disc's normal: the mean SI axis of the two vertebrae it lies between
        upper, lower = name[5:].split("-")
        axes = [a.structure(v).frame.si for v in (upper, lower)
                if v in a.names and a.structure(v).frame is not None]
        normal = np.mean(axes, axis=0) if axes else np.array([0.0, 0.0, 1.0])
        rows.append((name, dice, int(r.sum()), error_by_direction(m, r, vol.ijk_to_lps, normal)))
    q.put((title, rows))


def print_case(title: str, rows: list) -> None:
    print(f"\n== discs, {title}: wrong voxels by where they lie")
    head = " ".join(f"{c:>10}" for c in CLASSES)
    print(f"   {'disc':14} {'Dice':>6} {'voxels':>7}    FP: {head}    FN: {head}")
    for name, dice, nref, err in rows:
        if err is None:
            print(f"   {name:14} {'—':>6} {nref:7d}    not found")
            continue
        fp = " ".join(f"{err['FP'][c]:10d}" for c in CLASSES)
        fn = " ".join(f"{err['FN'][c]:10d}" for c in CLASSES)
        print(f"   {name:14} {dice:6.3f} {nref:7d}        {fp}        {fn}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=("default", "noise", "tilt"), action="append")
    args = ap.parse_args(argv)
    ctx = mp.get_context("spawn")
    for key in args.case or ("default", "noise", "tilt"):
        q = ctx.Queue()
        p = ctx.Process(target=run_case, args=(key, q))
        p.start()
        try:
            title, rows = q.get(timeout=1800)
        except Exception as exc:  # the child died: say so, go on with the next case
            print(f"\n== discs, {key}: failed ({exc!r}); exit code {p.exitcode}")
            p.join()
            continue
        p.join()
        print_case(title, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
