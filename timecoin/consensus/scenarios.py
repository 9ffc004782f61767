"""The seeded safety battery and the byzantine sweep, over :mod:`timecoin.consensus.simulation`.

Every scenario: ``uncontested`` plain transactions and ``pairs`` double-spend
races (honest nodes split evenly between the two sides, byzantine nodes see A
first), disturbed until ``heal_at`` (message loss, a partition, restarts of a
third of the nodes, byzantine stake), then healed; at ``heal_at`` every coin
whose spends are not finalized by every honest node is spent again (a wallet
retrying), and the run goes on until ``end``. A row reports violations (two
honest nodes finalizing conflicting transactions, or a decision changing),
the share of uncontested transactions finalized, finality p50/p99 in
simulated seconds and rounds per finalized transaction.

``python -m timecoin.consensus.simulation --battery`` runs the battery,
``--sweep`` the byzantine share sweep (see ``--help``).
"""

import argparse
import statistics

from timecoin.consensus.simulation import (
    ALWAYS_FLIP,
    ALWAYS_REJECT,
    EQUIVOCATE,
    NEVER_ANSWER,
    NO_THEN_YES,
    STRATEGIES,
    YES_TO_BOTH,
    Simulation,
)
from timecoin.consensus.snowball import SnowballParams


def run_scenario(n_nodes=100, seed=1, loss=0.0, partition=None, restart_third=False,
                 strategy=None, share=0.0, uncontested=4, pairs=2, heal_at=10.0, end=25.0,
                 params=None):
    """Run one seeded scenario; return the finished :class:`Simulation`.

    ``partition`` is a list of group shares (e.g. ``(0.5, 0.5)``, ``(0.7, 0.3)``)
    or ``"isolated"`` (one node alone), held from 0 until ``heal_at``.
    """
    count = round(n_nodes * share) if strategy else 0
    sim = Simulation(n_nodes, params=params or SnowballParams(), seed=seed,
                     byzantine={strategy: count} if count else None, loss=loss,
                     loss_until=heal_at)
    rng = sim.rng
    honest = [n.node_id for n in sim.honest_nodes]
    order = sorted(range(n_nodes), key=lambda _: rng.random())
    if partition == "isolated":
        sim.partition([[order[0]], order[1:]], 0.0, heal_at)
    elif partition:
        groups, start = [], 0
        for index, part in enumerate(partition):
            stop = n_nodes if index == len(partition) - 1 else start + round(part * n_nodes)
            groups.append(order[start:stop])
            start = stop
        sim.partition(groups, 0.0, heal_at)
    if restart_third:
        for node_id in rng.sample(honest, max(1, len(honest) // 3)):
            sim.restart(node_id, at=rng.uniform(0.2, 1.0), down_s=rng.uniform(0.5, 2.0))
    for index in range(uncontested):
        sim.submit(f"u{index}", [("coin-u", index)], first_nodes=[rng.choice(honest)],
                   at=index * 0.05)
    side_a = honest[0::2] + [n.node_id for n in sim.nodes if not n.honest]
    side_b = honest[1::2]
    for index in range(pairs):
        sim.submit_conflict(f"c{index}a", f"c{index}b", [("coin-c", index)], side_a, side_b)
    sim.run(until=heal_at)
    coins = {}
    for txid, outpoints in sim.txs.items():
        for op in outpoints:
            coins.setdefault(op, []).append(txid)
    for op, txids in sorted(coins.items(), key=repr):
        done = all(any(n.decisions.get(t, (False,))[0] for t in txids) for n in sim.honest_nodes)
        if not done:
            sim.submit(f"r{op[0]}.{op[1]}", [op], first_nodes=[rng.choice(honest)],
                       at=heal_at)
    sim.run(until=end)
    return sim


def summarize(sims):
    """One row of figures over the runs ``sims`` (same scenario, different seeds)."""
    violations = finalized = uncontested = 0
    times, rounds = [], []
    for sim in sims:
        report = sim.report()
        violations += len(report.conflicting_finalizations) + len(report.status_changes)
        for txid, accepted in report.accepted_share.items():
            if txid.startswith("u"):
                uncontested += 1
                finalized += accepted
        times.extend(report.finality_s)
        rounds.extend(r for r, c in report.rounds_to_accept.items() for _ in range(c))
    times.sort()
    return {
        "seeds": len(sims), "violations": violations,
        "uncontested_finalized": finalized / uncontested if uncontested else 1.0,
        "p50_s": times[len(times) // 2] if times else None,
        "p99_s": times[min(len(times) - 1, int(len(times) * 0.99))] if times else None,
        "rounds": statistics.mean(rounds) if rounds else None,
    }


#: The battery: (name, keyword arguments of :func:`run_scenario`).
BATTERY = (
    [(f"loss {p}% then re-spends", {"loss": p / 100}) for p in (0, 2, 5, 10, 20)]
    + [("partition 50/50", {"partition": (0.5, 0.5)}),
       ("partition 70/30", {"partition": (0.7, 0.3)}),
       ("one node isolated", {"partition": "isolated"}),
       ("restart a third mid-decision", {"restart_third": True})]
    + [(f"byzantine {s} {share:.0%}", {"strategy": s, "share": share})
       for s in STRATEGIES for share in (0.1, 0.2, 0.33)]
)


def battery(n_nodes=100, seeds=range(1, 21), scenarios=BATTERY, **kwargs):
    """``[(name, row)]`` for every scenario over ``seeds``."""
    return [(name, summarize([run_scenario(n_nodes, seed=s, **opts, **kwargs) for s in seeds]))
            for name, opts in scenarios]


def sweep(strategy, shares, n_nodes=100, seeds=range(1, 6), **kwargs):
    """``[(share, row)]``: the scenario under growing byzantine shares of ``strategy``."""
    return [(share, summarize([run_scenario(n_nodes, seed=s, strategy=strategy, share=share,
                                            **kwargs) for s in seeds]))
            for share in shares]


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def format_rows(rows, first="scenario"):
    """Rows of :func:`battery` or :func:`sweep` as a Markdown table."""
    lines = [f"| {first} | seeds | violations | uncontested finalized | p50 s | p99 s "
             "| rounds per tx |", "|---|---|---|---|---|---|---|"]
    for name, row in rows:
        label = f"{name:.0%}" if isinstance(name, float) else name
        lines.append(f"| {label} | {row['seeds']} | {row['violations']} "
                     f"| {row['uncontested_finalized']:.0%} | {_fmt(row['p50_s'], '.2f')} "
                     f"| {_fmt(row['p99_s'], '.2f')} | {_fmt(row['rounds'], '.1f')} |")
    return "\n".join(lines)


def main(argv=None):
    """Command line: ``--battery`` and/or ``--sweep`` (see ``--help``)."""
    parser = argparse.ArgumentParser(prog="python -m timecoin.consensus.simulation")
    parser.add_argument("--battery", action="store_true", help="run the safety battery")
    parser.add_argument("--sweep", action="store_true", help="sweep the byzantine share")
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--strategies", default=f"{NO_THEN_YES},{YES_TO_BOTH},{ALWAYS_FLIP}")
    parser.add_argument("--shares", default="0.2,0.25,0.3,0.33,0.35,0.4,0.45,0.5",
                        help="byzantine stake shares for --sweep, comma-separated")
    args = parser.parse_args(argv)
    seeds = range(1, args.seeds + 1)
    if args.battery:
        print(f"## battery, {args.nodes} nodes\n")
        print(format_rows(battery(args.nodes, seeds)))
    if args.sweep:
        shares = [float(x) for x in args.shares.split(",")]
        for strategy in args.strategies.split(","):
            print(f"\n## sweep: {strategy}, {args.nodes} nodes\n")
            print(format_rows(sweep(strategy, shares, args.nodes, seeds), first="byzantine"))


__all__ = ["ALWAYS_REJECT", "BATTERY", "EQUIVOCATE", "NEVER_ANSWER", "battery", "format_rows",
           "main", "run_scenario", "summarize", "sweep"]
