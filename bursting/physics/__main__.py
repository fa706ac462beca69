"""`python -m bursting.physics generate|merge|validate|reference`: the payload's command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bursting.physics.processes import Process


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bursting.physics", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    gen = commands.add_parser("generate", help="one job: events [first, first + n) of a campaign")
    gen.add_argument("--process", type=Process, choices=list(Process), required=True)
    gen.add_argument("--sqrt-s", type=float, default=13000.0, help="centre-of-mass energy, GeV")
    gen.add_argument("--first-event", type=int, required=True)
    gen.add_argument("--events", type=int, required=True)
    gen.add_argument("--seed", type=int, required=True, help="the campaign's base seed")
    gen.add_argument("--output", type=Path, required=True, help="ROOT file to write")

    mer = commands.add_parser("merge", help="histograms, merged ROOT, plots, summary.json")
    mer.add_argument("--campaign", required=True)
    mer.add_argument("--output-dir", type=Path, required=True)
    mer.add_argument("inputs", type=Path, nargs="+")

    val = commands.add_parser("validate", help="check a summary against the reference")
    val.add_argument("summary", type=Path)

    ref = commands.add_parser("reference", help="high-statistics cross section for the reference")
    ref.add_argument("--process", type=Process, choices=list(Process), required=True)
    ref.add_argument("--sqrt-s", type=float, default=13000.0)
    ref.add_argument("--events", type=int, default=200_000)

    args = parser.parse_args(argv)
    if args.command == "generate":
        from bursting.physics.generate import generate

        if args.events < 1 or args.first_event < 0:
            parser.error("--events must be >= 1 and --first-event >= 0")
        record = generate(
            args.process, args.sqrt_s, args.first_event, args.events, args.seed, args.output
        )
        print(json.dumps(record))
        return 0
    if args.command == "merge":
        from bursting.physics.merge import merge

        print(json.dumps(merge(args.inputs, args.output_dir, args.campaign), indent=1))
        return 0
    if args.command == "validate":
        from bursting.physics.validate import validate

        problems = validate(json.loads(args.summary.read_text()))
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    from bursting.physics.reference import measure

    print(json.dumps(measure(args.process, args.sqrt_s, args.events)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
