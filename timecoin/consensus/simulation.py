"""A seeded, deterministic, single-process simulation of many Snowball nodes.

Every node has its own :class:`~timecoin.consensus.snowball.SnowballEngine`,
:class:`~timecoin.consensus.polls.PollManager` and :class:`~timecoin.consensus.sampling.Reputation`
on one simulated clock. Messages (transaction gossip, queries, replies) go
through one event queue with a random latency per message (so they are
reordered) and an optional loss rate. Honest nodes answer queries with
``is_preferred``; byzantine nodes follow one of :data:`STRATEGIES`.

Run ``python -m timecoin.consensus.simulation`` for the byzantine-share sweep recorded
in ``doc/snowball.md``.
"""

import heapq
import random
import sys
from collections import Counter
from dataclasses import dataclass, field

from timecoin.consensus.polls import PollManager
from timecoin.consensus.sampling import Reputation
from timecoin.consensus.snowball import SnowballEngine, SnowballParams

HONEST = "honest"
ALWAYS_REJECT = "always-reject"
ALWAYS_FLIP = "always-flip"
EQUIVOCATE = "equivocate"
NEVER_ANSWER = "never-answer"
#: The byzantine strategies.
STRATEGIES = (ALWAYS_REJECT, ALWAYS_FLIP, EQUIVOCATE, NEVER_ANSWER)

_TX, _QUERY, _REPLY, _TICK = range(4)


class SimNode:
    """One simulated masternode: an engine, a poll manager and its decisions."""

    def __init__(self, node_id, strategy, engine, polls):
        self.node_id = node_id
        self.strategy = strategy
        self.engine = engine
        self.polls = polls
        self.decisions = {}  # txid -> (accepted, reason, time)

    @property
    def honest(self):
        return self.strategy == HONEST

    def answer(self, poller, txids):
        """The votes this node sends to ``poller``, or None if it stays silent."""
        if self.strategy == NEVER_ANSWER:
            return None
        if self.strategy == ALWAYS_REJECT:
            return [False] * len(txids)
        votes = self.engine.votes(txids)
        if self.strategy == ALWAYS_FLIP or (self.strategy == EQUIVOCATE and poller % 2):
            return [not v for v in votes]
        return votes


@dataclass
class SimReport:
    """What happened in a run, seen from the honest nodes."""

    conflicting_finalizations: list = field(default_factory=list)
    split_decisions: list = field(default_factory=list)
    accepted_share: dict = field(default_factory=dict)
    decided_share: dict = field(default_factory=dict)
    rounds_to_accept: Counter = field(default_factory=Counter)
    preference_flips: int = 0
    polls: int = 0
    messages: int = 0
    dropped: int = 0
    sim_time: float = 0.0

    @property
    def safe(self):
        """No two honest nodes finalized conflicting transactions."""
        return not self.conflicting_finalizations


