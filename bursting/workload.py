"""A short, seeded CPU-bound job (a Monte Carlo estimate of pi) for exercising the pool quickly.

``python -m bursting.workload --samples N --seed S --output FILE``; the backend tests queue many
of these, where the physics payload would be slower than the test needs.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path


def estimate_pi(samples: int, seed: int) -> float:
    rng = random.Random(seed)
    inside = sum(1 for _ in range(samples) if rng.random() ** 2 + rng.random() ** 2 <= 1.0)
    return 4.0 * inside / samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    started = time.time()
    value = estimate_pi(args.samples, args.seed)
    result = {
        "seed": args.seed,
        "samples": args.samples,
        "pi": value,
        "seconds": round(time.time() - started, 3),
    }
    args.output.write_text(json.dumps(result) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
