"""Measure ``segment_ct``: agreement with reference labels, run time and peak memory.

Run: ``.venv/bin/python benchmarks/segmentation.py [--no-phantom] [--no-upsampled]``.

Cases: the real CT against TotalSegmentator's labels (3 mm, and resampled to
512 × 512 × 300 voxels for speed and memory); the phantom against its exact
labels at the default 0.8 × 0.8 × 1 mm and noise, with 40 HU noise, and written
as a gantry-tilted DICOM series and loaded back.  Issue 3's targets: phantom
Dice ≥ 0.93 per vertebra, discs ≥ 0.85, centroid ≤ 2 mm, names 100 % right; real
CT Dice ≥ 0.85 for L1–L5; ≤ 30 s and ≤ 4 GB for 512 × 512 × 300 on 2 cores.

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
    """The real CT resampled (linear) to 512 × 512 × 300 voxels (≈ 0.71 × 0.59 × 1.12 mm).

    The size of a routine lumbar CT: the speed and memory case of issue 3.
    """
    import SimpleITK as sitk

    from surgplan.imaging.volume import Volume

    vol, ref, ids, heights = case_real_ct()
    img = vol.to_sitk()
    size = (512, 512, 300)
    sp = [n * s / t for n, s, t in zip(img.GetSize(), img.GetSpacing(), size)]
    up = sitk.Resample(img, size, sitk.Transform(), sitk.sitkLinear, img.GetOrigin(), sp,
                       img.GetDirection(), -1024, sitk.sitkInt16)
    ref_img = sitk.GetImageFromArray(ref.astype(np.uint8))
    ref_img.CopyInformation(img)
    ref_up = sitk.Resample(ref_img, up, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    return Volume.from_sitk(up, metadata=vol.metadata), sitk.GetArrayFromImage(ref_up), ids, heights


def _phantom_ids(case) -> dict:
    """Vertebra and disc names of a phantom → label values."""
    return {n: v for v, n in case.label_names.items()
            if (n[:1] in "TLS" and n[1:].isdigit()) or n.startswith("disc ")}


def case_phantom(**spec):
    from surgplan.imaging.phantom import PhantomSpec, make_phantom

    case = make_phantom(PhantomSpec(**spec))
    return case.ct, case.labels, _phantom_ids(case), {}


def case_phantom_tilted(tilt_deg: float = 15.0):
    """The 1 mm phantom written as a gantry-tilted DICOM series and loaded back.

    The loader resamples the oblique slices onto a regular grid; the exact
    labels are resampled (nearest neighbour) onto that same grid.
    """
    import tempfile

    import SimpleITK as sitk

    from surgplan.imaging.dicom.writer import write_series
    from surgplan.imaging.loader import load_volume
    from surgplan.imaging.phantom import PhantomSpec, make_phantom

    case = make_phantom(PhantomSpec(spacing_mm=(1.0, 1.0, 1.0)))
    with tempfile.TemporaryDirectory() as d:
        write_series(case.ct, d, modality="CT", gantry_tilt_deg=tilt_deg)
        vol = load_volume(d)
    lab = sitk.GetImageFromArray(case.labels.astype(np.uint16))
    lab.CopyInformation(case.ct.to_sitk())
    ref = sitk.Resample(lab, vol.to_sitk(), sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    return vol, sitk.GetArrayFromImage(ref), _phantom_ids(case), {}


CASES = {
    "real CT 3 mm (TotalSegmentator labels)": case_real_ct,
    "real CT upsampled to 512×512×300": case_real_ct_upsampled,
    "phantom 0.8×0.8×1 mm, noise 15 HU (default)": lambda: case_phantom(),
    "phantom 1 mm, noise 40 HU": lambda: case_phantom(spacing_mm=(1.0, 1.0, 1.0), noise_hu=40.0,
                                                      seed=3),
    "phantom 1 mm, gantry tilt 15° (DICOM written, reloaded, resampled)": case_phantom_tilted,
}

#: What a user would otherwise run (TotalSegmentator on CPU, issue 3).
TOTALSEGMENTATOR_CPU = "TotalSegmentator on CPU: ≈ 1 min (--fast, 3 mm), 40–50 min (full resolution)"


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
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    rss0 = r0.ru_maxrss
    t = time.perf_counter()
    a = segment_ct(vol)
    dt = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    rss = r1.ru_maxrss
    # CPU seconds (all threads): on a shared machine the wall time says more
    # about the other processes than about the pipeline
    cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    aff = vol.ijk_to_lps
    rows = []
    for vname, value in sorted(ids.items(), key=lambda kv: (kv[0].startswith("disc"), -kv[1])):
        r = ref == value
        if not r.any():
            continue
        rc = np.argwhere(r).mean(0)[::-1] @ aff[:3, :3].T + aff[:3, 3]
        if vname in a.names:
            s = a.structure(vname)
            m = a.mask(vname)
            dice = 2 * np.count_nonzero(m & r) / (np.count_nonzero(m) + np.count_nonzero(r))
            err = float(np.linalg.norm(s.centroid_lps - rc)) if s.centroid_lps is not None else np.nan
            # named correctly: our label of that name overlaps this reference label most
            pool = a.vertebra_names if vname in a.vertebra_names else \
                [n for n in a.names if n.startswith("disc ")]
            best = max(pool, key=lambda n: np.count_nonzero(r & a.mask(n)))
            ok = best == vname
            h = h_ref = float("nan")
            if s.frame is not None and vname in a.vertebra_names:
                h = middle_height_mm(m, aff, s.frame.origin_lps, s.frame.si)
                h_ref = middle_height_mm(r, aff, s.frame.origin_lps, s.frame.si)
            rows.append((vname, dice, err, ok, s.provisional, h, h_ref, heights.get(vname)))
        else:
            rows.append((vname, float("nan"), float("nan"), False, None, np.nan, np.nan,
                         heights.get(vname)))
    q.put({"name": name, "shape": vol.array.shape, "spacing": vol.spacing_mm.tolist(),
           "cpus": len(os.sched_getaffinity(0)), "load": os.getloadavg()[0], "cpu_s": cpu,
           "time_s": dt, "rss_mb": rss / 1024.0, "rss_before_mb": rss0 / 1024.0, "rows": rows,
           "findings": list(a.findings), "names": list(a.names)})


# --- vertebral parts, dural sac, canal and nerve roots (phantom ground truth) ---------------
PARTS_NEURAL_CASES = {
    "phantom 1 mm": dict(spacing_mm=(1.0, 1.0, 1.0)),
    "phantom 1 mm, noise 40 HU": dict(spacing_mm=(1.0, 1.0, 1.0), noise_hu=40.0, seed=3),
    "phantom 1.6 mm (test grid)": dict(spacing_mm=(1.6, 1.6, 1.6), noise_hu=15.0, seed=7),
    "phantom 1 mm, gantry tilt 15° (DICOM written, reloaded, resampled)":
        dict(spacing_mm=(1.0, 1.0, 1.0), tilt_deg=15.0),
}


def parts_neural_figures(a, truth, case) -> dict:
    """Per-part Dice, sac/canal Dice and root centre-line distances of ``a`` against the truth.

    Segmented vertebrae are matched to the true one they overlap most, so the part
    figures measure the sub-region step, not the naming; the roots are compared with
    the true root of the matched vertebra and side.
    """
    from surgplan.imaging.segment.neural import centre_line_distance_mm, resample_polyline
    from surgplan.imaging.structures import PART_NAMES

    match = {}
    for nm in a.vertebra_names:
        tv = np.bincount(truth.vertebrae[a.mask(nm)].ravel(), minlength=len(truth.items) + 1)
        tv[0] = 0
        if tv.any():
            match[nm] = truth.vertebra_names[int(np.argmax(tv)) - 1]
    parts = {}
    for nm, tn in match.items():
        ms, mt = a.mask(nm), truth.mask(tn)
        for code, pn in PART_NAMES.items():
            s, t = ms & (a.parts == code), mt & (truth.parts == code)
            if t.any() or s.any():
                parts.setdefault(pn, {})[tn] = 2 * np.count_nonzero(s & t) / (
                    np.count_nonzero(s) + np.count_nonzero(t))

    def dice(x, y):
        return 2 * np.count_nonzero(x & y) / max(np.count_nonzero(x) + np.count_nonzero(y), 1)

    sac_t = truth.mask("dural sac")
    roots_t = np.zeros_like(sac_t)
    for it in truth.items:
        if it.kind == "nerve root":
            roots_t |= truth.mask(it.name)
    canal_t = truth.mask("spinal canal") | sac_t
    sac = a.mask("dural sac") if "dural sac" in a.names else np.zeros_like(sac_t)
    canal = sac.copy()
    if "spinal canal" in a.names:
        canal |= a.mask("spinal canal")
    for it in a.items:
        if it.kind == "nerve root":
            canal |= a.mask(it.name) & (canal_t | roots_t)  # the in-canal part of the roots
    roots = []
    for it in a.items:
        if it.kind != "nerve root":
            continue
        _, _, v, side = it.name.split()
        tname = f"nerve root {match.get(v, v)} {side}"
        tl = case.landmarks.roots.get(tname)
        if tl is None:
            continue
        # an exiting root from the dura to the foramen's exit; an S1 root (the traversing
        # root at L5-S1) from the sac to the foot of the lateral recess, its stretch in the
        # canal (beyond it the phantom's solid sacrum holds no root voxels)
        tp = resample_polyline(np.asarray(tl.points_lps, float)[:3 if match.get(v, v) == "S1" else 4], 1.0)
        pts = np.argwhere(a.mask(it.name))[:, ::-1] @ a.ijk_to_lps[:3, :3].T + a.ijk_to_lps[:3, 3]
        d_for = centre_line_distance_mm(tp, pts)
        roots.append((it.name, tname, float(np.nanmean(d_for)) if np.isfinite(d_for).any()
                      else np.nan, float(np.nanmax(d_for)) if np.isfinite(d_for).any() else np.nan,
                      float(np.mean(~np.isfinite(d_for)))))
    foramina = []  # the true foramen of the matched levels against ours
    for it in a.items:
        if it.kind != "foramen":
            continue
        _, levels, side = it.name.split()
        upper, lower = levels.split("-")
        tname = f"foramen {match.get(upper, upper)}-{match.get(lower, lower)} {side}"
        t = truth.mask(tname) if tname in truth.names else np.zeros_like(sac_t)
        foramina.append((it.name, dice(a.mask(it.name), t), it.provenance))
    return {"parts": parts, "sac_dice": dice(sac, sac_t), "canal_dice": dice(canal, canal_t),
            "sac_provenance": a.structure("dural sac").provenance if "dural sac" in a.names else "-",
            "roots": roots, "match": match, "foramina": foramina}


def run_parts_neural(name: str, q) -> None:
    from surgplan.imaging.phantom import PhantomSpec, make_phantom
    from surgplan.imaging.phantom_truth import truth_anatomy
    from surgplan.imaging.segment import segment_ct

    spec = dict(PARTS_NEURAL_CASES[name])
    tilt = spec.pop("tilt_deg", 0.0)
    case = make_phantom(PhantomSpec(**spec))
    truth = truth_anatomy(case)
    vol = case.ct
    if tilt:
        vol, truth = _tilted(case, truth, tilt)
    a = segment_ct(vol)
    q.put({"name": name, **parts_neural_figures(a, truth, case)})


def _tilted(case, truth, tilt_deg: float):
    """The phantom CT written as a gantry-tilted DICOM series, loaded back (resampled by
    the loader), and its exact anatomy resampled (nearest neighbour) onto that grid."""
    import dataclasses
    import tempfile

    import SimpleITK as sitk

    from surgplan.imaging.dicom.writer import write_series
    from surgplan.imaging.loader import load_volume

    with tempfile.TemporaryDirectory() as d:
        write_series(case.ct, d, modality="CT", gantry_tilt_deg=tilt_deg)
        vol = load_volume(d)
    ref = vol.to_sitk()

    def onto(arr, dtype):
        img = sitk.GetImageFromArray(np.ascontiguousarray(arr).astype(dtype))
        img.CopyInformation(case.ct.to_sitk())
        out = sitk.Resample(img, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
        return sitk.GetArrayFromImage(out).astype(dtype)

    moved = dataclasses.replace(
        truth, shape=vol.array.shape, ijk_to_lps=vol.ijk_to_lps,
        vertebrae=onto(truth.vertebrae, np.uint16), structures=onto(truth.structures, np.uint16),
        parts=onto(truth.parts, np.uint8))
    return vol, moved


def print_parts_neural(res: dict) -> None:
    print(f"\n== parts, canal, dural sac, roots: {res['name']}")
    print("   vertebrae matched to the truth by overlap: "
          + ", ".join(f"{k}→{v}" for k, v in res["match"].items()))
    levels = list(res["match"].values())
    print(f"   {'part Dice':34}" + "".join(f"{lv:>6}" for lv in levels) + f"{'mean':>7}")
    for pn, per in res["parts"].items():
        vals = [per.get(lv) for lv in levels]
        got = [v for v in vals if v is not None]
        print(f"   {pn:34}" + "".join("     -" if v is None else f"{v:6.2f}" for v in vals)
              + f"{np.mean(got):7.2f}")
    print(f"   dural sac Dice {res['sac_dice']:.3f} ({res['sac_provenance']}; target ≥ 0.85), "
          f"canal incl. sac Dice {res['canal_dice']:.3f}")
    print("   roots: distance (mm) from the true centre line (exiting roots: dura → foramen "
          "exit; S1: sac → foot of the lateral recess) to the centre of ours, mean / max, and "
          "the share of it ours does not cover")
    for ours, tn, mean, mx, miss in res["roots"]:
        print(f"     {ours:22} vs true {tn:22} {mean:5.1f} / {mx:5.1f}   {miss:4.0%}")
    print("   neural foramina: Dice against the phantom's (same rule, exact walls), provenance")
    for name, d, prov in res.get("foramina", []):
        print(f"     {name:24} {d:6.3f}  {prov}")


def main_parts_neural(names=None) -> None:
    """Run the parts / neural cases, each in its own process."""
    ctx = mp.get_context("spawn")
    for name in names or PARTS_NEURAL_CASES:
        q = ctx.Queue()
        p = ctx.Process(target=run_parts_neural, args=(name, q))
        p.start()
        try:
            res = q.get(timeout=1800)
        except Exception as exc:
            print(f"\n== parts/neural {name}: failed ({exc!r}); exit code {p.exitcode}")
            p.join()
            continue
        p.join()
        print_parts_neural(res)


# --- structures around the spine: skin, body, ilium, psoas, vessels, kidneys, bowel ----------
SURROUNDING_NAMES = (
    "skin", "subcutaneous fat", "body", "ilium left", "ilium right", "psoas left", "psoas right",
    "aorta", "inferior vena cava", "common iliac artery left", "common iliac artery right",
    "common iliac vein left", "common iliac vein right", "kidney left", "kidney right", "bowel",
)
SURROUNDING_CASES = {
    "phantom 1.6 mm, contrast": dict(spacing_mm=(1.6, 1.6, 1.6), noise_hu=15.0, seed=7),
    "phantom 1.6 mm, no contrast": dict(spacing_mm=(1.6, 1.6, 1.6), noise_hu=15.0, seed=7,
                                        contrast=False),
    "phantom 1 mm, contrast, noise 40 HU": dict(spacing_mm=(1.0, 1.0, 1.0), noise_hu=40.0, seed=3),
    "real CT 3 mm (no reference)": None,
}


def run_surroundings(name: str, q) -> None:
    """Per structure: Dice against the phantom truth (or none), provenance, volume (ml),
    and the lateral / anterior offset (mm) of its centroid from the L3 body's."""
    from surgplan.imaging.phantom import PhantomSpec, make_phantom
    from surgplan.imaging.phantom_truth import truth_anatomy
    from surgplan.imaging.segment import segment_ct

    spec = SURROUNDING_CASES[name]
    if spec is None:
        from surgplan.imaging.volume_files import read_volume_file

        vol, truth = read_volume_file(DATA / "ct-abdomen-lumbar" / "ct.nii.gz"), None
    else:
        case = make_phantom(PhantomSpec(**spec))
        vol, truth = case.ct, truth_anatomy(case)
    t = time.perf_counter()
    a = segment_ct(vol)
    dt = time.perf_counter() - t
    ml = float(np.prod(a.ijk_spacing_mm)) / 1000.0
    l3 = a.structure("L3").centroid_lps if "L3" in a.names else None
    rows = []
    for nm in SURROUNDING_NAMES:
        d = float("nan")
        if truth is not None and nm in a.names and nm in truth.names:
            m, r = a.mask(nm), truth.mask(nm)
            d = 2 * np.count_nonzero(m & r) / (np.count_nonzero(m) + np.count_nonzero(r))
        if nm not in a.names:
            rows.append((nm, d, "not found", 0.0, float("nan"), float("nan")))
            continue
        s = a.structure(nm)
        off = (s.centroid_lps - l3) if l3 is not None else np.full(3, np.nan)
        rows.append((nm, d, s.provenance, np.count_nonzero(a.mask(nm)) * ml, float(off[0]),
                     float(-off[1])))
    q.put({"name": name, "time_s": dt, "rows": rows,
           "findings": [f for f in a.findings if any(w in f for w in (
               "aorta", "vein", "kidney", "bowel", "ilium", "psoas", "bifurcation"))]})


