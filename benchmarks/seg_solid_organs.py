"""Measure ``soft_tissue.solid_organs`` (the liver and spleen the bowel region leaves out).

Run: ``.venv/bin/python benchmarks/seg_solid_organs.py``.

The 20 slices of a real portal-phase CT in ``ct-abdomen-lumbar/dicom-j2k-20-slices``
(T11-T12, 0.98 × 0.98 × 2 mm) come with TotalSegmentator's labels: liver 5, spleen 1,
stomach 6.  The CT is put on a 2 mm grid smoothed as ``segment_ct``'s scout is, the
body outline and the abdominal wall depth are taken the same way, and the organs
found inside the wall are compared with the reference: Dice against liver + spleen,
the share of each organ covered, the share of the stomach taken (it must not be:
it is bowel), and the volume found outside the reference.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("SURGPLAN_TEST_DATA", REPO.parent / "shared" / "data"))


def main() -> None:
    import SimpleITK as sitk
    from scipy import ndimage as ndi

    from surgplan.imaging.loader import load_volume
    from surgplan.imaging.segment.body import body_outline
    from surgplan.imaging.segment.grid import WorkGrid, volume_box_lps
    from surgplan.imaging.segment.around.soft_tissue import WALL_MM, solid_organs, surface_depth_mm

    d = DATA / "ct-abdomen-lumbar"
    if not (d / "dicom-j2k-20-slices").is_dir():
        print(f"solid organs: skipped, no data at {d}")
        return
    image = load_volume(d / "dicom-j2k-20-slices", modality="CT").to_sitk()
    grid = WorkGrid.covering(*volume_box_lps(image), 2.0)
    hu = ndi.gaussian_filter(grid.sample(image), 0.5)
    body = body_outline(hu, 2.0)
    ref = grid.sample(sitk.ReadImage(str(d / "dicom-j2k-20-slices-reference-labels.nii.gz")),
                      labels=True, default=0).astype(int)
    t = time.perf_counter()
    found = solid_organs(hu, body & (surface_depth_mm(body, 2.0) > WALL_MM), 2.0)
    dt = time.perf_counter() - t
    ml = 2.0 ** 3 / 1000.0
    organs = np.isin(ref, (1, 5))
    dice = 2.0 * np.count_nonzero(found & organs) / (np.count_nonzero(found)
                                                      + np.count_nonzero(organs))
    print(f"== solid organs on 20 slices of a real portal-phase CT ({dt:.2f} s)")
    print(f"   liver + spleen Dice {dice:.3f}; found {np.count_nonzero(found) * ml:.0f} ml, "
          f"{np.count_nonzero(found & ~organs) * ml:.0f} ml of it outside the reference")
    for name, code in (("liver", 5), ("spleen", 1), ("stomach", 6)):
        m = ref == code
        share = np.count_nonzero(found & m) / max(np.count_nonzero(m), 1)
        print(f"   {name:8} {np.count_nonzero(m) * ml:6.0f} ml in the reference, "
              f"{100.0 * share:5.1f} % of it found")


if __name__ == "__main__":
    main()
