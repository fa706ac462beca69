"""bursting: grow an HTCondor pool onto clouds when the queue grows, shrink it when work is done."""

from __future__ import annotations

__version__ = "0.1.0"
