"""Which DICOM objects can become a 3D volume, and why the others cannot.

A study folder holds much more than images of the patient: DICOMDIR files,
scouts, screenshots (secondary capture), reports (SR), presentation states, RT
plans and structures, ultrasound clips.  The index skips these with a reason a
user understands instead of failing on them later.
"""

from __future__ import annotations

from typing import Optional

#: SOP classes whose images are slices of a volume (classic and enhanced).
VOLUME_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2": "CT Image",
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT Image",
    "1.2.840.10008.5.1.4.1.1.2.2": "Legacy Converted Enhanced CT Image",
    "1.2.840.10008.5.1.4.1.1.4": "MR Image",
    "1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR Image",
    "1.2.840.10008.5.1.4.1.1.4.4": "Legacy Converted Enhanced MR Image",
    "1.2.840.10008.5.1.4.1.1.128": "PET Image",
    "1.2.840.10008.5.1.4.1.1.130": "Enhanced PET Image",
    "1.2.840.10008.5.1.4.1.1.128.1": "Legacy Converted Enhanced PET Image",
}

#: Enhanced (multi-frame with functional groups) members of the above.
ENHANCED_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2.1",
    "1.2.840.10008.5.1.4.1.1.2.2",
    "1.2.840.10008.5.1.4.1.1.4.1",
    "1.2.840.10008.5.1.4.1.1.4.4",
    "1.2.840.10008.5.1.4.1.1.130",
    "1.2.840.10008.5.1.4.1.1.128.1",
}

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"

# Prefix → why such an object is not a volume.  Prefixes cover whole families
# (every SR template, every presentation state flavour).
_NOT_VOLUME_PREFIXES = (
    (MEDIA_STORAGE_DIRECTORY, "a DICOMDIR (directory of a DICOM medium), not an image"),
    ("1.2.840.10008.5.1.4.1.1.7", "a secondary capture (screenshot or scanned image), "
     "which carries no patient geometry"),
    ("1.2.840.10008.5.1.4.1.1.88.", "a structured report (SR), not an image"),
    ("1.2.840.10008.5.1.4.1.1.11.", "a presentation state (display settings), not an image"),
    ("1.2.840.10008.5.1.4.1.1.481.3", "an RT structure set (contours), not an image"),
    ("1.2.840.10008.5.1.4.1.1.481.5", "an RT plan, not an image"),
    ("1.2.840.10008.5.1.4.1.1.481.2", "an RT dose grid, not an anatomical image"),
    ("1.2.840.10008.5.1.4.1.1.481.", "an RT object, not an anatomical image"),
    ("1.2.840.10008.5.1.4.1.1.6.", "ultrasound, which is not volume imaging (no slice geometry)"),
    ("1.2.840.10008.5.1.4.1.1.3.1", "an ultrasound multi-frame clip, which is not volume imaging"),
    ("1.2.840.10008.5.1.4.1.1.104.", "an encapsulated document (PDF/CDA), not an image"),
    ("1.2.840.10008.5.1.4.1.1.66", "raw or registration/segmentation data, not an image"),
    ("1.2.840.10008.5.1.4.1.1.9.", "a waveform (e.g. ECG), not an image"),
    ("1.2.840.10008.5.1.4.1.1.1", "a projection radiograph (CR/DX/MG), not a volume"),
    ("1.2.840.10008.5.1.4.1.1.12.", "an X-ray angiography/fluoroscopy image, not a volume"),
    ("1.2.840.10008.5.1.4.1.1.20", "a nuclear medicine image without slice geometry"),
    ("1.2.840.10008.5.1.4.1.1.77.", "a visible-light photograph, not a volume"),
)

#: Modalities that never form a volume even if their SOP class is unusual.
_NOT_VOLUME_MODALITIES = {
    "US": "ultrasound, which is not volume imaging (no slice geometry)",
    "SR": "a structured report (SR), not an image",
    "PR": "a presentation state (display settings), not an image",
    "RTSTRUCT": "an RT structure set (contours), not an image",
    "RTPLAN": "an RT plan, not an image",
    "RTDOSE": "an RT dose grid, not an anatomical image",
    "KO": "a key-object selection note, not an image",
    "DOC": "an encapsulated document, not an image",
    "ECG": "a waveform (ECG), not an image",
}


def non_volume_reason(sop_class_uid: str, modality: str) -> Optional[str]:
    """Why an object of this SOP class / modality cannot be a volume slice.

    Parameters
    ----------
    sop_class_uid : str
        SOPClassUID (or MediaStorageSOPClassUID); may be empty.
    modality : str
        Modality; may be empty.

    Returns
    -------
    str or None
        A short reason ("a structured report (SR), not an image"), or ``None``
        when the object may be a slice of a volume (the caller then still
        checks for pixels and geometry).
    """
    if sop_class_uid in VOLUME_SOP_CLASSES:
        return None
    for prefix, reason in _NOT_VOLUME_PREFIXES:
        if sop_class_uid == prefix or sop_class_uid.startswith(prefix if prefix.endswith(".")
                                                                else prefix + "."):
            return reason
    return _NOT_VOLUME_MODALITIES.get(modality.upper())
