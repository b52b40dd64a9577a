"""SurgPlan: planning for minimally invasive spine surgery.

Only the version lives here so that ``import surgplan`` stays cheap; the
heavy modules (SimpleITK, VTK, Qt) are imported where they are used.
"""

__version__ = "0.1.0"
