"""Shared by the report tests: the phantom as a scanner writes it, segmented, with a plan."""

from __future__ import annotations

import numpy as np
import pytest

from surgplan.planning import (CaseReference, Plan, PlanningContext, Trajectory, compute_target,
                               get_procedure)


@pytest.fixture(scope="session")
def report_case(small_phantom, small_phantom_truth, tmp_path_factory):
    """The phantom as a DICOM series, its segmentation folder, and a planning context."""
    from surgplan.imaging.dicom.writer import write_series
    from surgplan.imaging.loader import load_volume
    from surgplan.imaging.segmentation_files import write_segmentation

    from surgplan.imaging.anatomy import Anatomy

    # L3 to the sacrum (100 slices, 160 mm): what an L4-L5 plan needs, at half the cost.
    ct, truth = small_phantom.ct, small_phantom_truth
    k_mid = int(round(ct.lps_to_index(small_phantom.landmarks.vertebrae["L5"].centroid_lps)[2]))
    k0 = max(0, k_mid - 50)
    k1 = min(ct.array.shape[0], k0 + 100)
    aff = ct.ijk_to_lps.copy()
    aff[:3, 3] = ct.index_to_lps(np.array([0.0, 0.0, k0]))
    crop = ct.replace(array=ct.array[k0:k1], ijk_to_lps=aff)
    d = tmp_path_factory.mktemp("case")
    write_series(crop, d / "Roe_Jane_CT", modality="CT")
    vol = load_volume(d / "Roe_Jane_CT")
    items = tuple(s for s in truth.items
                  if np.any(getattr(truth, s.map)[k0:k1] == s.label))
    anatomy = Anatomy(vol.array.shape, vol.ijk_to_lps, truth.vertebrae[k0:k1],
                      truth.structures[k0:k1], items, truth.findings, truth.parts[k0:k1])
    write_segmentation(anatomy, vol, d / "seg", meshes=False)
    ctx = PlanningContext.build(anatomy, vol)
    return d, vol, anatomy, ctx


@pytest.fixture(scope="session")
def report_plan(report_case):
    d, vol, anatomy, ctx = report_case
    teld = get_procedure("teld")
    target = compute_target(ctx, teld, "L4-L5", "left").target_lps
    # A posterolateral entry from the left, 45° from the sagittal plane.
    entry = np.asarray(target) + np.array([75.0, 75.0, 5.0])
    t1 = Trajectory("teld", "L4-L5", "left", teld.tool(), tuple(entry), tuple(target),
                    notes="Check the exiting L4 root on the axial slice first.")
    screw = get_procedure("pedicle-screw")
    st = compute_target(ctx, screw, "L4", "right")
    t2 = Trajectory("pedicle-screw", "L4", "right", screw.tool(),
                    tuple(np.asarray(st.target_lps) - 60.0 * np.asarray(st.direction)),
                    tuple(st.target_lps))
    return Plan(CaseReference.from_volume(vol), (t1, t2), notes="Left L4-L5 TELD.")
