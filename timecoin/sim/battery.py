"""The safety battery: every scenario, seeded, on whole simulated devnets.

Usage::

    python -m timecoin.sim.battery [--nodes 4|100] [--seeds N] [--first-seed K]
                                   [--scenario NAME] [--budget SECONDS] [--verbose]
                                   [--outcomes FILE]
    python -m timecoin.sim.battery --merge FILE [FILE ...]

Runs each scenario of :mod:`timecoin.sim.battery_scenarios` (or the one
named; a name ending in ``*`` selects by prefix) at the given size over seeds
``0..N-1`` and prints one row per scenario: seeds run, safety violations
(pairs of conflicting transactions both finalized by honest nodes),
monotonicity violations (an honest node's final status that changed),
liveness failures (honest uncontested transactions not finalized everywhere
within the bound), finality p50/p99 in simulated seconds and rounds per
finalized transaction. Exit status 1 on any violation, failure or error.
``--budget`` bounds the wall time: once spent, no new run starts and the
rows say how many seeds ran.

A battery too long for one process is split over several: ``--first-seed``
starts the seeds at K (seeds ``K..K+N-1``), ``--outcomes`` appends each run's
outcome to FILE as a JSON line as soon as it ends, and ``--merge`` prints the
table (and the exit status) of every outcome in the files given, one row per
scenario and size, in the battery's order.
"""

import argparse
import json
import sys
import time
from dataclasses import dataclass, field

from timecoin.sim.battery_run import Outcome, run_scenario
from timecoin.sim.battery_scenarios import SCENARIOS, scenarios_for
from timecoin.sim.checker import percentile


@dataclass
class Row:
    """A scenario's results over its seeds at one size."""

    scenario: str
    nodes: int
    outcomes: list = field(default_factory=list)

    @property
    def seeds(self):
        return len(self.outcomes)

    def total(self, attribute):
        return sum(len(getattr(o, attribute)) for o in self.outcomes)

    @property
    def unsafe_seeds(self):
        return sum(1 for o in self.outcomes if o.conflicts)

    @property
    def errors(self):
        return sum(1 for o in self.outcomes if o.error)

    @property
    def failed(self):
        return any(o.failed for o in self.outcomes)

    def times(self):
        return [t for o in self.outcomes for t in o.times]

    def rounds(self):
        values = [o.rounds for o in self.outcomes if o.rounds is not None]
        return sum(values) / len(values) if values else None


COLUMNS = ("scenario", "nodes", "seeds", "safety", "unsafe seeds", "monotone", "liveness",
           "errors", "p50 s", "p99 s", "rounds/tx", "wall s")


def _number(value, digits=2):
    return "-" if value is None else f"{value:.{digits}f}"


def cells(row):
    times = row.times()
    return (row.scenario, str(row.nodes), str(row.seeds), str(row.total("conflicts")),
            str(row.unsafe_seeds), str(row.total("non_monotone")), str(row.total("liveness")),
            str(row.errors), _number(percentile(times, 0.5)), _number(percentile(times, 0.99)),
            _number(row.rounds(), 1), _number(sum(o.wall_s for o in row.outcomes), 0))


def table(rows):
    """The rows as a Markdown table."""
    lines = [cells(r) for r in rows]
    widths = [max(len(c), *(len(line[n]) for line in lines)) for n, c in enumerate(COLUMNS)]
    def fmt(values):
        padded = (v.ljust(w) if n == 0 else v.rjust(w)
                  for n, (v, w) in enumerate(zip(values, widths, strict=True)))
        return "| " + " | ".join(padded) + " |"
    rule = "|" + "|".join("-" * (w + 1) + (":" if n else "-")
                          for n, w in enumerate(widths)) + "|"
    return "\n".join([fmt(COLUMNS), rule] + [fmt(line) for line in lines])


def select(name, size):
    names = scenarios_for(size)
    if name is None:
        return names
    if name.endswith("*"):
        return [n for n in names if n.startswith(name[:-1])]
    if name not in SCENARIOS:
        raise SystemExit(f"unknown scenario {name!r}; one of: {', '.join(SCENARIOS)}")
    return [name]


def run_battery(names, size, seeds, budget=None, report=None):
    """Run each scenario over ``seeds`` (an iterable of ints); the rows.
    ``report(outcome)`` is called after each run."""
    started = time.monotonic()
    rows = []
    for name in names:
        row = Row(name, size)
        rows.append(row)
        for seed in seeds:
            if budget is not None and time.monotonic() - started > budget:
                return rows
            outcome = run_scenario(name, SCENARIOS[name], size, seed)
            row.outcomes.append(outcome)
            if report is not None:
                report(outcome)
    return rows


def merge(paths):
    """Rows of the outcomes recorded in the JSON-lines files ``paths``."""
    rows = {}
    for path in paths:
        with open(path) as f:
            for line in f:
                if line.strip():
                    outcome = Outcome.from_record(json.loads(line))
                    key = (outcome.scenario, outcome.nodes)
                    rows.setdefault(key, Row(*key)).outcomes.append(outcome)
    def order(key):
        names = scenarios_for(key[1])
        return (key[1], names.index(key[0]) if key[0] in names else len(names), key[0])
    merged = [rows[key] for key in sorted(rows, key=order)]
    for row in merged:
        row.outcomes.sort(key=lambda o: o.seed)
    return merged


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m timecoin.sim.battery",
                                     description="The safety battery on the simulator.")
    parser.add_argument("--nodes", type=int, default=4, help="masternodes per cluster")
    parser.add_argument("--seeds", type=int, default=20, help="seeds 0..N-1 per scenario")
    parser.add_argument("--first-seed", type=int, default=0, help="the first seed run")
    parser.add_argument("--scenario", help="one scenario (or a prefix ending in *)")
    parser.add_argument("--budget", type=float, default=3600.0,
                        help="wall seconds after which no new run starts")
    parser.add_argument("--verbose", action="store_true", help="a line per run")
    parser.add_argument("--outcomes", help="append each run's outcome to this file (JSON lines)")
    parser.add_argument("--merge", nargs="+", metavar="FILE",
                        help="print the table of the outcomes in these files; run nothing")
    args = parser.parse_args(argv)
    if args.merge:
        rows = merge(args.merge)
        print(table(rows))
        return 1 if any(r.failed for r in rows) else 0
    names = select(args.scenario, args.nodes)

    def report(outcome):
        if args.verbose or outcome.failed:
            print(outcome.summary(), file=sys.stderr, flush=True)
        if args.outcomes:
            with open(args.outcomes, "a") as f:
                f.write(json.dumps(outcome.to_record()) + "\n")

    seeds = range(args.first_seed, args.first_seed + args.seeds)
    rows = run_battery(names, args.nodes, seeds, args.budget, report)
    print(table(rows))
    ran = sum(r.seeds for r in rows)
    wanted = len(names) * args.seeds
    if ran < wanted:
        print(f"wall-time budget spent: {ran} of {wanted} runs", file=sys.stderr)
    return 1 if any(r.failed for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
