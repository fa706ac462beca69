"""The worker image: Debian trixie, HTCondor and the physics payload, built once and cached.

Burst workers share nothing with the submit host; every worker boots from this image.
"""

from __future__ import annotations

from bursting.image.build import (
    IMAGE_PYTHON,
    PAYLOAD_ATTRIBUTE,
    current_image,
    ensure_image,
    image_status,
)
from bursting.image.manifest import ImageInfo

__all__ = [
    "IMAGE_PYTHON",
    "PAYLOAD_ATTRIBUTE",
    "ImageInfo",
    "current_image",
    "ensure_image",
    "image_status",
]