def main_surroundings(names=None) -> None:
    """Run the surroundings cases, each in its own process, and print one table per case."""
    ctx = mp.get_context("spawn")
    for name in names or SURROUNDING_CASES:
        if SURROUNDING_CASES[name] is None and not (DATA / "ct-abdomen-lumbar").is_dir():
            print(f"\n== surroundings, {name}: skipped, no data at {DATA}")
            continue
        q = ctx.Queue()
        p = ctx.Process(target=run_surroundings, args=(name, q))
        p.start()
        try:
            res = q.get(timeout=1800)
        except Exception as exc:
            print(f"\n== surroundings, {name}: failed ({exc!r}); exit code {p.exitcode}")
            p.join()
            continue
        p.join()
        print(f"\n== surroundings: {res['name']}  (segment_ct {res['time_s']:.1f} s)")
        print(f"   {'structure':26} {'Dice':>6} {'provenance':>10} {'ml':>7} "
              f"{'left of L3':>10} {'ahead of L3':>11}")
        for nm, d, prov, vol_ml, lat, ahead in res["rows"]:
            print(f"   {nm:26} {d:6.3f} {prov:>10} {vol_ml:7.1f} {lat:10.1f} {ahead:11.1f}")
        for f in res["findings"]:
            print(f"   finding: {f}")


