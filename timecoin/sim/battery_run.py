"""One seeded run of a battery scenario: a cluster, its checker, a wallet.

:class:`BatteryRun` builds the cluster, attaches a
:class:`~timecoin.sim.checker.SafetyChecker`, and offers the steps the
scenarios of :mod:`timecoin.sim.battery_scenarios` are written in: spend a
coin (from the devnet genesis outputs) through a node, race two spends of one
coin, let the network settle a set of coins, re-spend what did not finalize
at its wallet's node (as ``doc/finality.md`` advises a wallet), and probe
liveness with fresh uncontested transfers. :meth:`BatteryRun.outcome`
judges it.
"""

import random
import time
from dataclasses import dataclass, field

from timecoin.ledger.networks import COIN
from timecoin.ledger.tx import TxRejected
from timecoin.sim import scenario
from timecoin.sim.checker import ACCEPTED, SafetyChecker, percentile
from timecoin.sim.cluster import Cluster
from timecoin.sim.network import LinkConditions

#: Links of a 100-node cluster: nodes keep at most max_peers peers.
LARGE_DEGREE = 16
#: Link latency and jitter (seconds) of every run.
CONDITIONS = LinkConditions(latency=0.02, jitter=0.01)
#: Simulated seconds an uncontested transaction sent after healing may take.
LIVENESS_BOUND = 60.0
#: Simulated seconds the network gets to settle a set of coins.
SETTLE_BOUND = 90.0
#: How often (simulated seconds) a wait checks its condition.
SLICE = 0.25
#: Genesis outputs a run may spend (dev key 99 is the transfers' destination).
COINS = 99
ROUNDS_HISTOGRAM = "timecoin_snowball_rounds_per_tx"


@dataclass
class Outcome:
    """What one run found: violations, liveness failures, finality times."""

    scenario: str
    nodes: int
    seed: int
    conflicts: list = field(default_factory=list)
    non_monotone: list = field(default_factory=list)
    liveness: list = field(default_factory=list)
    times: list = field(default_factory=list)
    rounds: float | None = None
    error: str | None = None
    wall_s: float = 0.0

    @property
    def failed(self):
        return bool(self.conflicts or self.non_monotone or self.liveness or self.error)

    def to_record(self):
        """The outcome as a JSON-ready dict (each finding as its text)."""
        return {"scenario": self.scenario, "nodes": self.nodes, "seed": self.seed,
                "conflicts": [str(c) for c in self.conflicts],
                "non_monotone": [str(n) for n in self.non_monotone],
                "liveness": [_liveness_text(f) for f in self.liveness],
                "times": list(self.times), "rounds": self.rounds, "error": self.error,
                "wall_s": self.wall_s}

    @classmethod
    def from_record(cls, record):
        """The outcome :meth:`to_record` wrote (findings kept as their texts)."""
        return cls(**record)

    def summary(self):
        p50, p99 = percentile(self.times, 0.5), percentile(self.times, 0.99)
        return (f"{self.scenario} n={self.nodes} seed={self.seed}: "
                f"{len(self.conflicts)} conflicts, {len(self.non_monotone)} non-monotone, "
                f"{len(self.liveness)} liveness failures, p50={p50} p99={p99}"
                + (f", error: {self.error}" if self.error else ""))


def _liveness_text(failure):
    if isinstance(failure, tuple):  # (txid, nodes that did not finalize it)
        txid, missing = failure
        return f"{txid.hex()} not finalized on nodes {list(missing)}"
    return str(failure)


