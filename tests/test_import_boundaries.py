"""The core packages must not pull in Qt: they run headless, in the CLI and in CI."""

import subprocess
import sys


def test_core_packages_import_without_qt():
    code = (
        "import sys\n"
        "import surgplan.core.errors, surgplan.core.progress, surgplan.core.geometry\n"
        "import surgplan.imaging.volume, surgplan.imaging.loader, surgplan.imaging.sources\n"
        "import surgplan.imaging.volume_files, surgplan.imaging.structures\n"
        "import surgplan.imaging.phantom, surgplan.imaging.dicom.index\n"
        "import surgplan.planning, surgplan.report, surgplan.cli\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('PySide6', 'shiboken6')))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"Qt modules loaded by the core: {out.stdout}"


def test_package_import_is_cheap():
    """``import surgplan`` must not import SimpleITK, VTK or Qt (start-up time of the CLI)."""
    code = (
        "import sys, surgplan\n"
        "print(','.join(m for m in ('SimpleITK', 'vtk', 'PySide6', 'pydicom') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
