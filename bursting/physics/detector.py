"""A parametric detector: what an LHC general-purpose detector measures of a generated event.

Constants (documented here and in the README) are typical of ATLAS/CMS-like performance:

- Tracking: charged particles with |eta| < 2.5 and pT > 0.5 GeV are found with efficiency 95 %
  (90 % below 1 GeV); sigma(pT)/pT = 0.05 % x pT[GeV] (+) 1 %.
- Calorimeter: visible neutral and charged particles (not muons, not neutrinos) with |eta| < 4.9;
  electromagnetic (photons, electrons): sigma(E)/E = 10 %/sqrt(E) (+) 0.7 %;
  hadronic: sigma(E)/E = 50 %/sqrt(E) (+) 3 %.
- Muons: |eta| < 2.7, pT > 5 GeV, efficiency 95 %, sigma(pT)/pT = 2 % (+) 0.01 % x pT[GeV].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TRACK_ETA_MAX = 2.5
TRACK_PT_MIN = 0.5
TRACK_EFFICIENCY = 0.95
TRACK_EFFICIENCY_LOW_PT = 0.90
TRACK_RESOLUTION_SLOPE = 0.0005  # per GeV
TRACK_RESOLUTION_CONSTANT = 0.01

CALO_ETA_MAX = 4.9
EM_STOCHASTIC, EM_CONSTANT = 0.10, 0.007
HAD_STOCHASTIC, HAD_CONSTANT = 0.50, 0.03

MUON_ETA_MAX = 2.7
MUON_PT_MIN = 5.0
MUON_EFFICIENCY = 0.95
MUON_RESOLUTION_CONSTANT = 0.02
MUON_RESOLUTION_SLOPE = 0.0001  # per GeV

NEUTRINOS = {12, 14, 16}
EM_PARTICLES = {11, 22}


@dataclass(frozen=True)
class Particle:
    """A generated final-state particle (GeV)."""

    pid: int
    px: float
    py: float
    pz: float
    e: float
    charge: float

    @property
    def pt(self) -> float:
        return math.hypot(self.px, self.py)

    @property
    def eta(self) -> float:
        p = math.sqrt(self.px**2 + self.py**2 + self.pz**2)
        if p == abs(self.pz):
            return math.copysign(1e9, self.pz)
        return 0.5 * math.log((p + self.pz) / (p - self.pz))

    @property
    def phi(self) -> float:
        return math.atan2(self.py, self.px)


@dataclass(frozen=True)
class Measured:
    """What the detector saw: tracks, calorimeter deposits and muons (GeV)."""

    tracks: list[tuple[float, float, float, float]]  # pt, eta, phi, charge
    deposits: list[tuple[float, float, float, float]]  # px, py, pz, e
    muons: list[tuple[float, float, float, float]]  # pt, eta, phi, charge


def _quadrature(a: float, b: float) -> float:
    return math.hypot(a, b)


def simulate(particles: list[Particle], rng: np.random.Generator) -> Measured:
    """Apply acceptance, efficiency and resolution. `rng` is seeded per event by the caller."""
    tracks, deposits, muons = [], [], []
    for particle in particles:
        pid = abs(particle.pid)
        if pid in NEUTRINOS:
            continue
        pt, eta, phi = particle.pt, particle.eta, particle.phi
        if particle.charge and abs(eta) < TRACK_ETA_MAX and pt > TRACK_PT_MIN:
            efficiency = TRACK_EFFICIENCY if pt >= 1.0 else TRACK_EFFICIENCY_LOW_PT
            if rng.random() < efficiency:
                sigma = _quadrature(TRACK_RESOLUTION_SLOPE * pt, TRACK_RESOLUTION_CONSTANT)
                tracks.append((pt * max(0.0, 1 + rng.normal(0, sigma)), eta, phi, particle.charge))
        if pid == 13:
            if abs(eta) < MUON_ETA_MAX and pt > MUON_PT_MIN and rng.random() < MUON_EFFICIENCY:
                sigma = _quadrature(MUON_RESOLUTION_CONSTANT, MUON_RESOLUTION_SLOPE * pt)
                muons.append((pt * max(0.0, 1 + rng.normal(0, sigma)), eta, phi, particle.charge))
            continue
        if abs(eta) < CALO_ETA_MAX and particle.e > 0:
            stochastic, constant = (
                (EM_STOCHASTIC, EM_CONSTANT)
                if pid in EM_PARTICLES
                else (HAD_STOCHASTIC, HAD_CONSTANT)
            )
            sigma = _quadrature(stochastic / math.sqrt(particle.e), constant)
            scale = max(0.0, 1 + rng.normal(0, sigma))
            deposits.append(
                (particle.px * scale, particle.py * scale, particle.pz * scale, particle.e * scale)
            )
    return Measured(tracks, deposits, muons)
