"""Where the controller keeps its intent and history between cycles and across restarts."""

from __future__ import annotations

from bursting.store.base import StateStore
from bursting.store.sqlite import SQLiteStore, open_store

__all__ = ["SQLiteStore", "StateStore", "open_store"]