# --- MRI: vertebral bodies on T2 (segment_mr) -------------------------------------------------
#: Label ids of the manual body masks in anatomical order (README of mri-lumbar-sagittal).
MRI_LEVELS = {
    "VB2_02": {7: "T11", 6: "T12", 5: "L1", 4: "L2", 3: "L3", 1: "L4", 2: "L5"},
    "VB3_01": {1: "L1", 2: "L2", 3: "L3", 4: "L4", 5: "L5"},
}
MRI_CASES = ("real MR VB2_02", "real MR VB3_01", "phantom MR 1.6 mm", "phantom MR 1 mm",
             "phantom MR axial 0.8x0.8x4 mm", "phantom MR sagittal 4 mm slices")


def _thick_slices(vol, labels: np.ndarray, spacing_mm: tuple):
    """``vol`` re-acquired at ``spacing_mm`` (x, y, z): each slice averages its
    thickness (Gaussian slice profile, FWHM = the spacing), as a 2D multi-slice
    sequence does; ``labels`` follow by nearest neighbour."""
    import SimpleITK as sitk

    from surgplan.imaging.volume import Volume

    img = sitk.Cast(vol.to_sitk(), sitk.sitkFloat32)
    sigma = [max(0.01, (t - s) / 2.355) for s, t in zip(img.GetSpacing(), spacing_mm)]
    img = sitk.SmoothingRecursiveGaussian(img, sigma)
    size = [int(round(n * s / t)) for n, s, t in zip(img.GetSize(), img.GetSpacing(), spacing_mm)]
    out = sitk.Resample(img, size, sitk.Transform(), sitk.sitkLinear, img.GetOrigin(),
                        spacing_mm, img.GetDirection(), 0.0, sitk.sitkFloat32)
    lab = sitk.GetImageFromArray(labels)
    lab.CopyInformation(vol.to_sitk())
    lab = sitk.Resample(lab, out, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    return Volume.from_sitk(out, metadata=vol.metadata), sitk.GetArrayFromImage(lab)


def case_mri(name: str):
    """``(Volume, reference label array, {label value: level}, note)`` of an MRI case.

    A label map one empty slice larger than its image (VB2_02: 77 against 76
    sagittal slices) is cropped by that slice, and the note says so.
    """
    import dataclasses

    import SimpleITK as sitk

    if name.startswith("phantom"):
        from surgplan.imaging.phantom import PhantomSpec, make_phantom, mr_volume
        from surgplan.imaging.phantom_truth import truth_anatomy

        sp = 1.6 if "1.6" in name else 1.0
        case = make_phantom(PhantomSpec(spacing_mm=(sp, sp, sp), seed=7))
        truth = truth_anatomy(case)
        ref = np.zeros(case.ct.array.shape, np.uint8)
        levels = {}
        for value, level in enumerate(truth.vertebra_names, start=1):
            ref[truth.part_mask("body", level)] = value
            levels[value] = level
        vol, note = mr_volume(case), "reference: the phantom's exact vertebral bodies"
        if "axial" in name:
            vol, ref = _thick_slices(vol, ref, (0.8, 0.8, 4.0))
            note += " (resampled with the image)"
        elif "sagittal" in name:
            vol, ref = _thick_slices(vol, ref, (4.0, 0.8, 0.8))
            note += " (resampled with the image)"
        return vol, ref, levels, note
    from surgplan.imaging.volume_files import read_volume_file

    case = name.split()[-1]
    d = DATA / "mri-lumbar-sagittal"
    vol = read_volume_file(d / f"{case}_img.nii.gz")
    vol = vol.replace(metadata=dataclasses.replace(vol.metadata, modality="MR"))
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(d / f"{case}_label.nii.gz")))
    note = "reference: manual body masks"
    if ref.shape != vol.array.shape:
        axis = int(np.argmax(np.array(ref.shape) - np.array(vol.array.shape)))
        if ref.take(-1, axis=axis).any():
            raise ValueError(f"{case}: label map {ref.shape} does not fit image {vol.array.shape}")
        note += (f"; the label map has {ref.shape[axis]} slices along array axis {axis}, the "
                 f"image {vol.array.shape[axis]}: the last (empty) slice was cropped")
        ref = np.delete(ref, -1, axis=axis)
    return vol, ref, MRI_LEVELS[case], note


