"""Writing output so that a reader never sees half of it.

A cancelled export, a full disk or a crash must not leave a truncated PDF, SEG
or label folder where a previous good one stood.  Work is written beside its
destination (same file system, so the final ``os.replace`` is atomic) and moved
into place only when complete.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Union


def publish_file(tmp: Union[str, Path], out: Union[str, Path]) -> Path:
    """Move the finished temporary file ``tmp`` onto ``out`` in one step.

    ``tempfile.mkstemp`` creates files readable by their owner only; the
    published file gets the mode an ordinary new file would have (0666 minus
    the umask), so that colleagues and PACS import tools can read it.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, out)
    return Path(out)


def publish_folder_contents(tmp: Union[str, Path], out: Union[str, Path]) -> Path:
    """Move every entry of the finished folder ``tmp`` into ``out``, replacing same names.

    Entries of ``out`` that ``tmp`` does not hold are left alone (a user's own
    files beside the exports).  ``tmp`` is left empty.
    """
    out = Path(out)
    out.mkdir(exist_ok=True)
    for item in Path(tmp).iterdir():
        dest = out / item.name
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        os.replace(item, dest)
    return out
