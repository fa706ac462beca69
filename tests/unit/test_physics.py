"""The physics payload: seeding, detector response, reproducibility across job splits, merge and
validation."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uproot

from bursting.physics import detector
from bursting.physics.generate import generate
from bursting.physics.merge import MergeError, combine_cross_section, merge
from bursting.physics.processes import SEED_MAX, Process, event_seed
from bursting.physics.validate import validate


def test_event_seeds_depend_only_on_base_seed_and_index() -> None:
    seeds = [event_seed(7, i) for i in range(1000)]
    assert seeds == [event_seed(7, i) for i in range(1000)]
    assert len(set(seeds)) == 1000
    assert all(0 < s < SEED_MAX for s in seeds)
    assert event_seed(8, 0) != event_seed(7, 0)


def test_detector_efficiency_and_resolution_match_the_documented_constants() -> None:
    rng = np.random.default_rng(1)
    muon = detector.Particle(13, 50.0, 0.0, 0.0, 50.0, -1.0)
    measured = [detector.simulate([muon], rng).muons for _ in range(4000)]
    found = [m[0][0] for m in measured if m]
    assert len(found) / 4000 == pytest.approx(detector.MUON_EFFICIENCY, abs=0.015)
    expected = math.hypot(detector.MUON_RESOLUTION_CONSTANT, detector.MUON_RESOLUTION_SLOPE * 50)
    assert np.std(np.array(found) / 50.0) == pytest.approx(expected, rel=0.1)


def test_detector_acceptance() -> None:
    rng = np.random.default_rng(2)
    forward_muon = detector.Particle(13, 5.0, 0.0, 500.0, 500.03, 1.0)  # |eta| ~ 5.3
    neutrino = detector.Particle(12, 30.0, 0.0, 0.0, 30.0, 0.0)
    photon = detector.Particle(22, 20.0, 0.0, 0.0, 20.0, 0.0)
    seen = detector.simulate([forward_muon, neutrino, photon], rng)
    assert seen.muons == [] and seen.tracks == []
    assert len(seen.deposits) == 1  # only the photon reaches the calorimeter


def run_jobs(tmp: Path, name: str, splits: list[tuple[int, int]], process: Process) -> list[Path]:
    outputs = []
    for number, (first, count) in enumerate(splits):
        path = tmp / name / f"job{number}.root"
        generate(process, 13000.0, first, count, 42, path)
        outputs.append(path)
    return outputs


@pytest.mark.slow
def test_histograms_are_identical_however_the_campaign_is_split(tmp_path: Path) -> None:
    one = merge(run_jobs(tmp_path, "one", [(0, 12)], Process.ZMUMU), tmp_path / "o1", "c")
    three = merge(
        run_jobs(tmp_path, "three", [(8, 4), (0, 5), (5, 3)], Process.ZMUMU), tmp_path / "o3", "c"
    )
    assert one["histograms"] == three["histograms"]
    assert one["events"] == three["events"] == 12 and three["jobs"] == 3
    with (
        uproot.open(tmp_path / "o1" / "merged.root") as a,
        uproot.open(tmp_path / "o3" / "merged.root") as b,
    ):
        assert a["events"]["jet_pt"].array().tolist() == b["events"]["jet_pt"].array().tolist()
        assert a["dimuon_mass"].values().tolist() == b["dimuon_mass"].values().tolist()
    assert one["cross_section_mb"] == pytest.approx(three["cross_section_mb"], rel=1e-9)
    assert sorted(p.name for p in (tmp_path / "o3").glob("*.png")) == sorted(three["plots"])


@pytest.mark.slow
def test_job_output_has_events_and_run_record(tmp_path: Path) -> None:
    (path,) = run_jobs(tmp_path, "t", [(100, 5)], Process.TTBAR)
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["process"] == "ttbar" and record["events"] == 5
    assert record["sigma_gen_mb"] > 0 and record["n_accepted"] == 5
    with uproot.open(path) as file:
        events = file["events"].arrays()
        assert events.event_index.tolist() == [100, 101, 102, 103, 104]
        assert set(file["events"].keys()) >= {"jet_pt", "jet_eta", "mu_pt", "dimuon_mass"}


@pytest.mark.slow
def test_merge_refuses_overlapping_or_mixed_jobs(tmp_path: Path) -> None:
    overlapping = run_jobs(tmp_path, "overlap", [(0, 3), (2, 3)], Process.ZMUMU)
    with pytest.raises(MergeError, match="repeat or have gaps"):
        merge(overlapping, tmp_path / "out", "c")
    mixed = [
        *run_jobs(tmp_path, "z", [(0, 2)], Process.ZMUMU),
        *run_jobs(tmp_path, "t", [(2, 2)], Process.TTBAR),
    ]
    with pytest.raises(MergeError, match="process"):
        merge(mixed, tmp_path / "out2", "c")
    with pytest.raises(MergeError, match="no job outputs"):
        merge([], tmp_path / "out3", "c")


def test_cross_sections_combine_weighted_by_tried_events() -> None:
    records = [
        {"sigma_gen_mb": 1.0, "sigma_err_mb": 0.2, "n_tried": 100},
        {"sigma_gen_mb": 2.0, "sigma_err_mb": 0.1, "n_tried": 300},
    ]
    sigma, error = combine_cross_section(records)
    assert sigma == pytest.approx((100 * 1.0 + 300 * 2.0) / 400)
    assert error == pytest.approx(math.sqrt((100 * 0.2) ** 2 + (300 * 0.1) ** 2) / 400)


def summary(**changes: Any) -> dict[str, Any]:
    base = {
        "process": "zmumu",
        "sqrt_s_gev": 13000.0,
        "cross_section_mb": 1.43e-6,
        "cross_section_err_mb": 0.05e-6,
        "histograms": {name: {"entries": 10} for name in ("dimuon_mass", "n_muons", "n_jets")},
    }
    base.update(changes)
    return base


def test_validation_accepts_agreement_and_names_each_problem() -> None:
    assert validate(summary()) == []
    (problem,) = validate(summary(cross_section_mb=2.0e-6))
    assert "standard errors" in problem
    empty = summary(
        histograms={
            "dimuon_mass": {"entries": 0},
            "n_muons": {"entries": 3},
            "n_jets": {"entries": 3},
        }
    )
    assert validate(empty) == ["histogram dimuon_mass is empty"]
    (missing,) = validate(summary(sqrt_s_gev=7000.0))
    assert "no reference cross section" in missing


def test_payload_cli_rejects_bad_arguments() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bursting.physics",
            "generate",
            "--process",
            "higgs",
            "--first-event",
            "0",
            "--events",
            "1",
            "--seed",
            "1",
            "--output",
            "/tmp/x.root",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and "invalid Process value" in result.stderr
