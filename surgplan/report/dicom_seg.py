"""The Anatomy as a DICOM Segmentation (SEG) that PACS viewers overlay on the source series.

One segment per structure (vertebrae, discs, canal, dural sac, roots, vessels …),
each labelled with its SurgPlan name and coded with SNOMED CT where DICOM's code
tables have the structure (``L4 vertebra``, ``L4/L5 disc``, ``Aorta`` …); structures
without a specific code (psoas, roots, bowel) are coded by their tissue kind
(``Muscle``, ``Nerve`` …) or as ``Tissue``, and keep their full name in the segment
label.  Segments made from a model rather than the image say so: their algorithm
type is ``SEMIAUTOMATIC`` for edited and ``AUTOMATIC`` for segmented or modelled
structures, and the content description lists the modelled ones.

The SEG references the images it was made from frame by frame, so a viewer lines
it up with the series.  Those images are read again from where the Volume was
loaded: ``source`` (a folder, zip, DICOMDIR or file; by default
``volume.source``) is indexed and the series with the Volume's Series Instance
UID and frame of reference is taken.  A Volume read from NIfTI/NRRD/MHA, a
series resampled on loading (gantry tilt, irregular spacing), or a series whose
UIDs are empty cannot be referenced frame by frame, and is refused with the reason.

Of images de-identified with shifted dates the SEG is dated like the images, not
today (:func:`follow_source_dates`): a present-day SEG beside a study moved years
back would give the shift away.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from surgplan import __version__
from surgplan.core.atomic import publish_file
from surgplan.core.errors import DicomImportError
from surgplan.core.progress import CancelToken, ProgressCallback, check
from surgplan.imaging.anatomy import Anatomy, Structure
from surgplan.imaging.structures import is_vertebra
from surgplan.imaging.volume import Volume


def _sct(name: str):
    from pydicom.sr.codedict import codes

    return getattr(codes.SCT, name)


def property_codes(structure: Structure) -> Tuple[object, object]:
    """(category, type) codes of a structure for the SEG's Segment Sequence.

    The category is ``Anatomical Structure`` (SCT 91723000) where the type names the
    structure itself, else ``Tissue`` (SCT 85756007).
    """
    name, kind = structure.name, structure.kind
    anat = _sct("AnatomicalStructure")
    tissue = _sct("Tissue")
    if is_vertebra(name):
        if name == "S1":
            return anat, _sct("Sacrum")
        if name == "L6":  # a transitional vertebra has no code of its own
            return anat, _sct("Vertebra")
        return anat, _sct(f"{name}Vertebra")
    if kind == "disc":
        upper, lower = name.split(" ", 1)[1].split("-")
        try:
            return anat, _sct(f"{upper}{lower}Disc")
        except AttributeError:
            return anat, tissue
    base = name.rsplit(" ", 1)[0] if name.endswith((" left", " right")) else name
    specific = {
        "spinal canal": "SpinalCanalStructure",
        "dural sac": "DuraMater",
        "ilium": "Ilium",
        "aorta": "AbdominalAorta",
        "inferior vena cava": "InferiorVenaCava",
        "common iliac artery": "CommonIliacArtery",
        "common iliac vein": "CommonIliacVein",
        "kidney": "Kidney",
        "skin": "Skin",
        "subcutaneous fat": "SubcutaneousTissue",
    }
    if base in specific:
        return anat, _sct(specific[base])
    by_kind = {"nerve root": "Nerve", "muscle": "Muscle", "rib": "Rib"}
    if kind in by_kind:
        return anat, _sct(by_kind[kind])
    return tissue, tissue


def _display_colour(name: str):
    import highdicom as hd

    from surgplan.imaging.structures import colour_of

    return hd.color.CIELabColor.from_rgb(*colour_of(name))


def source_datasets(volume: Volume, source: "os.PathLike[str] | str | None" = None,
                    *, cancel: Optional[CancelToken] = None) -> list:
    """The headers of the DICOM images ``volume`` was loaded from, in the order of its k axis.

    Raises
    ------
    DicomImportError
        The volume did not come from DICOM, its series cannot be found again at
        ``source``, was resampled on loading, or has empty UIDs.
    """
    import pydicom

    from surgplan.imaging.dicom.index import index_files
    from surgplan.imaging.sources import is_volume_file, open_input

    src = Path(source) if source is not None else Path(volume.source or "")
    uid = volume.metadata.series_instance_uid
    if (not volume.source and source is None) or is_volume_file(src) or not uid:
        raise DicomImportError(
            f"{src or 'this volume'}: a DICOM SEG must reference the DICOM images it was made "
            "from, and this volume was not read from a DICOM series with a Series Instance UID "
            "(NIfTI/NRRD/MHA, or empty UIDs). Open the DICOM series itself, or export the "
            "label maps as NIfTI instead."
        )
    if not src.exists():
        raise DicomImportError(
            f"{src}: the DICOM files this volume was loaded from are no longer there; "
            "give the folder, .zip or DICOMDIR of the series again."
        )
    with open_input(src, cancel=cancel) as inputs:
        idx = index_files(inputs.files, cancel=cancel)
        matches = [s for s in idx.series
                   if s.uid.split("#")[0] == uid and not s.uid_synthesised
                   and s.frame_of_reference_uid == volume.frame_of_reference_uid
                   and s.n_slices == volume.array.shape[0]]
        if not matches:
            raise DicomImportError(
                f"{src}: holds no series {uid} of {volume.array.shape[0]} slices; "
                "give the folder the volume was loaded from."
            )
        series = matches[0]
        if series.geometry.resample:
            raise DicomImportError(
                f"{src}: series {uid} was resampled on loading (gantry tilt or irregular "
                "spacing), so its label maps do not lie on the original slices; a SEG "
                "cannot reference them frame by frame. Export NIfTI label maps instead."
            )
        slices = [series.slices[k] for k in series.geometry.order]
        if any(s.frame_index is not None for s in slices):
            raise DicomImportError(
                f"{src}: series {uid} is a multi-frame (enhanced) image; SEG export supports "
                "series of single-frame images. Export NIfTI label maps instead."
            )
        out = []
        for s in slices:
            check(cancel)
            out.append(pydicom.dcmread(s.path, stop_before_pixels=True))
    for ds in out:
        for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
            if not str(ds.get(kw, "") or "").strip():
                raise DicomImportError(
                    f"{src}: the source images have an empty {kw}, so a SEG cannot reference "
                    "them. `surgplan anonymize` writes a copy with valid UIDs; segment that."
                )
    return out


def label_map(anatomy: Anatomy) -> Tuple[np.ndarray, List[Structure]]:
    """One uint16 map whose value n marks the n-th structure of ``anatomy.items``.

    The vertebrae and structures maps do not overlap in SurgPlan's anatomies;
    where they would, the vertebra wins (bone is what the SEG is mostly used for).
    """
    present = [s for s in anatomy.items if np.any(getattr(anatomy, s.map) == s.label)]
    dtype = np.uint8 if len(present) < 256 else np.uint16
    out = np.zeros(anatomy.shape, dtype)
    for n, s in reversed(list(enumerate(present, 1))):
        # reversed: earlier items (vertebrae first) are written last and win overlaps
        out[getattr(anatomy, s.map) == s.label] = n
    return out, present


def build_dicom_seg(
    anatomy: Anatomy,
    volume: Volume,
    *,
    source: "os.PathLike[str] | str | None" = None,
    series_number: int = 900,
    deidentifier=None,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
):
    """The Anatomy as a ``highdicom.seg.Segmentation`` data set (not yet written).

    Parameters
    ----------
    anatomy : Anatomy
        On the grid of ``volume``.
    volume : Volume
        The image the anatomy was made from, loaded from DICOM.
    source : path-like, optional
        Where the DICOM series is (default ``volume.source``).
    series_number : int
        Series Number of the new SEG series.
    deidentifier : surgplan.report.anonymize.Deidentifier, optional
        De-identify the source headers first: the SEG then takes its patient and study
        from the de-identified headers and references their new UIDs (those of an
        anonymised copy of the images made with the same Deidentifier).

    Raises
    ------
    DicomImportError
        See :func:`source_datasets`; also when the anatomy is empty.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    report = progress or (lambda f, m: None)
    if tuple(anatomy.shape) != tuple(volume.array.shape):
        raise DicomImportError(
            f"the anatomy's grid {anatomy.shape} is not the volume's {volume.array.shape}; "
            "segment this volume again before exporting."
        )
    report(0.0, "reading the source series headers")
    images = source_datasets(volume, source, cancel=cancel)
    if deidentifier is not None:
        for ds in images:
            deidentifier.deidentify(ds)
    check(cancel)
    labels, present = label_map(anatomy)
    if not present:
        raise DicomImportError("the anatomy holds no labelled voxel; there is nothing to export.")
    algorithm = hd.AlgorithmIdentificationSequence(
        name="SurgPlan segmentation", version=__version__,
        # thresholds, morphology and watershed: CID 7162 "Morphological Operations"
        family=codes.cid7162.MorphologicalOperations,
    )
    descriptions = []
    for n, s in enumerate(present, 1):
        category, ptype = property_codes(s)
        kwargs = {}
        colour = _display_colour(s.name)
        if colour is not None:
            kwargs["display_color"] = colour
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=n,
            segment_label=s.name[:64],
            segmented_property_category=category,
            segmented_property_type=ptype,
            algorithm_type=(hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC
                            if s.provenance == "edited"
                            else hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC),
            algorithm_identification=algorithm,
            tracking_id=s.name[:64],
            tracking_uid=hd.UID(),
            **kwargs,
        ))
    modelled = [s.name for s in present if s.provenance == "modelled"]
    description = "SurgPlan anatomy" + (f"; modelled: {', '.join(modelled)}" if modelled else "")
    report(0.3, f"encoding {len(present)} segments")
    seg = hd.seg.Segmentation(
        source_images=images,
        pixel_array=labels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=int(series_number),
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="SurgPlan",
        manufacturer_model_name="SurgPlan",
        software_versions=__version__,
        device_serial_number="0",
        content_description=description[:64],
        content_label="SURGPLAN",
        series_description="SurgPlan segmentation",
    )
    follow_source_dates(seg, images, deidentifier)
    report(1.0, "SEG built")
    return seg


