"""Everything that takes a case or a plan out of SurgPlan (headless: no Qt here).

Public API (the CLI, the GUI and scripts call these)::

    from surgplan.report.anonymize import anonymize, Deidentifier
    anonymize(input_path, out_dir, date_offset_days=None, secret=None,
              progress=None, cancel=None) -> AnonymizationResult
        # DICOM PS3.15 basic profile + modified dates; folder, zip, DICOMDIR or file in,
        # a new folder S001/IM00001.dcm … out (`surgplan anonymize IN OUT`).
    Deidentifier(date_offset_days=None, secret=None).deidentify(dataset)
        # one run's consistent UIDs, dates and pseudonyms, for data sets in memory.

    from surgplan.report.dicom_seg import write_dicom_seg, build_dicom_seg, source_datasets
    write_dicom_seg(anatomy, volume, out_path, source=None, anonymous=False,
                    progress=None, cancel=None) -> Path
        # one coded segment per structure, referencing the source series frame by frame;
        # DicomImportError when the volume is not a referencable DICOM series.

    from surgplan.report.mesh_export import export_meshes
    export_meshes(anatomy, out_dir, names=None, formats=("stl", "ply"), source="",
                  anonymous=False, max_triangles=20000, progress=None, cancel=None) -> dict

    from surgplan.report.plan_report import build_report, report_proposal, write_metrics_csv
    build_report(volume, anatomy, plan, pdf_path, csv_path=None, anonymous=False,
                 plan_source="the plan", context=None, measurements=(), progress=None,
                 cancel=None)
        -> ReportResult(pdf, csv, metrics, pages)
        # PlanFileError for a plan without trajectories or made on other images;
        # measurements (surgplan.planning.measurements.Measurement, LPS mm) get a section
        # with their level and a picture each (none: no section).
    write_metrics_csv(path, metrics) -> Path       # one row per trajectory × structure

    from surgplan.report.pdf import write_report_pdf, ReportInputs   # layout only
    from surgplan.report.figures import (anatomy_figures, trajectory_figures,
                                         measurement_figures)  # pictures
    from surgplan.report.exports import export_case  # `surgplan export`: all of the above
"""
