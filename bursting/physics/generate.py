"""One job: generate events with Pythia 8, simulate the detector, reconstruct, write a ROOT file."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pythia8mc
import uproot

from bursting.physics.detector import Particle, simulate
from bursting.physics.processes import Process, event_seed, pythia_settings
from bursting.physics.reconstruct import Reconstructor

MAX_RETRIES = 10  # Pythia may reject an event; retrying continues the same seeded stream


class GenerationError(RuntimeError):
    """Pythia could not be initialised or kept failing on an event."""


def _pythia(process: Process, sqrt_s: float, base_seed: int) -> Any:
    pythia = pythia8mc.Pythia("", False)
    for line in pythia_settings(process, sqrt_s, base_seed):
        if not pythia.readString(line):
            raise GenerationError(f"Pythia rejected the setting {line!r}")
    if not pythia.init():
        raise GenerationError(f"Pythia failed to initialise {process.value} at {sqrt_s} GeV")
    return pythia


def _final_state(event: Any) -> list[Particle]:
    particles = []
    for i in range(event.size()):
        p = event[i]
        if p.isFinal():
            particles.append(Particle(p.id(), p.px(), p.py(), p.pz(), p.e(), p.charge()))
    return particles


def generate(
    process: Process, sqrt_s: float, first_event: int, events: int, base_seed: int, output: Path
) -> dict[str, Any]:
    """Generate events [first_event, first_event + events) of a campaign into `output` (ROOT);
    a JSON file beside it holds the run record, including Pythia's cross-section estimate."""
    started = time.time()
    pythia = _pythia(process, sqrt_s, base_seed)
    reco = Reconstructor()
    columns: dict[str, list[Any]] = {
        key: [] for key in ("event_index", "n_tracks", "dimuon_mass", "jets", "muons")
    }
    first_event_at: float | None = None  # when the first event was done: a job's start-up cost
    for index in range(first_event, first_event + events):
        seed = event_seed(base_seed, index)
        pythia.rndm.init(seed)
        for _ in range(MAX_RETRIES):
            if pythia.next():
                break
        else:
            raise GenerationError(f"event {index}: Pythia failed {MAX_RETRIES} times")
        measured = simulate(_final_state(pythia.event), np.random.default_rng(seed))
        result = reco.run(measured)
        if first_event_at is None:
            first_event_at = time.time()
        columns["event_index"].append(index)
        columns["n_tracks"].append(result.n_tracks)
        columns["dimuon_mass"].append(result.dimuon_mass)
        columns["jets"].append(
            [dict(zip(("pt", "eta", "phi", "m"), j, strict=True)) for j in result.jets]
        )
        columns["muons"].append(
            [dict(zip(("pt", "eta", "phi", "charge"), m, strict=True)) for m in result.muons]
        )
    info = pythia.infoPython()
    record = {
        "process": process.value,
        "sqrt_s_gev": sqrt_s,
        "base_seed": base_seed,
        "first_event": first_event,
        "events": events,
        "sigma_gen_mb": info.sigmaGen(),
        "sigma_err_mb": info.sigmaErr(),
        "n_tried": info.nTried(),
        "n_accepted": info.nAccepted(),
        "seconds": round(time.time() - started, 3),
        "started_at": round(started, 3),
        "first_event_at": round(first_event_at or time.time(), 3),
    }
    write_events(output, columns, record)
    output.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def write_events(output: Path, columns: dict[str, list[Any]], record: dict[str, Any]) -> None:
    """A TTree "events" (one entry per event, jagged jet and muon collections) and a TTree
    "run" with the job's record."""
    events = {
        "event_index": np.asarray(columns["event_index"], dtype=np.int64),
        "n_tracks": np.asarray(columns["n_tracks"], dtype=np.int32),
        "dimuon_mass": np.asarray(columns["dimuon_mass"], dtype=np.float64),
        "jet": _collection(columns["jets"], ("pt", "eta", "phi", "m")),
        "mu": _collection(columns["muons"], ("pt", "eta", "phi", "charge")),
    }
    run = {
        key: np.asarray([value], dtype=np.float64)
        for key, value in record.items()
        if isinstance(value, (int, float))
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    with uproot.recreate(output) as out:
        write_tree(out, "events", events)
        write_tree(out, "run", run)


def write_tree(out: Any, name: str, branches: dict[str, Any]) -> None:
    """Write a TTree (uproot would pick an RNTuple for a plain assignment)."""
    types = {
        key: (value.type.content if isinstance(value, ak.Array) else value.dtype)
        for key, value in branches.items()
    }
    out.mktree(name, types)
    out[name].extend(branches)


def _collection(rows: list[list[dict[str, float]]], fields: tuple[str, ...]) -> ak.Array:
    """Jagged records per event with float64 fields, also when no event has any entry."""
    return ak.zip(
        {
            field: ak.values_astype(
                ak.Array([[item[field] for item in row] for row in rows]), np.float64
            )
            for field in fields
        }
    )