#: Image dates that bound when a SEG of the images was made (the latest is taken).
_IMAGE_DATE_KEYWORDS = ("ContentDate", "AcquisitionDate", "SeriesDate", "StudyDate")


def dates_modified(headers) -> bool:
    """True when the images' dates were moved by a de-identification.

    Longitudinal Temporal Information Modified = MODIFIED says so; images whose Patient
    Identity Removed = YES without saying UNMODIFIED are taken as moved too (PS3.15 lets
    a de-identifier shift dates without recording it).
    """
    for ds in headers:
        ltim = str(ds.get("LongitudinalTemporalInformationModified", "") or "").strip().upper()
        removed = str(ds.get("PatientIdentityRemoved", "") or "").strip().upper() == "YES"
        if ltim == "MODIFIED" or (removed and ltim != "UNMODIFIED"):
            return True
    return False


def _date_values(ds, out: set) -> set:
    """Every DA value and DT date part in ``ds``, sequences included."""
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value or ():
                _date_values(item, out)
        elif elem.VR in ("DA", "DT") and elem.value:
            values = elem.value if isinstance(elem.value, (list, tuple)) or (
                hasattr(elem.value, "__iter__") and not isinstance(elem.value, (str, bytes))
            ) else [elem.value]
            out.update(str(v).strip()[:8] for v in values if len(str(v).strip()) >= 8)
    return out


