"""A HEIF item's own turns (no Ray, no HTTP): its ``irot`` and ``imir`` properties (ISO/IEC
23008-12), applied to a picture pillow-heif does not turn itself, a gain map stored apart from
its primary (Apple's auxiliary image, an ISO 21496-1 tmap's hidden item)."""

from __future__ import annotations

from typing import List, Tuple

import numpy as np

Property = Tuple[bytes, bytes]  # (type, payload), as heif_boxes reads them
TURN_BITS = {b"irot": 3, b"imir": 1}  # the bits each states; the rest of its byte is reserved


def stated_turn(kind: bytes, payload: bytes) -> int:
    """The quarter turns an ``irot`` states, or the axis an ``imir`` states, by its bits alone."""
    return payload[0] & TURN_BITS[kind]


def turn_properties(properties: List[Property]) -> List[Property]:
    """The ``irot`` and ``imir`` of ``properties``, in their order."""
    return [prop for prop in properties if prop[0] in TURN_BITS]


def quarter_turns(transforms: List[Property]) -> int:
    return sum(stated_turn(kind, payload) for kind, payload in transforms if kind == b"irot" and payload)


def heif_turned(image: np.ndarray, transforms: List[Property]) -> np.ndarray:
    """``image`` through HEIF's irot (quarter turns anticlockwise) and imir in order, as libheif
    turns the primary: its axis 0 flips top to bottom, 1 left to right."""
    for kind, payload in transforms:
        if not payload:
            continue
        if kind == b"irot":
            image = np.rot90(image, stated_turn(kind, payload))
        else:
            image = image[::-1] if stated_turn(kind, payload) == 0 else image[:, ::-1]
    return np.ascontiguousarray(image)
