"""Shared names of anatomical structures.

The phantom's ground truth, the segmentation, the planner and the report all
speak of structures by these names, so a name is the key that joins them:
``T12``, ``L1`` … ``L5`` (``L6`` when present), ``S1`` for the sacrum;
``disc L4-L5``; ``spinal canal``; ``dural sac``; ``nerve root L4 left`` (the
root that exits below the L4 pedicle; ``nerve root S1 left`` leaves below the S1
pedicle, through the first sacral foramen); ``foramen L4-L5 left`` (the neural
foramen between L4 and L5, where ``nerve root L4 left`` exits); ``ilium left``; ``psoas right``;
``aorta``; ``inferior vena cava``; ``kidney left``; ``bowel``; ``skin``.
"""

from __future__ import annotations

import re
from typing import Optional

SIDES = ("left", "right")

#: Vertebrae from cranial to caudal, as named on a lumbar study.
VERTEBRA_ORDER = ("T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5", "L6", "S1")

#: Kinds of structure (the ``kind`` field of label tables).
KINDS = (
    "vertebra",
    "disc",
    "spinal canal",
    "dural sac",
    "nerve root",
    "foramen",
    "rib",
    "ilium",
    "muscle",
    "vessel",
    "organ",
    "bowel",
    "fat",
    "skin",
    "body",
)

#: Vertebral part codes of an Anatomy's ``parts`` map (0 = not a vertebra or unassigned).
#: The vertebra a part belongs to comes from the ``vertebrae`` map.
PART_NAMES = {
    1: "body", 2: "pedicle left", 3: "pedicle right",
    4: "superior articular process left", 5: "superior articular process right",
    6: "inferior articular process left", 7: "inferior articular process right",
    8: "lamina", 9: "spinous process", 10: "transverse process left",
    11: "transverse process right", 12: "sacral ala left", 13: "sacral ala right",
    14: "sacrum below S1",
}
#: Part name → code.
PART_CODES = {name: code for code, name in PART_NAMES.items()}

_VERTEBRA_RE = re.compile(r"^(T1[0-2]|L[1-6]|S1)$")
_DISC_RE = re.compile(r"^disc (T1[0-2]|L[1-6])-(L[1-6]|S1)$")
#: Roots named after the vertebra whose pedicle they pass under: T10 … L6, and S1 (through
#: the first sacral foramen; the traversing root at L5-S1).
_ROOT_RE = re.compile(r"^nerve root (T1[0-2]|L[1-6]|S1) (left|right)$")
_FORAMEN_RE = re.compile(r"^foramen (T1[0-2]|L[1-6])-(T1[0-2]|L[1-6]|S1) (left|right)$")


def disc_name(upper: str, lower: str) -> str:
    """Name of the disc between two vertebrae, e.g. ``disc L4-L5``."""
    return f"disc {upper}-{lower}"


def root_name(vertebra: str, side: str) -> str:
    """Name of the root exiting below ``vertebra``'s pedicle on ``side``."""
    if side not in SIDES:
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    return f"nerve root {vertebra} {side}"


def foramen_name(upper: str, lower: str, side: str) -> str:
    """Name of the neural foramen between two vertebrae on ``side``, e.g. ``foramen L4-L5 left``.

    It is where the root named after ``upper`` (``nerve root L4 left``) exits.
    """
    if side not in SIDES:
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    return f"foramen {upper}-{lower} {side}"


def sided(name: str, side: str) -> str:
    """``sided('ilium', 'left') == 'ilium left'``."""
    if side not in SIDES:
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    return f"{name} {side}"


def is_vertebra(name: str) -> bool:
    return bool(_VERTEBRA_RE.match(name))


def kind_of(name: str) -> str:
    """The kind of a structure from its shared name."""
    if is_vertebra(name):
        return "vertebra"
    if _DISC_RE.match(name):
        return "disc"
    if _ROOT_RE.match(name):
        return "nerve root"
    if _FORAMEN_RE.match(name):
        return "foramen"
    base = name.rsplit(" ", 1)[0] if name.endswith((" left", " right")) else name
    table = {
        "spinal canal": "spinal canal",
        "dural sac": "dural sac",
        "rib": "rib",
        "ilium": "ilium",
        "psoas": "muscle",
        "paraspinal muscle": "muscle",
        "aorta": "vessel",
        "inferior vena cava": "vessel",
        "common iliac artery": "vessel",
        "common iliac vein": "vessel",
        "kidney": "organ",
        "bowel": "bowel",
        "subcutaneous fat": "fat",
        "skin": "skin",
        "body": "body",
    }
    if base.startswith("rib "):
        return "rib"
    if base in table:
        return table[base]
    raise ValueError(f"{name!r} is not a known structure name")


def level_of(name: str) -> Optional[str]:
    """The vertebra or disc level a structure belongs to, if any."""
    if is_vertebra(name):
        return name
    m = _DISC_RE.match(name)
    if m:
        return f"{m.group(1)}-{m.group(2)}"
    m = _ROOT_RE.match(name)
    if m:
        return m.group(1)
    m = _FORAMEN_RE.match(name)
    if m:
        return f"{m.group(1)}-{m.group(2)}"
    return None


#: Display colours (RGB 0–255): vertebrae cycle through distinct hues so that
#: neighbours never share one; other kinds have fixed, conventional colours.
_VERTEBRA_COLOURS = [
    (230, 159, 0),
    (86, 180, 233),
    (0, 158, 115),
    (240, 228, 66),
    (0, 114, 178),
    (213, 94, 0),
    (204, 121, 167),
]
_KIND_COLOURS = {
    "disc": (120, 200, 255),
    "spinal canal": (255, 255, 180),
    "dural sac": (255, 235, 60),
    "nerve root": (255, 210, 0),
    # a pale green, apart from the yellow neural tissue it holds and the red/blue vessels
    "foramen": (150, 225, 170),
    "rib": (225, 215, 190),
    "ilium": (225, 215, 190),
    "muscle": (190, 80, 80),
    "vessel": (220, 30, 30),
    "organ": (160, 60, 120),
    "bowel": (160, 120, 80),
    "fat": (250, 220, 160),
    "skin": (240, 190, 160),
    "body": (200, 200, 200),
}


def colour_of(name: str) -> tuple:
    """Display colour (R, G, B in 0–255) of a structure."""
    if is_vertebra(name):
        return _VERTEBRA_COLOURS[VERTEBRA_ORDER.index(name) % len(_VERTEBRA_COLOURS)]
    kind = kind_of(name)
    if name == "inferior vena cava" or name.startswith("common iliac vein"):
        return (40, 60, 220)
    return _KIND_COLOURS[kind]
