"""``python -m surgplan`` runs the ``surgplan`` command."""

import sys

from surgplan.cli import main

sys.exit(main())
