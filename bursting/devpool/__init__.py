"""A real personal HTCondor pool on this machine, for development, the demo and the tests."""

from __future__ import annotations

from bursting.devpool.pool import DevPool

__all__ = ["DevPool"]
