"""Physics processes a campaign can generate, as Pythia 8 settings."""

from __future__ import annotations

import enum
import hashlib


class Process(enum.StrEnum):
    TTBAR = "ttbar"
    ZMUMU = "zmumu"
    DIJET = "dijet"


# Pythia 8 settings per process (on top of the beam energy and seeds).
SETTINGS: dict[Process, tuple[str, ...]] = {
    Process.TTBAR: ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on"),
    Process.ZMUMU: (
        "WeakSingleBoson:ffbar2gmZ = on",
        "WeakZ0:gmZmode = 2",  # Z0 only, no gamma* interference
        "23:onMode = off",
        "23:onIfAny = 13",
        "PhaseSpace:mHatMin = 60.",
    ),
    Process.DIJET: ("HardQCD:all = on", "PhaseSpace:pTHatMin = 50."),
}

# The histograms a campaign of each process must fill (others may legitimately stay empty).
REQUIRED_HISTOGRAMS: dict[Process, tuple[str, ...]] = {
    Process.TTBAR: ("jet_pt", "n_jets", "n_muons"),
    Process.ZMUMU: ("dimuon_mass", "n_muons", "n_jets"),
    Process.DIJET: ("jet_pt", "n_jets", "n_muons"),
}

SEED_MAX = 900_000_000  # Pythia's Random:seed range is 0..900000000


def event_seed(base_seed: int, event_index: int) -> int:
    """The seed of one event, a function of the campaign's base seed and the global index only."""
    digest = hashlib.sha256(f"{base_seed}:{event_index}".encode()).digest()
    return 1 + int.from_bytes(digest[:8], "big") % (SEED_MAX - 1)


def init_seed(base_seed: int) -> int:
    """Seed for Pythia's initialisation (MPI set-up), the same in every job of a campaign."""
    return event_seed(base_seed, -1)


def pythia_settings(process: Process, sqrt_s_gev: float, base_seed: int) -> list[str]:
    return [
        "Print:quiet = on",
        "Next:numberCount = 0",
        f"Beams:eCM = {sqrt_s_gev:.1f}",
        "Random:setSeed = on",
        f"Random:seed = {init_seed(base_seed)}",
        # A violated maximum must not change the sampling of later events: that would make an
        # event depend on which events ran before it in the same job.
        "PhaseSpace:increaseMaximum = off",
        *SETTINGS[process],
    ]
