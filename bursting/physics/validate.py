"""Is a merged campaign believable? The cross section agrees with the reference within three
combined standard errors, and the histograms the process must fill are not empty."""

from __future__ import annotations

import math
from typing import Any

from bursting.physics.processes import REQUIRED_HISTOGRAMS, Process
from bursting.physics.reference import lookup

TOLERANCE_SIGMAS = 3.0


def validate(summary: dict[str, Any]) -> list[str]:
    problems = []
    process = Process(summary["process"])
    reference = lookup(process.value, summary["sqrt_s_gev"])
    if reference is None:
        problems.append(
            f"no reference cross section for {process.value} at "
            f"{summary['sqrt_s_gev']:.0f} GeV; add one with: "
            "python -m bursting.physics reference"
        )
    else:
        difference = abs(summary["cross_section_mb"] - reference["sigma_mb"])
        combined = math.hypot(summary["cross_section_err_mb"], reference["sigma_err_mb"])
        if difference > TOLERANCE_SIGMAS * combined:
            problems.append(
                f"cross section {summary['cross_section_mb']:.4e} mb differs from the reference "
                f"{reference['sigma_mb']:.4e} mb by {difference / combined:.1f} standard errors "
                f"(allowed {TOLERANCE_SIGMAS:g})"
            )
    for name in REQUIRED_HISTOGRAMS[process]:
        if summary["histograms"].get(name, {}).get("entries", 0) == 0:
            problems.append(f"histogram {name} is empty")
    return problems