class BatteryRun:
    """A seeded cluster of ``size`` masternodes under test (see the module docstring)."""

    def __init__(self, size, seed, name=""):
        self.size = size
        self.seed = seed
        self.name = name
        self.rng = random.Random(seed * 1_000_003 + size)
        self.cluster = None
        self.checker = None
        self.coin_of = {}  # txid -> genesis output index it spends
        self.wallet = {}  # txid -> node it was sent through
        self._spends = {}  # coin -> [txid]
        self._next_coin = 0
        self.uncontested = []  # txids sent alone, held to liveness unless re-spent
        self.liveness_failures = []
        self.excluded = set()  # honest nodes not held to liveness (an eclipsed one)
        self.liveness_expected = True

    # -- life ------------------------------------------------------------------
    def start(self, topology=None):
        """Build and start the cluster (default topology: all pairs up to 16
        nodes, else about 16 links per node) and attach the checker."""
        if topology is None:
            topology = "all" if self.size <= LARGE_DEGREE else LARGE_DEGREE
        self.cluster = Cluster(self.size, seed=self.seed, topology=topology,
                               conditions=CONDITIONS)
        self.checker = SafetyChecker(lambda: self.cluster.now)
        self.checker.attach(self.cluster)
        self.cluster.start(connect_timeout=120.0)
        return self.cluster

    def close(self):
        if self.cluster is not None:
            self.cluster.close()

    def make_byzantine(self, indices, strategy_for):
        """Nodes ``indices`` answer with ``strategy_for(index)``; they leave the honest checks."""
        self.checker.byzantine.update(indices)
        scenario.byzantine(self.cluster, indices, strategy_for)

    def honest(self):
        """Indices of the running honest nodes."""
        return [h.index for h in self.cluster.running() if self.checker.honest(h.index)]

    def held_to_liveness(self):
        return [i for i in self.honest() if i not in self.excluded]

    def pick(self, among=None):
        """A random running honest node (of ``among`` if given)."""
        choices = [i for i in (self.honest() if among is None else among)
                   if self.checker.honest(i) and self.cluster.hosts[i].node is not None]
        return self.rng.choice(choices)

    # -- spending ------------------------------------------------------------------
    def new_coin(self):
        if self._next_coin >= COINS:
            raise ValueError("every genesis output of the devnet is spent")
        self._next_coin += 1
        return self._next_coin - 1

    def spend(self, coin, node, alone=False):
        """Send a spend of ``coin`` through ``node`` (each spend of a coin pays
        another amount: a double spend of the earlier ones); its txid."""
        spends = self._spends.setdefault(coin, [])
        tx = scenario.transfer_from_genesis(coin, (len(spends) + 1) * COIN)
        spends.append(tx.txid)
        self.coin_of[tx.txid] = coin
        self.wallet[tx.txid] = node
        self.checker.track(tx)
        if alone:
            self.uncontested.append(tx.txid)
        d = self.cluster.submit(node, tx)
        d.addErrback(lambda f: f.trap(TxRejected))
        return tx.txid

    def race(self, coin, first, second):
        """Two spends of ``coin`` sent at once through nodes ``first`` and ``second``."""
        return self.spend(coin, first), self.spend(coin, second)

    def send_uncontested(self, count, among=None):
        return [self.spend(self.new_coin(), self.pick(among), alone=True) for _ in range(count)]

    def coins(self):
        return list(self._spends)

    # -- waiting ---------------------------------------------------------------------
    def coin_settled(self, coin, index):
        """True once node ``index`` finalized a spend of ``coin``, or rejected all it knows."""
        statuses = [self.checker.status(index, t) for t in self._spends[coin]]
        if any(s in ACCEPTED for s in statuses):
            return True
        known = [s for s in statuses if s is not None]
        return bool(known) and all(s == "rejected" for s in known)

    def run_until(self, predicate, timeout):
        """Run in slices until ``predicate()`` or ``timeout`` simulated seconds; its value."""
        deadline = self.cluster.now + timeout
        while not predicate():
            if self.cluster.now >= deadline:
                return False
            self.cluster.run(min(SLICE, deadline - self.cluster.now))
        return True

    def settle(self, coins=None, timeout=SETTLE_BOUND):
        """Run until every honest running node settled each coin (or the timeout)."""
        coins = self.coins() if coins is None else coins
        return self.run_until(lambda: all(self.coin_settled(c, i) for c in coins
                                          for i in self.honest()), timeout)

    def respend_unfinalized(self, txids):
        """The wallet's retry: each of ``txids`` that its wallet's node reports
        rejected, or pending in a stalled conflict set, is spent again there."""
        self.checker.observe(self.cluster, txids)
        again = []
        for txid in txids:
            node = self.wallet[txid]
            if self.cluster.hosts[node].node is None:
                continue
            status = self.cluster.status(node, txid)
            stalled = (status is not None and status["status"] == "pending"
                       and "stall" in (status.get("reason") or ""))
            if status is not None and (status["status"] == "rejected" or stalled):
                again.append(self.spend(self.coin_of[txid], node))
                if txid in self.uncontested:
                    self.uncontested.remove(txid)
        return again

    def require_finalized(self, txids, timeout=LIVENESS_BOUND):
        """Liveness: each txid finalizes on every honest node held to liveness
        within ``timeout``; the ones that do not are recorded as failures."""
        nodes = self.held_to_liveness()
        self.run_until(lambda: all(self.checker.finalized_on(t, nodes) for t in txids), timeout)
        if self.liveness_expected:
            self.liveness_failures.extend(self.checker.liveness_failures(txids, nodes))

    def probe(self, count=2, timeout=LIVENESS_BOUND):
        """Fresh uncontested transfers through honest nodes must finalize everywhere."""
        txids = self.send_uncontested(count, self.held_to_liveness())
        self.require_finalized(txids, timeout)
        return txids

    # -- judging ---------------------------------------------------------------------
    def outcome(self):
        """Read every node's statuses once more and judge the run."""
        checker = self.checker
        checker.observe(self.cluster)
        rounds = []
        for index in self.honest():
            for name, _kind, _doc, value in self.cluster.hosts[index].node.finality.statistics():
                if name == ROUNDS_HISTOGRAM and value:  # {rounds: transactions}
                    rounds.append(sum(r * n for r, n in value.items()) / sum(value.values()))
        return Outcome(self.name, self.size, self.seed, checker.conflicts(),
                       checker.non_monotone(), list(self.liveness_failures),
                       checker.finality_times(), sum(rounds) / len(rounds) if rounds else None)


def run_scenario(name, body, size, seed):
    """Run scenario ``body(run)`` once; its :class:`Outcome` (errors included)."""
    started = time.perf_counter()
    run = BatteryRun(size, seed, name)
    try:
        body(run)
        outcome = run.outcome()
    except Exception as e:  # a run that cannot finish is reported, not hidden
        try:
            outcome = run.outcome()
        except Exception:
            outcome = Outcome(name, size, seed)
        outcome.error = f"{type(e).__name__}: {e}"
    finally:
        run.close()
    outcome.wall_s = time.perf_counter() - started
    return outcome