def _latest_image_date(headers) -> str:
    best = ""
    for ds in headers:
        for kw in _IMAGE_DATE_KEYWORDS:
            v = str(ds.get(kw, "") or "").strip()[:8]
            if len(v) == 8 and v.isdigit() and v > best:
                best = v
    return best


def follow_source_dates(seg, headers, deidentifier=None) -> bool:
    """Move the dates ``seg`` was stamped with (today) as the source images' dates were moved.

    A study de-identified with shifted dates (``surgplan anonymize``, PS3.15's Modified
    Dates option) keeps its intervals but not its calendar; a SEG dated today beside it
    would give the shift away (and so the real scan date).  The dates the SEG did not
    copy from ``headers`` (Content Date, Instance Creation Date, Contribution DateTime
    …; found as the date values the headers do not hold, so that a new one added by
    highdicom is caught too) become:

    * with ``deidentifier`` (the headers were de-identified in this run): the SEG's own
      dates moved by its offset, so the interval from scan to SEG survives as the
      intervals between scans do;
    * else, for images whose dates were moved already (:func:`dates_modified`): the
      latest date the images carry (the day of the images), as the run's offset is not
      recorded in them.  Images without any date leave the SEG's dates as they are.

    Times of day are kept, as ``surgplan anonymize`` keeps them.  The SEG then records
    Longitudinal Temporal Information Modified = MODIFIED.

    Parameters
    ----------
    seg : pydicom.Dataset
        The SEG, changed in place.
    headers : sequence of pydicom.Dataset
        The source images' headers the SEG was made from (after de-identification).
    deidentifier : surgplan.report.anonymize.Deidentifier, optional

    Returns
    -------
    bool
        Whether the SEG's dates were changed.
    """
    if deidentifier is not None:
        shift_date = deidentifier.shift_date
    elif dates_modified(headers):
        day = _latest_image_date(headers)
        if not day:
            return False

        def shift_date(value: str) -> str:
            return day if value.strip() else value
    else:
        return False
    copied = set()
    for ds in headers:
        _date_values(ds, copied)

    def move(value) -> str:
        v = str(value).strip()
        if len(v) < 8 or v[:8] in copied:
            return value
        return shift_date(v[:8]) + v[8:]

    def walk(ds) -> None:
        for elem in ds:
            if elem.VR == "SQ":
                for item in elem.value or ():
                    walk(item)
            elif elem.VR in ("DA", "DT") and elem.value:
                if isinstance(elem.value, (str, bytes)) or not hasattr(elem.value, "__iter__"):
                    elem.value = move(elem.value)
                else:
                    elem.value = [move(v) for v in elem.value]

    walk(seg)
    seg.LongitudinalTemporalInformationModified = "MODIFIED"
    return True


