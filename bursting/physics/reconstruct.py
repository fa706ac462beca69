"""Reconstruction: anti-kT R=0.4 jets (Pythia's SlowJet) from calorimeter deposits, isolated
muons, and the dimuon mass."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pythia8mc

from bursting.physics.detector import Measured

JET_R = 0.4
JET_PT_MIN = 20.0
JET_ETA_MAX = 4.5
MUON_ISOLATION_R = 0.3
MUON_ISOLATION_FRACTION = 0.1  # sum of track pT around the muon < 10 % of its pT
MUON_MASS = 0.1056583755


@dataclass
class Reconstructed:
    jets: list[tuple[float, float, float, float]] = field(default_factory=list)  # pt eta phi m
    muons: list[tuple[float, float, float, float]] = field(default_factory=list)  # pt eta phi q
    n_tracks: int = 0
    dimuon_mass: float = -1.0  # -1 when there is no opposite-charge pair


class Reconstructor:
    """Holds the SlowJet clusterer so it is built once per job, not once per event."""

    def __init__(self) -> None:
        # power -1 = anti-kT; select 1 = every final-state entry (the deposits); massSet 2.
        self._jets = pythia8mc.SlowJet(-1, JET_R, JET_PT_MIN, JET_ETA_MAX, 1, 2)
        # The event keeps a raw pointer to its particle data: hold a reference for its lifetime.
        self._particle_data = pythia8mc.ParticleData()
        self._event = pythia8mc.Event()
        self._event.init("deposits", self._particle_data)

    def run(self, measured: Measured) -> Reconstructed:
        result = Reconstructed(n_tracks=len(measured.tracks))
        event = self._event
        event.reset()
        for px, py, pz, e in measured.deposits:
            mass2 = max(0.0, e * e - px * px - py * py - pz * pz)
            event.append(22, 1, 0, 0, px, py, pz, e, math.sqrt(mass2))
        if self._jets.analyze(event):
            for i in range(self._jets.sizeJet()):
                momentum = self._jets.p(i)
                result.jets.append(
                    (
                        self._jets.pT(i),
                        self._jets.y(i),
                        self._jets.phi(i),
                        max(0.0, momentum.mCalc()),
                    )
                )
        result.muons = [m for m in measured.muons if _isolated(m, measured.tracks)]
        result.muons.sort(key=lambda m: -m[0])
        result.dimuon_mass = _dimuon_mass(result.muons)
        return result


def _delta_r(eta1: float, phi1: float, eta2: float, phi2: float) -> float:
    dphi = (phi1 - phi2 + math.pi) % (2 * math.pi) - math.pi
    return math.hypot(eta1 - eta2, dphi)


def _isolated(
    muon: tuple[float, float, float, float], tracks: list[tuple[float, float, float, float]]
) -> bool:
    pt, eta, phi, _ = muon
    around = sum(t[0] for t in tracks if 0.01 < _delta_r(eta, phi, t[1], t[2]) < MUON_ISOLATION_R)
    return around < MUON_ISOLATION_FRACTION * pt


def _four(pt: float, eta: float, phi: float) -> tuple[float, float, float, float]:
    px, py, pz = pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta)
    return px, py, pz, math.sqrt(px * px + py * py + pz * pz + MUON_MASS**2)


def _dimuon_mass(muons: list[tuple[float, float, float, float]]) -> float:
    """Mass of the two leading opposite-charge isolated muons."""
    for i, first in enumerate(muons):
        for second in muons[i + 1 :]:
            if first[3] * second[3] < 0:
                a, b = _four(*first[:3]), _four(*second[:3])
                e = a[3] + b[3]
                p2 = sum((a[k] + b[k]) ** 2 for k in range(3))
                return math.sqrt(max(0.0, e * e - p2))
    return -1.0
