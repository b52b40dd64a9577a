"""Load speed and memory of SurgPlan's DICOM reader against the usual readers.

Writes a 512×512×400 CT series of the spine phantom (uncompressed, 0.8 mm
pixels, 0.8 mm steps) once into a cache folder, then measures, each in a fresh
Python process with a warm file cache:

* SurgPlan: header index alone, and the full load to an int16 HU volume;
* a plain pydicom loop (dcmread, pixel_array, np.stack, rescale);
* SimpleITK's ImageSeriesReader with int16 output;
* the raw read of the same bytes (the floor no reader can beat).

Peak memory is the growth of the process's maximum resident set during the
work, beside the size of the int16 volume.  Targets (from the project's
issue): index of 400 files < 0.3 s; full load ≤ 1.5× the fastest reader;
peak memory ≤ 1.3× the int16 volume.

Usage: ``python benchmarks/load.py [--slices 400] [--repeat 3] [--folder DIR]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROWS = COLS = 512
PIXEL_MM = 0.8


def write_series(folder: Path, slices: int) -> None:
    """Write the phantom resampled onto a 512×512×slices grid as DICOM CT."""
    import numpy as np
    import SimpleITK as sitk

    from surgplan.imaging.dicom.writer import write_series as write_dicom
    from surgplan.imaging.phantom import PhantomSpec, make_phantom

    t0 = time.perf_counter()
    case = make_phantom(PhantomSpec(spacing_mm=(1.6, 1.6, 1.6)))
    src = case.ct.to_sitk()
    lo, hi = case.ct.bounds_lps()
    centre = (lo + hi) / 2
    size = [COLS, ROWS, slices]
    spacing = [PIXEL_MM, PIXEL_MM, PIXEL_MM]
    origin = [centre[a] - (size[a] - 1) * spacing[a] / 2 for a in range(3)]
    ref = sitk.Image(size, sitk.sitkInt16)
    ref.SetSpacing(spacing)
    ref.SetOrigin(origin)
    img = sitk.Resample(src, ref, sitk.Transform(), sitk.sitkLinear, -1000.0, sitk.sitkInt16)
    from surgplan.imaging.volume import Volume

    vol = Volume.from_sitk(img, metadata=case.ct.metadata, frame_of_reference_uid="")
    folder.mkdir(parents=True, exist_ok=True)
    write_dicom(vol, folder, modality="CT", series_description="load benchmark")
    print(f"wrote {slices} slices of {ROWS}×{COLS} to {folder} in {time.perf_counter() - t0:.1f} s")
    del np


# Each reader runs in its own process so that peak memory is its own.
PRELUDE = textwrap.dedent(
    """
    import json, resource, sys, time, os
    from pathlib import Path
    import numpy as np
    folder = Path(sys.argv[1])
    files = sorted(str(p) for p in folder.iterdir() if p.is_file())
    def _status_mb(key):
        for line in open('/proc/self/status'):
            if line.startswith(key):
                return int(line.split()[1]) / 1024.0
    def rss_mb():
        # VmHWM is the peak resident set of this process image.  ru_maxrss
        # would not do: Linux keeps it across exec, so a child would inherit
        # the parent's peak.  Writing 5 to clear_refs resets VmHWM to the
        # current RSS, so the baseline is taken after the imports.
        with open('/proc/self/clear_refs', 'w') as fh:
            fh.write('5')
        return _status_mb('VmRSS:')
    def peak_mb():
        return _status_mb('VmHWM:')
    """
)

READERS = {
    "surgplan index": """
        from surgplan.imaging.loader import index_input
        import surgplan.imaging.dicom.index, surgplan.imaging.dicom.reader  # imports not timed
        base = rss_mb(); t0 = time.perf_counter()
        with index_input(folder) as study:
            n = study.series[0].slices
        dt = time.perf_counter() - t0
        out = dict(seconds=dt, peak_mb=peak_mb() - base, slices=n)
    """,
    "surgplan load": """
        from surgplan.imaging.loader import load_volume
        import surgplan.imaging.dicom.index, surgplan.imaging.dicom.reader  # imports not timed
        base = rss_mb(); t0 = time.perf_counter()
        vol = load_volume(folder)
        dt = time.perf_counter() - t0
        out = dict(seconds=dt, peak_mb=peak_mb() - base, dtype=str(vol.array.dtype),
                   shape=list(vol.array.shape), checksum=int(vol.array.astype(np.int64).sum()))
    """,
    "pydicom loop": """
        import pydicom
        base = rss_mb(); t0 = time.perf_counter()
        dss = [pydicom.dcmread(f) for f in files]
        dss.sort(key=lambda d: float(d.ImagePositionPatient[2]))
        arr = np.stack([d.pixel_array for d in dss])
        slope, icpt = float(dss[0].RescaleSlope), float(dss[0].RescaleIntercept)
        vol = (arr * slope + icpt).astype(np.int16)
        dt = time.perf_counter() - t0
        out = dict(seconds=dt, peak_mb=peak_mb() - base, dtype=str(vol.dtype),
                   shape=list(vol.shape), checksum=int(vol.astype(np.int64).sum()))
    """,
    "SimpleITK series": """
        import SimpleITK as sitk
        base = rss_mb(); t0 = time.perf_counter()
        r = sitk.ImageSeriesReader()
        r.SetFileNames(r.GetGDCMSeriesFileNames(str(folder)))
        r.SetOutputPixelType(sitk.sitkInt16)
        img = r.Execute()
        vol = sitk.GetArrayViewFromImage(img)
        dt = time.perf_counter() - t0
        out = dict(seconds=dt, peak_mb=peak_mb() - base, dtype=str(vol.dtype),
                   shape=list(vol.shape), checksum=int(vol.astype(np.int64).sum()))
    """,
    "raw bytes": """
        base = rss_mb(); t0 = time.perf_counter()
        total = 0
        for f in files:
            with open(f, 'rb') as fh:
                total += len(fh.read())
        dt = time.perf_counter() - t0
        out = dict(seconds=dt, peak_mb=peak_mb() - base, bytes=total)
    """,
}


def run_reader(name: str, folder: Path) -> dict:
    code = PRELUDE + textwrap.dedent(READERS[name]) + "\nprint(json.dumps(out))\n"
    res = subprocess.run(
        [sys.executable, "-c", code, str(folder)], capture_output=True, text=True, check=False
    )
    if res.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--slices", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=3, help="runs per reader; the best is kept")
    ap.add_argument("--folder", type=Path, default=None, help="reuse/keep the series here")
    args = ap.parse_args(argv)

    folder = args.folder or Path(tempfile.gettempdir()) / f"surgplan-bench-ct-{args.slices}"
    if not folder.is_dir() or len(list(folder.iterdir())) != args.slices:
        write_series(folder, args.slices)
    run_reader("raw bytes", folder)  # warm the file cache for everyone

    results = {}
    for name in READERS:
        runs = [run_reader(name, folder) for _ in range(args.repeat)]
        results[name] = min(runs, key=lambda r: r["seconds"])

    vol_mb = ROWS * COLS * args.slices * 2 / 2**20
    fastest_reader = min(
        results[n]["seconds"] for n in ("pydicom loop", "SimpleITK series")
    )
    print(f"\n{args.slices} files, {ROWS}×{COLS}, int16 volume {vol_mb:.0f} MiB, best of {args.repeat}")
    print(f"{'reader':<18} {'time s':>8} {'× fastest':>10} {'peak MiB':>9} {'× volume':>9}")
    for name, r in results.items():
        ratio = r["seconds"] / fastest_reader
        print(
            f"{name:<18} {r['seconds']:8.3f} {ratio:10.2f} {r['peak_mb']:9.0f} "
            f"{r['peak_mb'] / vol_mb:9.2f}"
        )
    sums = {n: r["checksum"] for n, r in results.items() if "checksum" in r}
    same = len(set(sums.values())) == 1
    print(f"\nsame voxels from every full reader: {'yes' if same else 'NO: ' + str(sums)}")
    idx = results["surgplan index"]["seconds"]
    load = results["surgplan load"]
    print(f"target index < 0.3 s: {idx:.3f} s -> {'met' if idx < 0.3 else 'NOT met'}")
    print(
        f"target load ≤ 1.5× fastest reader: {load['seconds'] / fastest_reader:.2f}× -> "
        f"{'met' if load['seconds'] <= 1.5 * fastest_reader else 'NOT met'}"
    )
    print(
        f"target peak ≤ 1.3× volume: {load['peak_mb'] / vol_mb:.2f}× -> "
        f"{'met' if load['peak_mb'] <= 1.3 * vol_mb else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