def require_anonymised_source(headers, path) -> None:
    """Refuse an anonymous SEG of images that are not an anonymised copy.

    A SEG de-identified on its own (``write_dicom_seg(anonymous=True)``) references
    UIDs made up for that run, which no copy of the images carries: no viewer could
    overlay it.  An anonymised copy (``surgplan anonymize``, or any PS3.15 tool that
    sets Patient Identity Removed = YES) has pseudonymous UIDs the SEG can reference.
    """
    if not all(str(ds.get("PatientIdentityRemoved", "")).strip().upper() == "YES"
               for ds in headers):
        raise DicomImportError(
            f"{path}: --anonymous --dicom-seg needs an anonymised copy of the images: these "
            "name the patient, and a SEG de-identified on its own would reference UIDs no copy "
            "of the images has, so no viewer could overlay it. Run `surgplan anonymize "
            f"{path} COPY`, then give COPY to `surgplan segment` or `surgplan export` with "
            "--anonymous --dicom-seg; or leave out --dicom-seg."
        )


def write_dicom_seg(
    anatomy: Anatomy,
    volume: Volume,
    out_path: "os.PathLike[str] | str",
    *,
    source: "os.PathLike[str] | str | None" = None,
    anonymous: bool = False,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> Path:
    """Write the Anatomy as a DICOM SEG file referencing its source series.

    Parameters
    ----------
    anatomy, volume, source
        See :func:`build_dicom_seg`.
    out_path : path-like
        The ``.dcm`` file to write; replaced only once the new file is complete.
    anonymous : bool
        Build the SEG on de-identified copies of the source headers (as ``surgplan
        anonymize`` writes them): no patient identity, shifted dates (the SEG's own
        dates moved by the same offset), new UIDs — the references then no longer point
        at the original series, so share it with an anonymised copy of the images, not
        with the originals.

    Returns
    -------
    pathlib.Path
        ``out_path``.
    """
    deid = None
    if anonymous:
        from surgplan.report.anonymize import Deidentifier

        deid = Deidentifier()
    seg = build_dicom_seg(anatomy, volume, source=source, deidentifier=deid, progress=progress,
                          cancel=cancel)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}-", dir=out.parent)
    os.close(fd)
    try:
        seg.save_as(tmp, enforce_file_format=True)
        publish_file(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out