class Simulation:
    """N nodes, one clock, one message queue; deterministic for a given ``seed``.

    ``byzantine`` maps a strategy to a node count; those nodes are picked at
    random (seeded). ``weights`` (a list, default all 1) are the stakes.
    Latencies are uniform in ``latency_s``; each message is lost with
    probability ``loss``.
    """

    def __init__(
        self,
        n_nodes=200,
        params=None,
        seed=0,
        byzantine=None,
        weights=None,
        latency_s=(0.005, 0.1),
        loss=0.0,
        query_timeout_ms=2000,
        max_polls=2,
        reputation=True,
    ):
        self.params = params or SnowballParams()
        self.rng = random.Random(seed)
        self.latency_s = latency_s
        self.loss = loss
        self.now = 0.0
        self.txs = {}  # txid -> outpoints
        self.events = 0
        self._queue = []
        self._seq = 0
        self._messages = 0
        self._dropped = 0
        weights = list(weights) if weights is not None else [1.0] * n_nodes
        if len(weights) != n_nodes:
            raise ValueError("one weight per node")
        self.weights = dict(enumerate(weights))
        strategies = [HONEST] * n_nodes
        picks = self.rng.sample(range(n_nodes), sum((byzantine or {}).values()))
        for strategy, count in sorted((byzantine or {}).items()):
            if strategy not in STRATEGIES:
                raise ValueError(f"unknown strategy {strategy!r}")
            for node_id in picks[:count]:
                strategies[node_id] = strategy
            picks = picks[count:]
        self.nodes = []
        for node_id, strategy in enumerate(strategies):
            engine = SnowballEngine(self.params)
            polls = None
            if strategy == HONEST:
                if reputation:
                    rep = Reputation(self._clock)
                else:
                    rep = Reputation(
                        self._clock, timeout_penalty=1.0, contrary_penalty=1.0,
                        dissent_penalty=1.0,
                    )
                polls = PollManager(
                    engine, rep, random.Random(self.rng.getrandbits(64)), node_id,
                    query_timeout_ms=query_timeout_ms, max_polls=max_polls,
                    validators=self.weights,
                )
            self.nodes.append(SimNode(node_id, strategy, engine, polls))

    def _clock(self):
        return self.now

    @property
    def honest_nodes(self):
        return [n for n in self.nodes if n.honest]

    def byzantine_share(self):
        """The share of stake held by byzantine nodes."""
        total = sum(self.weights.values())
        return sum(self.weights[n.node_id] for n in self.nodes if not n.honest) / total

    # -- transactions ---------------------------------------------------------

    def submit(self, txid, outpoints, first_nodes=None, at=0.0, gossip=True):
        """Introduce a transaction at ``first_nodes`` (default: a random one) at time ``at``.

        With ``gossip`` every other node hears of it after one message latency.
        """
        self.txs[txid] = tuple(outpoints)
        if first_nodes is None:
            first_nodes = [self.rng.randrange(len(self.nodes))]
        first = set(first_nodes)
        for node_id in sorted(first):
            self._push(at, _TX, node_id, txid)
        if gossip:
            for node in self.nodes:
                if node.node_id not in first:
                    self._push(at + self._latency(), _TX, node.node_id, txid)

    def submit_conflict(self, tx_a, tx_b, outpoints, prefer_a, prefer_b, at=0.0):
        """Two transactions spending ``outpoints``: ``prefer_a`` nodes see A first,
        ``prefer_b`` nodes see B first, every other node hears both by gossip later."""
        self.txs[tx_a] = self.txs[tx_b] = tuple(outpoints)
        for node_id in prefer_a:
            self._push(at, _TX, node_id, tx_a)
            self._push(at, _TX, node_id, tx_b)
        for node_id in prefer_b:
            self._push(at, _TX, node_id, tx_b)
            self._push(at, _TX, node_id, tx_a)
        seen = set(prefer_a) | set(prefer_b)
        for node in self.nodes:
            if node.node_id not in seen:
                self._push(at + self._latency(), _TX, node.node_id, tx_a)
                self._push(at + self._latency(), _TX, node.node_id, tx_b)

    # -- the event loop -------------------------------------------------------

    def _latency(self):
        return self.rng.uniform(*self.latency_s)

    def _push(self, when, kind, *args):
        self._seq += 1
        heapq.heappush(self._queue, (when, self._seq, kind, args))

    def _send(self, kind, *args):
        self._messages += 1
        if self.loss and self.rng.random() < self.loss:
            self._dropped += 1
            return
        self._push(self.now + self._latency(), kind, *args)

    def run(self, until=None, max_events=None):
        """Process events until the queue is empty, time ``until`` or ``max_events``."""
        queue = self._queue
        handlers = (self._on_tx, self._on_query, self._on_reply, self._on_tick)
        processed = 0
        while queue:
            if until is not None and queue[0][0] > until:
                break
            if max_events is not None and processed >= max_events:
                break
            when, _, kind, args = heapq.heappop(queue)
            self.now = when
            handlers[kind](*args)
            processed += 1
        self.events += processed
        return self.report()

    def _learn(self, node, txid):
        if node.engine.status(txid) is None and txid in self.txs:
            self._record(node, node.engine.add(txid, self.txs[txid]))

    def _on_tx(self, node_id, txid):
        node = self.nodes[node_id]
        self._learn(node, txid)
        self._pump(node)

    def _on_query(self, node_id, poller, poll_id, txids):
        node = self.nodes[node_id]
        for txid in txids:  # fetching an unknown transaction from the poller
            self._learn(node, txid)
        votes = node.answer(poller, txids)
        if votes is not None:
            self._send(_REPLY, poller, node_id, poll_id, votes)
        self._pump(node)

    def _on_reply(self, node_id, voter, poll_id, votes):
        node = self.nodes[node_id]
        self._record(node, node.polls.on_reply(poll_id, voter, votes))
        self._pump(node)

    def _on_tick(self, node_id):
        node = self.nodes[node_id]
        self._record(node, node.polls.on_tick(self.now))
        self._pump(node)

    def _pump(self, node):
        polls = node.polls
        if polls is None:
            return
        while polls.can_start():
            queries = polls.start_poll(self.now)
            if not queries:
                return
            self._push(self.now + polls.query_timeout_s, _TICK, node.node_id)
            for query in queries:
                self._send(_QUERY, query.validator, node.node_id, query.poll_id, query.txids)

    def _record(self, node, decisions):
        for txid, accepted, reason in decisions:
            node.decisions.setdefault(txid, (accepted, reason, self.now))

    # -- results --------------------------------------------------------------

    def report(self):
        """A :class:`SimReport` of the honest nodes' decisions so far."""
        honest = self.honest_nodes
        report = SimReport(
            polls=sum(n.polls.stats.started for n in honest),
            messages=self._messages, dropped=self._dropped, sim_time=self.now,
        )
        accepted_by_outpoint = {}
        for txid, outpoints in self.txs.items():
            verdicts = [n.decisions[txid][0] for n in honest if txid in n.decisions]
            report.accepted_share[txid] = sum(verdicts) / len(honest)
            report.decided_share[txid] = len(verdicts) / len(honest)
            if any(verdicts) and not all(verdicts):
                report.split_decisions.append(txid)
            if any(verdicts):
                for op in outpoints:
                    accepted_by_outpoint.setdefault(op, set()).add(txid)
        for op, txids in sorted(accepted_by_outpoint.items(), key=repr):
            if len(txids) > 1:
                report.conflicting_finalizations.append((op, sorted(txids)))
        for node in honest:
            report.rounds_to_accept.update(node.engine.stats.rounds_to_accept)
            report.preference_flips += node.engine.stats.preference_flips
        return report


