"""Reference cross sections from high-statistics runs of the same settings, kept in the repo.

Pythia's cross-section estimate comes from sampling the hard process, which parton showers and
hadronisation do not change; the reference run therefore switches them off to afford many events.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pythia8mc

from bursting.physics.processes import Process, pythia_settings

REFERENCE_FILE = Path(__file__).with_name("reference.json")
REFERENCE_SEED = 20261123


def measure(process: Process, sqrt_s: float, events: int) -> dict[str, Any]:
    pythia = pythia8mc.Pythia("", False)
    for line in [
        *pythia_settings(process, sqrt_s, REFERENCE_SEED),
        "PartonLevel:all = off",
        "HadronLevel:all = off",
    ]:
        pythia.readString(line)
    if not pythia.init():
        raise RuntimeError(f"Pythia failed to initialise {process.value}")
    for _ in range(events):
        pythia.next()
    info = pythia.infoPython()
    return {
        "process": process.value,
        "sqrt_s_gev": sqrt_s,
        "events": events,
        "sigma_mb": info.sigmaGen(),
        "sigma_err_mb": info.sigmaErr(),
    }


def load() -> list[dict[str, Any]]:
    return list(json.loads(REFERENCE_FILE.read_text())["references"])


def lookup(process: str, sqrt_s: float) -> dict[str, Any] | None:
    for entry in load():
        if entry["process"] == process and abs(entry["sqrt_s_gev"] - sqrt_s) < 0.5:
            return entry
    return None
