"""The scenarios of the safety battery, each a function of a :class:`BatteryRun`.

Every scenario starts its cluster, disturbs it, heals it, lets it settle and
probes liveness with fresh transfers; the run's checker judges what every
honest node reported. ``SCENARIOS`` maps a name to its function:

* ``loss-P`` — P % of frames lost while a batch of uncontested transfers is
  decided, then healing, then the wallet re-spends every coin whose transfer
  its node reports rejected or stalled;
* ``partition-50``, ``partition-70``, ``partition-isolated`` — double-spend
  races with the two spends sent on the two sides of a partition, then healing;
* ``restart-third`` — races and transfers under way while a random third of
  the nodes stop and start again;
* ``byzantine-STRATEGY-S`` — S % of the stake (at 4 nodes: one node) answers
  with STRATEGY while races and transfers are decided, then the wallets
  re-spend what did not finalize; liveness is required only while the honest
  share is at least ``alpha`` (or the strategy cannot block: ``yes``);
* ``eclipse`` — one honest node linked to a single (byzantine, "yes" to
  everything) masternode, a double spend sent through it and through the rest.
"""

import math

from timecoin.sim import scenario
from timecoin.sim.byzantine import (
    ConstantVotes,
    FlippedVotes,
    NoThenYesVotes,
    SilentVotes,
    SplitVotes,
)
from timecoin.sim.cluster import random_topology

#: Transfers per batch, races per scenario.
BATCH = 8
RACES = 4
#: Simulated seconds of a disturbance (loss, partition).
DISTURBED_S = 60.0
PARTITION_S = 10.0
#: The devnet's alpha (alpha_confidence, a share of k).
ALPHA = 0.75

STRATEGIES = {
    "no": lambda run: ConstantVotes(False),
    "yes": lambda run: ConstantVotes(True),
    "no-then-yes": lambda run: NoThenYesVotes(run.coin_of),
    "equivocate": lambda run: SplitVotes(run.coin_of),
    "withhold": lambda run: SilentVotes(),
    "flip": lambda run: FlippedVotes(),
}
#: Strategies that cannot keep an uncontested transaction from finalizing.
NON_BLOCKING = {"yes"}
BYZANTINE_SHARES = (10, 20, 33)
LOSSES = (0, 2, 5, 10, 20)


def _races(run, count, first_side, second_side):
    for _ in range(count):
        run.race(run.new_coin(), run.pick(first_side), run.pick(second_side))


def loss(percent):
    def body(run):
        run.start()
        scenario.set_loss(run.cluster, percent / 100)
        originals = run.send_uncontested(BATCH)
        run.settle(timeout=DISTURBED_S)
        scenario.set_loss(run.cluster, 0.0)  # the default conditions carry the loss
        scenario.heal(run.cluster)
        run.respend_unfinalized(originals)
        run.settle()
        run.require_finalized(list(run.uncontested))
        run.probe()
    return body


def partition(kind):
    def body(run):
        run.start()
        size = run.cluster.size
        if kind == "isolated":
            lone = run.rng.randrange(size)
            scenario.isolate(run.cluster, lone)
            sides = [[lone], [i for i in range(size) if i != lone]]
        else:
            sides = list(scenario.split(run.cluster, kind / 100))
        _races(run, RACES, sides[0], sides[1])
        run.send_uncontested(RACES, sides[1])
        run.cluster.run(PARTITION_S)
        scenario.heal(run.cluster)
        run.settle()
        run.require_finalized(list(run.uncontested))
        run.probe()
    return body


def restart_third(run):
    run.start()
    _races(run, RACES, None, None)
    run.send_uncontested(RACES)
    run.cluster.run(0.2)  # mid-decision: about a third of the rounds done
    scenario.restart_share(run.cluster, 1 / 3)
    run.settle()
    run.require_finalized(list(run.uncontested))
    run.probe()


def byzantine(strategy, percent):
    def body(run):
        run.start()
        size = run.cluster.size
        count = 1 if size <= 4 else max(1, round(size * percent / 100))
        liars = sorted(run.rng.sample(range(size), count))
        make = STRATEGIES[strategy]
        run.make_byzantine(liars, lambda i: make(run))
        run.liveness_expected = (strategy in NON_BLOCKING
                                 or (size - count) >= math.ceil(ALPHA * size))
        _races(run, RACES, None, None)
        originals = run.send_uncontested(BATCH)
        run.settle()
        run.respend_unfinalized(originals)
        run.settle()
        run.require_finalized(list(run.uncontested))
        run.probe()
    return body


def eclipse(run):
    size = run.size
    victim, attacker = size - 1, run.rng.randrange(size - 1)
    if size <= 16:
        edges = [(i, j) for j in range(size - 1) for i in range(j)]
    else:
        edges = [e for e in random_topology(size - 1, 16, run.rng)]
    run.start(edges + [(attacker, victim)])
    scenario.eclipse(run.cluster, victim, [attacker])  # no discovered links either
    run.make_byzantine([attacker], lambda i: ConstantVotes(True))
    run.excluded.add(victim)
    others = [i for i in range(size - 1) if i != attacker]
    for _ in range(RACES):
        run.race(run.new_coin(), run.pick(others), victim)
    run.send_uncontested(RACES, others)
    run.settle(timeout=60.0)
    run.require_finalized(list(run.uncontested))
    run.probe()


def _catalogue():
    out = {f"loss-{p}": loss(p) for p in LOSSES}
    out.update({f"partition-{k}": partition(k) for k in (50, 70)})
    out["partition-isolated"] = partition("isolated")
    out["restart-third"] = restart_third
    for strategy in STRATEGIES:
        for share in BYZANTINE_SHARES:
            out[f"byzantine-{strategy}-{share}"] = byzantine(strategy, share)
    out["eclipse"] = eclipse
    return out


SCENARIOS = _catalogue()


def scenarios_for(size):
    """The scenario names run at ``size`` nodes (at 4 nodes one byzantine node
    is 25 %: one share per strategy)."""
    names = list(SCENARIOS)
    if size <= 4:
        names = [n for n in names if not n.startswith("byzantine-") or n.endswith("-33")]
    return names
