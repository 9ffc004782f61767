"""The byzantine sweep of the BFT round machine (the table in doc/bft.md).

10 equal-stake validators, the first ``k`` of them faulty (k = 0..5), honest
validators in two halves (every other one) that cannot reach each other until
GST = 20 s, 5 % loss before GST, a 400 s limit. Each fault kind of
:mod:`timecoin.consensus.bft_sim` runs once per seed. A run is *live* if every
honest validator committed ``heights`` blocks, and *forked* if two honest
validators committed different blocks at some height.

``python -m timecoin.consensus.bft_sweep --seeds 3 --heights 30`` prints the table.
"""

import argparse
import sys
from dataclasses import dataclass

from timecoin.consensus.bft_sim import Scenario, run_scenario

FAULTS = ("equivocating", "split", "silent", "lying")
VALIDATORS = 10


@dataclass(frozen=True)
class SweepRow:
    """The runs of one (byzantine count, fault kind)."""

    faulty: int
    fault: str
    runs: int
    forked: int
    conflicting_heights: int
    live: int
    evidence: int


def sweep_scenario(faulty, fault, seed, heights):
    """The sweep's scenario for ``faulty`` validators of kind ``fault``."""
    honest = list(range(faulty, VALIDATORS))
    halves = (tuple(honest[::2]), tuple(honest[1::2]))
    return Scenario(stakes=(1,) * VALIDATORS, heights=heights, seed=seed,
                    faults=dict.fromkeys(range(faulty), fault), partition=halves,
                    gst=20.0, loss=0.05, time_limit=400.0)


def sweep_row(faulty, fault, seeds, heights):
    """Run every seed of one (byzantine count, fault kind)."""
    forked = live = conflicts = evidence = 0
    for seed in range(seeds):
        result = run_scenario(sweep_scenario(faulty, fault, seed, heights))
        forked += not result.safe
        live += result.heights_committed >= heights
        conflicts += len(result.conflicting_heights)
        evidence += result.evidence
    return SweepRow(faulty, fault, seeds, forked, conflicts, live, evidence)


def sweep(seeds=3, heights=30, faults=FAULTS, max_faulty=5, out=sys.stdout):
    """Print the sweep as a Markdown table while it runs; return its rows."""
    print("| byzantine stake | fault | runs | forked runs | conflicting heights | "
          "live runs | evidence |", file=out)
    print("|---|---|---|---|---|---|---|", file=out)
    rows = []
    for faulty in range(max_faulty + 1):
        for fault in faults:
            row = sweep_row(faulty, fault, seeds, heights)
            rows.append(row)
            print(f"| {faulty}/{VALIDATORS} | {fault} | {row.runs} | {row.forked} | "
                  f"{row.conflicting_heights} | {row.live} | {row.evidence} |",
                  file=out, flush=True)
    return rows


def main(argv=None):
    """Command line: the sweep (see ``--help``)."""
    parser = argparse.ArgumentParser(prog="python -m timecoin.consensus.bft_sweep")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--heights", type=int, default=30)
    parser.add_argument("--faults", default=",".join(FAULTS),
                        help="fault kinds, comma-separated")
    args = parser.parse_args(argv)
    sweep(args.seeds, args.heights, tuple(args.faults.split(",")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