def run_mri(name: str, q) -> None:
    from surgplan.imaging.segment.mr import segment_mr

    vol, ref, levels, note = case_mri(name)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    a = segment_mr(vol)
    dt = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    aff = vol.ijk_to_lps
    rows = []
    for value, level in levels.items():
        r = ref == value
        # match by overlap: our body that covers most of the reference body
        counts = np.bincount(a.vertebrae[r], minlength=len(a.vertebra_names) + 1)
        counts[0] = 0
        if not counts.any():
            rows.append((level, "-", float("nan"), float("nan")))
            continue
        label = int(np.argmax(counts))
        ours = next(s for s in a.items if s.map == "vertebrae" and s.label == label)
        m = a.vertebrae == label
        dice = 2 * np.count_nonzero(m & r) / (np.count_nonzero(m) + np.count_nonzero(r))
        rc = aff[:3, :3] @ np.argwhere(r).mean(0)[::-1] + aff[:3, 3]
        err = float(np.linalg.norm(ours.centroid_lps - rc))
        rows.append((level, ours.name + ("?" if ours.provisional else ""), dice, err))
    q.put({"name": name, "shape": vol.array.shape, "spacing": vol.spacing_mm.tolist(),
           "cpus": len(os.sched_getaffinity(0)),
           "time_s": dt, "rss_mb": rss / 1024.0, "rows": rows, "note": note,
           "names": list(a.names), "findings": list(a.findings)})


