"""Merge a campaign's job outputs: histograms (hist), a merged ROOT file, PNG plots (mplhep) and a
JSON summary with the generator cross section combined across jobs."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import hist
import numpy as np
import uproot

from bursting.physics.generate import write_tree

Histogram = hist.Hist[hist.storage.Double]


class MergeError(RuntimeError):
    """The job outputs do not form one complete campaign."""


def book() -> dict[str, Histogram]:
    return {
        "jet_pt": hist.Hist.new.Reg(48, 20, 500, name="pt", label="jet $p_T$ [GeV]").Double(),
        "lead_jet_pt": hist.Hist.new.Reg(
            48, 20, 500, name="pt", label="leading jet $p_T$ [GeV]"
        ).Double(),
        "dimuon_mass": hist.Hist.new.Reg(
            60, 60, 120, name="m", label="$m_{\\mu\\mu}$ [GeV]"
        ).Double(),
        "n_jets": hist.Hist.new.Integer(0, 16, name="n", label="jet multiplicity").Double(),
        "n_muons": hist.Hist.new.Integer(
            0, 6, name="n", label="isolated muon multiplicity"
        ).Double(),
        "n_tracks": hist.Hist.new.Reg(50, 0, 1000, name="n", label="track multiplicity").Double(),
    }


def read_jobs(inputs: Sequence[Path]) -> tuple[ak.Array, list[dict[str, Any]]]:
    """All events ordered by their global index, and every job's run record."""
    if not inputs:
        raise MergeError("no job outputs to merge")
    arrays, records = [], []
    for path in inputs:
        try:
            with uproot.open(path) as file:
                arrays.append(file["events"].arrays())
                run = file["run"].arrays(library="np")
        except (OSError, KeyError, ValueError) as exc:
            raise MergeError(f"{path}: not a job output ({exc})") from None
        records.append({key: float(values[0]) for key, values in run.items()})
    events = ak.concatenate(arrays)
    events = events[ak.argsort(events.event_index)]
    index = ak.to_numpy(events.event_index)
    if len(index) and (np.any(np.diff(index) != 1)):
        raise MergeError("event indices repeat or have gaps: jobs overlap or one is missing")
    return events, records


def _process_of(path: Path) -> str:
    """The process name, from the JSON run record written beside each job's ROOT file."""
    try:
        return str(json.loads(path.with_suffix(".json").read_text())["process"])
    except (OSError, KeyError, ValueError):
        name = path.with_suffix(".json").name
        raise MergeError(f"{path}: its run record {name} is missing") from None


def fill(events: ak.Array) -> dict[str, Histogram]:
    histograms = book()
    histograms["jet_pt"].fill(ak.to_numpy(ak.flatten(events.jet_pt)))
    leading = ak.firsts(events.jet_pt)
    histograms["lead_jet_pt"].fill(ak.to_numpy(leading[~ak.is_none(leading)]))
    mass = ak.to_numpy(events.dimuon_mass)
    histograms["dimuon_mass"].fill(mass[mass > 0])
    histograms["n_jets"].fill(ak.to_numpy(ak.num(events.jet_pt)))
    histograms["n_muons"].fill(ak.to_numpy(ak.num(events.mu_pt)))
    histograms["n_tracks"].fill(ak.to_numpy(events.n_tracks))
    return histograms


def combine_cross_section(records: Sequence[dict[str, Any]]) -> tuple[float, float]:
    """Each job's Pythia estimate weighted by its number of tried events (what the estimate's
    statistics rest on); errors combine in quadrature with the same weights."""
    weights = [r["n_tried"] for r in records]
    total = sum(weights)
    if total <= 0:
        raise MergeError("no job tried any event")
    sigma = sum(w * r["sigma_gen_mb"] for w, r in zip(weights, records, strict=True)) / total
    error = (
        math.sqrt(sum((w * r["sigma_err_mb"]) ** 2 for w, r in zip(weights, records, strict=True)))
        / total
    )
    return sigma, error


def digest(histogram: Histogram) -> str:
    """A fingerprint of the bin contents, to compare campaigns split differently."""
    return hashlib.sha256(np.ascontiguousarray(histogram.values(flow=True)).tobytes()).hexdigest()


def plot(histograms: dict[str, Histogram], directory: Path, title: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    mplhep.style.use("ROOT")
    plt.rcParams["mathtext.fontset"] = "dejavusans"  # the style's font lacks Greek glyphs here
    written = []
    for name, histogram in histograms.items():
        figure, axes = plt.subplots(figsize=(8, 6))
        mplhep.histplot(histogram, ax=axes, histtype="fill", alpha=0.6, label=title)
        axes.set_ylabel("events")
        axes.legend()
        figure.tight_layout()
        path = directory / f"{name}.png"
        figure.savefig(path, dpi=90)
        plt.close(figure)
        written.append(path)
    return written


def merge(inputs: Sequence[Path], output_dir: Path, campaign: str) -> dict[str, Any]:
    events, records = read_jobs(inputs)
    first = records[0]
    processes = {_process_of(path) for path in inputs}
    for key in ("sqrt_s_gev", "base_seed"):
        if len({record[key] for record in records}) != 1:
            raise MergeError(f"jobs disagree on {key}: they are not one campaign")
    if len(processes) != 1:
        raise MergeError(f"jobs disagree on the process ({sorted(processes)})")
    histograms = fill(events)
    sigma, error = combine_cross_section(records)
    output_dir.mkdir(parents=True, exist_ok=True)
    with uproot.recreate(output_dir / "merged.root") as out:
        write_tree(
            out,
            "events",
            {
                field: events[field]
                for field in ak.fields(events)
                if not field.startswith("n") or field == "n_tracks"
            },
        )
        for name, histogram in histograms.items():
            out[name] = histogram
    title = f"{campaign}: {len(events)} events"
    plots = plot(histograms, output_dir, title)
    summary = {
        "campaign": campaign,
        "process": processes.pop(),
        "events": len(events),
        "jobs": len(records),
        "sqrt_s_gev": first["sqrt_s_gev"],
        "base_seed": int(first["base_seed"]),
        "cross_section_mb": sigma,
        "cross_section_err_mb": error,
        "histograms": {
            name: {"entries": int(h.sum(flow=True)), "digest": digest(h)}
            for name, h in histograms.items()
        },
        "plots": [p.name for p in plots],
    }
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary
