"""De-identify DICOM studies after the DICOM PS3.15 Basic Application Level Confidentiality Profile.

Teachers hand out cases; the files must not tell who the patient was, where or
when they were scanned.  :func:`anonymize` reads what
:func:`surgplan.imaging.sources.open_input` accepts (a folder, a ``.zip``, a
``DICOMDIR`` or one file) and writes a de-identified copy of every DICOM object
into a new folder.  The actions follow Table E.1-1 of PS3.15 (Annex E), with the
*Retain Longitudinal Temporal Information with Modified Dates* option:

* **remove** (X) every attribute the table lists for removal (institution,
  physicians, station, device serial number, request and procedure-step details,
  descriptions, comments, patient characteristics …), all private tags, curves and
  overlays, and — because they can hold anything — every free-text element (LT, ST,
  UT), every application entity title (AE) and every element of unknown VR (UN);
* **empty** (Z) the type-2 identifiers (accession number, study ID, birth date,
  sex …) and every person name that is not the patient's;
* **dummy** (D): the patient's name and ID become a pseudonym that is the same
  for every file of one patient within a run (``ANONYMOUS^P0001``, ``SP-…``); the
  device serial number and software versions (type 1 in enhanced objects) become
  ``REMOVED``;
* **new UIDs** (U): every instance, series, study, frame-of-reference and
  referenced UID — also inside sequences and in the file meta — is replaced by a
  ``2.25.`` UID derived from the original and a secret drawn once per run, so
  references between files stay coherent while the originals cannot be
  recovered; UIDs the standard defines (SOP classes, transfer syntaxes, coding
  schemes; anything under ``1.2.840.10008.``) are kept;
* **dates** (DA, and the date part of DT) move by one whole-day offset per run
  (at least a year back), so intervals between scans survive; times of day are
  kept.

The output records Patient Identity Removed = YES, the De-identification Method
(text and codes 113100, 113107) and Longitudinal Temporal Information Modified =
MODIFIED.  Files are named by position only (``S001/IM00001.dcm``), because folder
and file names often carry names or UIDs.  Pixel data is copied unchanged: text
burnt into the pixels (Burned In Annotation = YES) is *not* removed, and such
files are reported.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from surgplan import __version__
from surgplan.core.errors import DicomImportError, InputNotFoundError
from surgplan.core.progress import CancelToken, ProgressCallback, check
from surgplan.imaging.sources import SkippedFile, open_input

# --- Table E.1-1, by action ----------------------------------------------------------------
# Where the table allows several actions (X/Z, X/D, X/Z/D) the strongest that keeps the
# object valid is taken: removal, unless the attribute is type 1 or 2 in the image IODs
# SurgPlan reads.  Dates and UIDs are not listed here: every DA/DT is shifted and every
# UID is replaced by the generic rules below, wherever it appears.

#: Removed (X).
REMOVE = frozenset("""
AcquisitionComments AcquisitionProtocolDescription
AcquisitionDeviceProcessingDescription ActualHumanPerformersSequence AdditionalPatientHistory
AdmissionID AdmittingDiagnosesCodeSequence AdmittingDiagnosesDescription Allergies
AuthorObserverSequence BranchOfService CassetteID CommentsOnThePerformedProcedureStep
ConfidentialityConstraintOnPatientDataDescription ConsultingPhysicianIdentificationSequence
ContentCreatorIdentificationCodeSequence ContentSequence ContributionDescription
CountryOfResidence CurrentPatientLocation CustodialOrganizationSequence DataSetTrailingPadding
DerivationDescription DetectorID DeviceDescription DigitalSignaturesSequence
DischargeDiagnosisDescription DistributionAddress DistributionName EthnicGroup FrameComments
GantryID GeneratorID HumanPerformerName HumanPerformerOrganization IconImageSequence
IdentifyingComments ImageComments ImagePresentationComments ImagingServiceRequestComments
Impressions InstitutionAddress InstitutionCodeSequence InstitutionName
InstitutionalDepartmentName InstitutionalDepartmentTypeCodeSequence
InsurancePlanIdentification IntendedRecipientsOfResultsIdentificationSequence
InterpretationApproverSequence InterpretationAuthor InterpretationDiagnosisDescription
InterpretationIDIssuer InterpretationRecorder InterpretationText InterpretationTranscriber
IssuerOfAccessionNumberSequence IssuerOfAdmissionIDSequence IssuerOfPatientID
IssuerOfPatientIDQualifiersSequence IssuerOfServiceEpisodeIDSequence LastMenstrualDate
MedicalAlerts MedicalRecordLocator MilitaryRank ModifiedAttributesSequence
ModifiedImageDescription ModifyingDeviceID NamesOfIntendedRecipientsOfResults Occupation
OperatorIdentificationSequence OriginalAttributesSequence OrderCallbackPhoneNumber
OrderEnteredBy OrderEntererLocation OtherPatientIDs OtherPatientIDsSequence OtherPatientNames
ParticipantSequence PatientAddress PatientAge PatientAlternativeCalendar
PatientBirthDateInAlternativeCalendar PatientBirthName PatientBirthTime PatientComments
PatientDeathDateInAlternativeCalendar PatientInstitutionResidence
PatientInsurancePlanCodeSequence PatientMotherBirthName PatientPrimaryLanguageCodeSequence
PatientPrimaryLanguageModifierCodeSequence PatientReligiousPreference PatientSexNeutered
PatientSize PatientState PatientTelecomInformation PatientTelephoneNumbers
PatientTransportArrangements PatientWeight PerformedLocation
PerformedProcedureStepDescription PerformedProcedureStepEndDate PerformedProcedureStepEndTime
PerformedProcedureStepID PerformedProcedureStepStartDate PerformedProcedureStepStartTime
PerformedProtocolCodeSequence PerformedStationAETitle
PerformedStationGeographicLocationCodeSequence PerformedStationName
PerformedStationNameCodeSequence PerformingPhysicianIdentificationSequence
PerformingPhysicianName PersonAddress PersonTelecomInformation PersonTelephoneNumbers
PhysicianApprovingInterpretation PhysiciansOfRecord PhysiciansOfRecordIdentificationSequence
PhysiciansReadingStudyIdentificationSequence PlateID PreMedication PregnancyStatus
ProcedureCodeSequence ProtocolName ReasonForStudy ReasonForTheImagingServiceRequest
ReasonForVisit ReasonForVisitCodeSequence ReferencedDigitalSignatureSequence
ReferencedPatientAliasSequence ReferencedPatientPhotoSequence ReferencedPatientSequence
ReferencedPerformedProcedureStepSequence ReferencedSOPInstanceMACSequence
ReferencedStudySequence ReferringPhysicianAddress ReferringPhysicianIdentificationSequence
ReferringPhysicianTelephoneNumbers RegionOfResidence RequestAttributesSequence
RequestedContrastAgent RequestedProcedureCodeSequence RequestedProcedureComments
RequestedProcedureDescription RequestedProcedureID RequestedProcedureLocation
RequestingPhysician RequestingService ResponsibleOrganization ResponsiblePerson
ResultsComments ResultsDistributionListSequence ResultsIDIssuer
ScheduledHumanPerformersSequence ScheduledPatientInstitutionResidence
ScheduledPerformingPhysicianIdentificationSequence ScheduledPerformingPhysicianName
ScheduledProcedureStepDescription ScheduledProcedureStepEndDate ScheduledProcedureStepEndTime
ScheduledProcedureStepID ScheduledProcedureStepLocation ScheduledProcedureStepStartDate
ScheduledProcedureStepStartTime ScheduledStationAETitle
ScheduledStationGeographicLocationCodeSequence ScheduledStationName
ScheduledStationNameCodeSequence ScheduledStudyLocation ScheduledStudyLocationAETitle
SeriesDescription ServiceEpisodeDescription ServiceEpisodeID SmokingStatus
SpecialNeeds StationName StudyComments StudyDescription StudyIDIssuer TextComments TextString
TimezoneOffsetFromUTC TopicAuthor TopicKeywords TopicSubject TopicTitle VerifyingOrganization
VisitComments DateOfLastCalibration TimeOfLastCalibration
""".split())

#: Replaced by a dummy value (D): type 1 in some objects (Enhanced General Equipment of
#: enhanced CT/MR and of SEG), so they must stay present with a value.
DUMMY = {"DeviceSerialNumber": "REMOVED", "SoftwareVersions": "REMOVED"}

#: Emptied (Z): type-2 attributes that must stay present.
EMPTY = frozenset("""
AcquisitionContextSequence AccessionNumber ContrastBolusAgent
FillerOrderNumberImagingServiceRequest PatientBirthDate
PatientSex PlacerOrderNumberImagingServiceRequest ReferringPhysicianName StudyID
VerifyingObserverIdentificationCodeSequence
""".split())

#: UID attributes that name a *kind* of thing (SOP class, transfer syntax, coding scheme),
#: not an instance: never identifying, and replacing them would break the object.
CLASS_UID_KEYWORDS = frozenset("""
SOPClassUID ReferencedSOPClassUID MediaStorageSOPClassUID TransferSyntaxUID
ReferencedSOPClassUIDInFile ReferencedTransferSyntaxUIDInFile RelatedGeneralSOPClassUID
OriginalSpecializedSOPClassUID SOPClassesInStudy CodingSchemeUID MappingResourceUID
AffectedSOPClassUID RequestedSOPClassUID PrivateInformationCreatorUID ImplementationClassUID
""".split())

#: VRs of free text and unknown content, removed wherever they appear (see module docs).
REMOVE_VRS = frozenset({"LT", "ST", "UT", "AE", "UN"})
#: ... except these, which objects need (a SEG segment's Tracking ID is UT and type 1C)
#: and which hold labels written by software, not text about the patient.
KEEP_TEXT = frozenset({"TrackingID"})

#: How the output says what was done (PS3.16 CID 7050).
METHOD_CODES = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
)

#: Shift dates back by at least this many days (a year), at most MAX (ten years).
MIN_OFFSET_DAYS, MAX_OFFSET_DAYS = 365, 3650


@dataclass(frozen=True)
class AnonymizationResult:
    """What :func:`anonymize` wrote.

    Attributes
    ----------
    out_dir : pathlib.Path
        The output folder.
    files : tuple of pathlib.Path
        Every file written.
    skipped : tuple of SkippedFile
        Input files not written, each with its reason (not DICOM, unreadable).
    date_offset_days : int
        The (negative) number of days every date was moved by.
    n_patients, n_studies, n_series : int
        Distinct originals seen.
    warnings : tuple of str
        What the user must check by eye (burnt-in annotation).
    """

    out_dir: Path
    files: tuple
    skipped: tuple
    date_offset_days: int
    n_patients: int
    n_studies: int
    n_series: int
    warnings: tuple = ()


class Deidentifier:
    """The state of one anonymisation run: UID secret, date offset, pseudonyms.

    One instance must process every file of a run, so that UIDs, dates and
    pseudonyms stay consistent across files and series.

    Parameters
    ----------
    date_offset_days : int, optional
        Days to move every date by (negative moves back).  Default: random in
        ``[-3650, -365]``.
    secret : bytes, optional
        Key of the UID and pseudonym derivation.  Default: 32 random bytes, so the
        originals cannot be recovered from the output by anyone who lacks it.
    """

    def __init__(self, *, date_offset_days: Optional[int] = None,
                 secret: Optional[bytes] = None) -> None:
        if date_offset_days is None:
            date_offset_days = -(MIN_OFFSET_DAYS
                                 + secrets.randbelow(MAX_OFFSET_DAYS - MIN_OFFSET_DAYS + 1))
        if int(date_offset_days) == 0:
            raise ValueError("date_offset_days must not be 0: dates would stay as they were")
        self.date_offset_days = int(date_offset_days)
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self._uids: Dict[str, str] = {}
        self._patients: Dict[Tuple[str, str], int] = {}
        self.studies: set = set()
        self.series: set = set()

    # --- replacements ------------------------------------------------------------------
    def new_uid(self, uid: str) -> str:
        """The replacement of ``uid`` in this run (the same every time it is asked)."""
        uid = str(uid).strip().rstrip("\x00")
        if not uid:
            return ""
        if uid not in self._uids:
            self._uids[uid] = generate_uid(prefix=None, entropy_srcs=[self._secret.hex(), uid])
        return self._uids[uid]

    def _patient_number(self, name: str, pid: str) -> int:
        key = (name, pid)
        if key not in self._patients:
            self._patients[key] = len(self._patients) + 1
        return self._patients[key]

    def shift_date(self, value: str) -> str:
        """A DA value moved by the run's offset; '' for a value that is not a date."""
        value = value.strip()
        if not value:
            return ""
        try:
            d = datetime.datetime.strptime(value[:8], "%Y%m%d").date()
        except ValueError:
            return ""  # unparseable dates are dropped rather than kept as they were
        return (d + datetime.timedelta(days=self.date_offset_days)).strftime("%Y%m%d")

    def shift_datetime(self, value: str) -> str:
        """A DT value with its date part moved; the time of day is kept."""
        value = value.strip()
        if len(value) < 8:
            return ""
        shifted = self.shift_date(value[:8])
        return shifted + value[8:] if shifted else ""

    # --- one dataset -------------------------------------------------------------------
    def deidentify(self, ds: Dataset) -> Dataset:
        """De-identify ``ds`` in place (file meta included) and return it."""
        meta = getattr(ds, "file_meta", None)
        name = str(ds.get("PatientName", "") or "")
        pid = str(ds.get("PatientID", "") or "")
        n = self._patient_number(name, pid)
        # Type-1 UIDs that only the file meta holds (seen in real exports) are restored
        # from it, so the output is valid and its references resolve.
        if meta is not None:
            if not str(ds.get("SOPInstanceUID", "") or "").strip():
                ms = str(meta.get("MediaStorageSOPInstanceUID", "") or "").strip()
                if ms:
                    ds.SOPInstanceUID = ms
            if not str(ds.get("SOPClassUID", "") or "").strip():
                mc = str(meta.get("MediaStorageSOPClassUID", "") or "").strip()
                if mc:
                    ds.SOPClassUID = mc
        # Empty Study/Series Instance UIDs (type 1; some exports leave them empty) get
        # new ones derived from what the loader groups such files by (frame of reference,
        # modality), so the copy is valid DICOM and groups into the same series.
        for_uid = str(ds.get("FrameOfReferenceUID", "") or "")
        if "StudyInstanceUID" in ds and not str(ds.StudyInstanceUID or "").strip():
            ds.StudyInstanceUID = self.new_uid(f"empty study|{pid}|{for_uid}")
        if "SeriesInstanceUID" in ds and not str(ds.SeriesInstanceUID or "").strip():
            ds.SeriesInstanceUID = self.new_uid(
                f"empty series|{ds.StudyInstanceUID}|{ds.get('Modality', '')}|{for_uid}")
        self.studies.add(str(ds.get("StudyInstanceUID", "") or ""))
        self.series.add((str(ds.get("StudyInstanceUID", "") or ""),
                         str(ds.get("SeriesInstanceUID", "") or "")))
        self._clean(ds)
        # Type 2 attributes of the Patient and General Study modules (every composite
        # object has them) are present, if empty, so the copy is valid where the input
        # left them out.
        for kw in ("PatientBirthDate", "PatientSex", "ReferringPhysicianName", "StudyID",
                   "AccessionNumber"):
            if kw not in ds:
                setattr(ds, kw, "")
        ds.PatientName = f"ANONYMOUS^P{n:04d}"
        digest = hashlib.sha256(self._secret + f"{name}\x00{pid}".encode()).hexdigest()
        ds.PatientID = "SP-" + digest[:12]
        ds.PatientIdentityRemoved = "YES"
        # LO holds at most 64 characters; the codes below say it in full.
        ds.DeidentificationMethod = f"SurgPlan {__version__}: PS3.15 basic profile, dates shifted"
        codes = Sequence()
        for value, meaning in METHOD_CODES:
            item = Dataset()
            item.CodeValue = value
            item.CodingSchemeDesignator = "DCM"
            item.CodeMeaning = meaning
            codes.append(item)
        ds.DeidentificationMethodCodeSequence = codes
        ds.LongitudinalTemporalInformationModified = "MODIFIED"
        ds.file_meta = self._new_meta(ds, meta)
        return ds

    def _clean(self, ds: Dataset) -> None:
        for tag in list(ds.keys()):
            if tag.is_private:
                del ds[tag]
                continue
            group = tag.group
            # Curves (50xx) and overlays (60xx) can carry drawn text: removed.
            if 0x5000 <= group <= 0x50FF or 0x6000 <= group <= 0x60FF:
                del ds[tag]
                continue
            elem = ds[tag]
            kw = elem.keyword
            if kw in REMOVE or (elem.VR in REMOVE_VRS and kw not in KEEP_TEXT):
                del ds[tag]
                continue
            if kw in DUMMY:
                elem.value = DUMMY[kw]
                continue
            if kw in EMPTY:
                ds[tag] = DataElement(tag, elem.VR, Sequence() if elem.VR == "SQ" else "")
                continue
            if elem.VR == "SQ":
                for item in elem.value or ():
                    self._clean(item)
            elif elem.VR == "UI":
                self._replace_uids(ds, elem)
            elif elem.VR == "PN":
                elem.value = ""
            elif elem.VR == "DA":
                elem.value = self._map_values(elem.value, self.shift_date)
            elif elem.VR == "DT":
                elem.value = self._map_values(elem.value, self.shift_datetime)

    @staticmethod
    def _map_values(value, fn):
        if value is None:
            return value
        if isinstance(value, (list, tuple)) or hasattr(value, "__iter__") and not isinstance(
                value, (str, bytes)):
            return [fn(str(v)) for v in value]
        return fn(str(value))

    def _replace_uids(self, ds: Dataset, elem: DataElement) -> None:
        if elem.keyword in CLASS_UID_KEYWORDS:
            return

        def one(v: str) -> str:
            v = str(v).strip()
            return v if v.startswith("1.2.840.10008.") else self.new_uid(v)

        elem.value = self._map_values(elem.value, one)

    def _new_meta(self, ds: Dataset, old: Optional[FileMetaDataset]) -> FileMetaDataset:
        meta = FileMetaDataset()
        sop_class = str(ds.get("SOPClassUID", "") or "") or (
            str(old.get("MediaStorageSOPClassUID", "")) if old is not None else "")
        sop_uid = str(ds.get("SOPInstanceUID", "") or "")
        if not sop_uid and old is not None:
            sop_uid = self.new_uid(str(old.get("MediaStorageSOPInstanceUID", "") or ""))
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = sop_uid
        ts = str(old.get("TransferSyntaxUID", "") or "") if old is not None else ""
        if not ts:
            # No transfer syntax recorded: the data set was read uncompressed, as implicit
            # or explicit VR (pydicom tells which); write it back the same way.
            ts = ImplicitVRLittleEndian if getattr(ds, "is_implicit_VR", False) \
                else ExplicitVRLittleEndian
        meta.TransferSyntaxUID = ts
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        meta.ImplementationVersionName = "SURGPLAN"
        return meta