def contested_scenario(
    strategy=None, byzantine_share=0.1, n_nodes=200, prefer_a=0.55, uncontested=5, seed=1,
    pairs=1, **kwargs,
):
    """A run with ``uncontested`` plain transactions and ``pairs`` conflicting pairs.

    Honest nodes split ``prefer_a : 1 - prefer_a`` between the two sides of each
    pair; ``byzantine_share`` of the (equal-stake) nodes follow ``strategy``.
    Returns the finished :class:`Simulation`.
    """
    count = round(n_nodes * byzantine_share) if strategy else 0
    sim = Simulation(n_nodes, seed=seed, byzantine={strategy: count} if count else None, **kwargs)
    # Even nodes first: with prefer_a = 0.5 the split matches the poller partition of
    # EQUIVOCATE, and byzantine nodes see A first, so equivocators confirm each side.
    honest = sorted((n.node_id for n in sim.honest_nodes), key=lambda i: (i % 2, i))
    side_a = honest[: round(len(honest) * prefer_a)]
    side_b = honest[len(side_a):]
    side_a += [n.node_id for n in sim.nodes if not n.honest]
    for index in range(uncontested):
        sim.submit(f"u{index}", [("coin-u", index)], first_nodes=[honest[index % len(honest)]])
    for index in range(pairs):
        outpoints = [("coin-c", index)]
        sim.submit_conflict(f"c{index}a", f"c{index}b", outpoints, side_a, side_b)
    sim.run()
    return sim


def reputation_waves(strategy, byzantine_share, waves=6, per_wave=2, interval_s=10.0,
                     n_nodes=200, seed=1, **kwargs):
    """Uncontested transactions submitted in waves ``interval_s`` apart.

    Returns the share of honest nodes accepting each wave's transactions: as
    reputations learn who times out or dissents, later waves fare better.
    """
    count = round(n_nodes * byzantine_share)
    sim = Simulation(n_nodes, seed=seed, byzantine={strategy: count} if count else None, **kwargs)
    for wave in range(waves):
        for index in range(per_wave):
            sim.submit(f"w{wave}.{index}", [("coin-w", wave, index)], at=wave * interval_s)
    report = sim.run()
    return [
        sum(report.accepted_share[f"w{wave}.{i}"] for i in range(per_wave)) / per_wave
        for wave in range(waves)
    ]


def sweep(shares=(0.0, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5), strategies=STRATEGIES, n_nodes=100,
          seeds=(1, 2), pairs=2, uncontested=4, **kwargs):
    """Run :func:`contested_scenario` over byzantine shares; return table rows.

    Each row: strategy, share, runs with a conflicting finalization, runs, the
    mean share of honest nodes that accepted the uncontested transactions, the
    share of honest (node, pair) decided with one side accepted, transactions
    accepted by some honest nodes and rejected by others, and the mean rounds
    to accept.
    """
    rows = []
    for strategy in strategies:
        for share in shares:
            unsafe = split = 0
            live = []
            pair_done = []
            rounds = Counter()
            for seed in seeds:
                sim = contested_scenario(strategy, share, n_nodes, prefer_a=0.5, seed=seed,
                                         pairs=pairs, uncontested=uncontested, **kwargs)
                report = sim.report()
                unsafe += not report.safe
                split += len(report.split_decisions)
                live.extend(v for t, v in report.accepted_share.items() if t.startswith("u"))
                for index in range(pairs):
                    pair_done.append(report.accepted_share[f"c{index}a"]
                                     + report.accepted_share[f"c{index}b"])
                rounds.update(report.rounds_to_accept)
            total = sum(rounds.values())
            mean_rounds = sum(r * c for r, c in rounds.items()) / total if total else 0.0
            rows.append((strategy, share, unsafe, len(seeds), sum(live) / len(live),
                         sum(pair_done) / len(pair_done), split, mean_rounds))
    return rows


def format_sweep(rows):
    """The rows of :func:`sweep` as a Markdown table."""
    lines = [
        "| strategy | byzantine stake | unsafe runs | uncontested accepted | pairs resolved "
        "| split txs | mean rounds to accept |",
        "|---|---|---|---|---|---|---|",
    ]
    for strategy, share, unsafe, runs, live, pairs, split, rounds in rows:
        lines.append(f"| {strategy} | {share:.0%} | {unsafe}/{runs} | {live:.0%} | {pairs:.0%} "
                     f"| {split} | {rounds:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(format_sweep(sweep(loss=0.01)))
    sys.exit(0)
