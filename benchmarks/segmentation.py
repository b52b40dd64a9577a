"""Measure ``segment_ct``: agreement with reference labels, run time and peak memory.

Run: ``.venv/bin/python benchmarks/segmentation.py [--no-phantom] [--no-upsampled]``.

Prints one table per case: per structure the Dice coefficient, the centroid
error (mm, LPS), whether the name matches the reference, and the middle body
height (mm) measured the same way on ours and on the reference (plus the
reference tool's own figure where given).  Each case runs in a child process so
its peak resident memory (``ru_maxrss``) is the pipeline's, not the benchmark's.

Adding a case: write a function returning ``(Volume, reference label array on the
volume's grid, {name: label value}, {name: reported middle height mm})`` and add it
to :data:`CASES`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("SURGPLAN_TEST_DATA", REPO.parent / "shared" / "data"))

TOTALSEG_IDS = {"S1": 26, "L5": 27, "L4": 28, "L3": 29, "L2": 30, "L1": 31, "T12": 32, "T11": 33}


def case_real_ct():
    import SimpleITK as sitk

    from surgplan.imaging.volume_files import read_volume_file

    d = DATA / "ct-abdomen-lumbar"
    vol = read_volume_file(d / "ct.nii.gz")
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(d / "reference-labels.nii.gz")))
    meas = json.loads((d / "reference-spine-measures.json").read_text())["results"]
    heights = {f"L{i}": meas.get(f"vertebrae_L{i}_height_middle_mm") for i in range(1, 6)}
    return vol, ref, TOTALSEG_IDS, heights


def case_real_ct_upsampled():
    """The real CT resampled to 0.8 × 0.8 × 1.0 mm (≈ 458 × 379 × 334): a speed case."""
    import SimpleITK as sitk

    from surgplan.imaging.volume import Volume

    vol, ref, ids, heights = case_real_ct()
    img = vol.to_sitk()
    sp = (0.8, 0.8, 1.0)
    size = [int(round(n * s / t)) for n, s, t in zip(img.GetSize(), img.GetSpacing(), sp)]
    up = sitk.Resample(img, size, sitk.Transform(), sitk.sitkLinear, img.GetOrigin(), sp,
                       img.GetDirection(), -1024, sitk.sitkInt16)
    ref_img = sitk.GetImageFromArray(ref.astype(np.uint8))
    ref_img.CopyInformation(img)
    ref_up = sitk.Resample(ref_img, up, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    return Volume.from_sitk(up, metadata=vol.metadata), sitk.GetArrayFromImage(ref_up), ids, heights


def case_phantom():
    from surgplan.imaging.phantom import PhantomSpec, make_phantom

    case = make_phantom(PhantomSpec(spacing_mm=(1.0, 1.0, 1.0)))
    ids = {n: v for v, n in case.label_names.items() if n[:1] in "TLS" and n[1:].isdigit()}
    return case.ct, case.labels, ids, {}


CASES = {
    "real CT 3 mm (TotalSegmentator labels)": case_real_ct,
    "real CT upsampled 0.8×0.8×1 mm": case_real_ct_upsampled,
    "phantom 1 mm": case_phantom,
}


def middle_height_mm(mask: np.ndarray, aff: np.ndarray, origin, si) -> float:
    """Extent (mm) along ``si`` of ``mask`` within 6 mm of the SI axis through ``origin``."""
    idx = np.argwhere(mask)[:, ::-1]
    if len(idx) == 0:
        return float("nan")
    p = idx @ aff[:3, :3].T + aff[:3, 3] - origin
    a = p @ si
    r = np.linalg.norm(p - a[:, None] * si, axis=1)
    a = a[r < 6.0]
    if len(a) == 0:
        return float("nan")
    step = float(np.linalg.norm(aff[:3, :3] @ si))
    return float(a.max() - a.min() + step)


def run_case(name: str, q) -> None:
    from surgplan.imaging.segment import segment_ct

    vol, ref, ids, heights = CASES[name]()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    a = segment_ct(vol)
    dt = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    aff = vol.ijk_to_lps
    rows = []
    for vname, value in sorted(ids.items(), key=lambda kv: -kv[1]):
        r = ref == value
        if not r.any():
            continue
        rc = np.argwhere(r).mean(0)[::-1] @ aff[:3, :3].T + aff[:3, 3]
        if vname in a.vertebra_names:
            s = a.structure(vname)
            m = a.vertebrae == s.label
            dice = 2 * np.count_nonzero(m & r) / (np.count_nonzero(m) + np.count_nonzero(r))
            err = float(np.linalg.norm(s.centroid_lps - rc)) if s.centroid_lps is not None else np.nan
            # named correctly: our label of that name overlaps this reference label most
            best = max(a.vertebra_names, key=lambda n: np.count_nonzero(r & a.mask(n)))
            ok = best == vname
            h = h_ref = float("nan")
            if s.frame is not None:
                h = middle_height_mm(m, aff, s.frame.origin_lps, s.frame.si)
                h_ref = middle_height_mm(r, aff, s.frame.origin_lps, s.frame.si)
            rows.append((vname, dice, err, ok, s.provisional, h, h_ref, heights.get(vname)))
        else:
            rows.append((vname, float("nan"), float("nan"), False, None, np.nan, np.nan,
                         heights.get(vname)))
    q.put({"name": name, "shape": vol.array.shape, "spacing": vol.spacing_mm.tolist(),
           "time_s": dt, "rss_mb": rss / 1024.0, "rss_before_mb": rss0 / 1024.0, "rows": rows,
           "findings": list(a.findings), "names": list(a.names)})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-phantom", action="store_true")
    ap.add_argument("--no-upsampled", action="store_true")
    args = ap.parse_args(argv)
    names = [n for n in CASES if not (args.no_phantom and "phantom" in n)
             and not (args.no_upsampled and "upsampled" in n)]
    ctx = mp.get_context("spawn")
    for name in names:
        if "real" in name and not (DATA / "ct-abdomen-lumbar").is_dir():
            print(f"\n== {name}: skipped, no data at {DATA}")
            continue
        q = ctx.Queue()
        p = ctx.Process(target=run_case, args=(name, q))
        p.start()
        try:
            res = q.get(timeout=1800)
        except Exception as exc:  # the child died: say so, go on with the next case
            print(f"\n== {name}: failed ({exc!r}); exit code {p.exitcode}")
            p.join()
            continue
        p.join()
        print(f"\n== {res['name']}  shape {res['shape']} (k, j, i), spacing {np.round(res['spacing'], 2).tolist()} mm")
        print(f"   segment_ct: {res['time_s']:.1f} s, peak RSS {res['rss_mb']:.0f} MB "
              f"(after loading {res['rss_before_mb']:.0f} MB)")
        print(f"   {'structure':10} {'Dice':>6} {'centroid mm':>11} {'named':>6} {'prov.':>6} "
              f"{'H ours':>7} {'H ref':>6} {'H tool':>7}")
        for v, dice, err, ok, prov, h, hr, ht in res["rows"]:
            print(f"   {v:10} {dice:6.3f} {err:11.1f} {('yes' if ok else 'NO'):>6} "
                  f"{('-' if prov is None else ('yes' if prov else 'no')):>6} {h:7.1f} {hr:6.1f} "
                  f"{('' if ht is None else f'{ht:.1f}'):>7}")
        for f in res["findings"]:
            print(f"   finding: {f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