def main_mri(names=None) -> None:
    """Vertebral-body Dice (matched by overlap), names and time of segment_mr per case."""
    ctx = mp.get_context("spawn")
    for name in names or MRI_CASES:
        if name.startswith("real") and not (DATA / "mri-lumbar-sagittal").is_dir():
            print(f"\n== MRI {name}: skipped, no data at {DATA}")
            continue
        q = ctx.Queue()
        p = ctx.Process(target=run_mri, args=(name, q))
        p.start()
        try:
            res = q.get(timeout=1800)
        except Exception as exc:
            print(f"\n== MRI {name}: failed ({exc!r}); exit code {p.exitcode}")
            p.join()
            continue
        p.join()
        print(f"\n== MRI {res['name']}  shape {res['shape']} (k, j, i), spacing "
              f"{np.round(res['spacing'], 2).tolist()} mm")
        print(f"   segment_mr: {res['time_s']:.1f} s, peak RSS {res['rss_mb']:.0f} MB; "
              f"{res['note']}")
        print(f"   {'reference':10} {'ours':>6} {'Dice':>6} {'centroid mm':>11}")
        for level, ours, dice, err in res["rows"]:
            print(f"   {level:10} {ours:>6} {dice:6.3f} {err:11.1f}")
        dices = [r[2] for r in res["rows"] if np.isfinite(r[2])]
        named = sum(r[0] == r[1].rstrip("?") for r in res["rows"])
        print(f"   mean body Dice {np.mean(dices) if dices else float('nan'):.3f} over "
              f"{len(dices)}/{len(res['rows'])} bodies; named as the reference: "
              f"{named}/{len(res['rows'])}")
        print(f"   structures: {', '.join(res['names'])}")
        for f in res["findings"]:
            print(f"   finding: {f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-phantom", action="store_true")
    ap.add_argument("--no-upsampled", action="store_true")
    ap.add_argument("--parts-neural", choices=("also", "only", "no"), default="also",
                    help="vertebral parts, dural sac and root figures on the phantom")
    ap.add_argument("--surroundings", choices=("also", "only", "no"), default="also",
                    help="skin, ilium, psoas, vessels, kidneys and bowel figures")
    ap.add_argument("--mri", choices=("also", "only", "no"), default="also",
                    help="vertebral bodies on T2 MR (real sagittal scans and the phantom)")
    args = ap.parse_args(argv)
    if args.mri == "only":
        main_mri()
        return 0
    if args.surroundings == "only":
        main_surroundings()
        return 0
    if args.parts_neural == "only":
        main_parts_neural()
        return 0
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
        nvox = int(np.prod(res["shape"]))
        print(f"   segment_ct (whole pipeline, {res['cpus']} cores, load average {res['load']:.1f}, "
              f"{nvox / 1e6:.0f} M voxels): "
              f"{res['time_s']:.1f} s wall, {res['cpu_s']:.1f} s CPU, peak RSS {res['rss_mb']:.0f} MB (after loading "
              f"{res['rss_before_mb']:.0f} MB); target ≤ 30 s, ≤ 4 GB for 512×512×300")
        print(f"   beside: {TOTALSEGMENTATOR_CPU}")
        print(f"   {'structure':14} {'Dice':>6} {'centroid mm':>11} {'named':>6} {'prov.':>6} "
              f"{'H ours':>7} {'H ref':>6} {'H tool':>7}")
        for v, dice, err, ok, prov, h, hr, ht in res["rows"]:
            print(f"   {v:14} {dice:6.3f} {err:11.1f} {('yes' if ok else 'NO'):>6} "
                  f"{('-' if prov is None else ('yes' if prov else 'no')):>6} {h:7.1f} {hr:6.1f} "
                  f"{('' if ht is None else f'{ht:.1f}'):>7}")
        for f in res["findings"]:
            print(f"   finding: {f}")
    if args.parts_neural == "also":
        main_parts_neural()
    if args.surroundings == "also":
        main_surroundings()
    if args.mri == "also":
        main_mri()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