def _collides(out: Path, src: Path) -> bool:
    """True when ``out`` lies inside the input folder (or holds it), or is the input."""
    o = os.path.realpath(out)
    s = os.path.realpath(src)
    if src.name.upper() == "DICOMDIR":
        s = os.path.dirname(s)  # the whole medium is the input
    elif not os.path.isdir(s):
        return o == s
    common = os.path.commonpath([o, s])
    return common in (o, s)


def anonymize(
    input_path: "os.PathLike[str] | str",
    out_dir: "os.PathLike[str] | str",
    *,
    date_offset_days: Optional[int] = None,
    secret: Optional[bytes] = None,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> AnonymizationResult:
    """Write a de-identified copy of every DICOM object behind ``input_path``.

    Parameters
    ----------
    input_path : path-like
        A folder (searched recursively), a ``.zip``, a ``DICOMDIR`` or one DICOM file.
    out_dir : path-like
        The folder to create; it must not exist yet (or be empty) and must not lie
        inside the input.  Files are written as ``S001/IM00001.dcm`` …, one folder
        per series in the order met.  The folder appears only once complete.
    date_offset_days : int, optional
        Days to move every date by; default a random whole number of days between
        one and ten years back, the same for every file of the run.
    secret : bytes, optional
        Key for the new UIDs and patient pseudonyms (default random per run).
    progress, cancel
        Progress callback and cancellation token; a cancelled run writes nothing.

    Returns
    -------
    AnonymizationResult

    Raises
    ------
    InputNotFoundError
        The input does not exist, or holds no DICOM file at all.
    DicomImportError
        The input is a NIfTI/NRRD/MHA volume, or the output folder is unusable.
    """
    src = Path(input_path)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DicomImportError(
            f"{out}: already exists and is not an empty folder; give a new folder for the "
            "anonymised copy (nothing is overwritten)."
        )
    if src.exists() and _collides(out, src):
        raise DicomImportError(
            f"{out}: lies inside (or contains) the input {src}; choose an output folder "
            "elsewhere, so that the input stays untouched."
        )
    deid = Deidentifier(date_offset_days=date_offset_days, secret=secret)
    report = progress or (lambda f, m: None)
    with open_input(src, cancel=cancel) as inputs:
        if inputs.kind == "volume":
            raise DicomImportError(
                f"{src}: is a NIfTI/NRRD/MHA volume, which holds no patient identity to remove; "
                "anonymisation works on DICOM (a folder, .zip, DICOMDIR or DICOM file)."
            )
        skipped: List[SkippedFile] = [
            SkippedFile(inputs.display_path(Path(s.path)), s.reason) for s in inputs.skipped]
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-partial-", dir=out.parent))
        written: List[Path] = []
        series_dirs: Dict[Tuple[str, str], str] = {}
        counts: Dict[str, int] = {}
        warnings: List[str] = []
        burnt: List[str] = []
        try:
            n = len(inputs.files)
            for i, f in enumerate(inputs.files):
                check(cancel)
                report(i / max(n, 1), f"anonymising {i + 1}/{n}")
                shown = inputs.display_path(f)
                try:
                    ds = pydicom.dcmread(f)
                except InvalidDicomError:
                    skipped.append(SkippedFile(shown, "not a DICOM file; not copied"))
                    continue
                except Exception as exc:  # pydicom raises many types on damaged files
                    skipped.append(SkippedFile(
                        shown, f"could not be read as DICOM ({type(exc).__name__}: {exc}); "
                        "not copied"))
                    continue
                if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
                    burnt.append(shown)
                key = (str(ds.get("StudyInstanceUID", "") or ""),
                       str(ds.get("SeriesInstanceUID", "") or ""))
                # Files with empty UIDs are told apart by modality and frame of reference.
                if not key[1]:
                    key = (key[0], "?" + str(ds.get("Modality", "")) + "|"
                           + str(ds.get("FrameOfReferenceUID", "")))
                folder = series_dirs.setdefault(key, f"S{len(series_dirs) + 1:03d}")
                counts[folder] = counts.get(folder, 0) + 1
                deid.deidentify(ds)
                dest = tmp / folder / f"IM{counts[folder]:05d}.dcm"
                dest.parent.mkdir(exist_ok=True)
                ds.save_as(dest, enforce_file_format=True)
                written.append(dest)
            if not written:
                raise InputNotFoundError(
                    f"{src}: holds no DICOM file to anonymise ({len(skipped)} file(s) skipped). "
                    "Give the folder, .zip or DICOMDIR of a DICOM study."
                )
            check(cancel)
            if out.exists():
                out.rmdir()  # empty, checked above
            os.replace(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if burnt:
        warnings.append(
            f"{len(burnt)} file(s) declare text burnt into the pixels (Burned In Annotation = "
            f"YES), e.g. {burnt[0]}: the pixels were copied unchanged; check them by eye "
            "before sharing."
        )
    report(1.0, "anonymised")
    files = tuple(out / p.relative_to(tmp) for p in written)
    return AnonymizationResult(
        out_dir=out, files=files, skipped=tuple(skipped),
        date_offset_days=deid.date_offset_days, n_patients=len(deid._patients),
        n_studies=len(deid.studies), n_series=len(series_dirs), warnings=tuple(warnings),
    )
