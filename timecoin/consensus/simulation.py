"""A seeded, deterministic, single-process simulation of many Snowball nodes.

Every node has its own :class:`~timecoin.consensus.snowball.SnowballEngine`,
:class:`~timecoin.consensus.polls.PollManager` and :class:`~timecoin.consensus.sampling.Reputation`
on one simulated clock, and polls the **whole** active set (itself included).
Messages (transaction gossip, queries, replies) go through one event queue
with a random latency per message (so they are reordered), a loss rate that
may end (healing), partitions that start and end, and node restarts (a
restarted node keeps only what it persisted: its decisions, as a journal, and
the conflict-set records it wrote before each vote left). Honest nodes answer
with ``engine.votes``; byzantine nodes follow one of :data:`STRATEGIES`.

Scenarios, the safety battery and the byzantine sweep are in
:mod:`timecoin.consensus.scenarios`; ``python -m timecoin.consensus.simulation
--sweep`` prints the tables recorded in ``doc/snowball.md``.
"""

import heapq
import random

from timecoin.consensus.polls import PollManager
from timecoin.consensus.sampling import Reputation
from timecoin.consensus.sim_report import SimReport, build_report  # noqa: F401 (re-exported)
from timecoin.consensus.snowball import REASON_DOUBLE_SPEND, SnowballEngine, SnowballParams

HONEST = "honest"
ALWAYS_REJECT = "always-no"
YES_TO_BOTH = "yes-to-both"
NO_THEN_YES = "no-then-yes"
EQUIVOCATE = "equivocate"
NEVER_ANSWER = "withhold"
ALWAYS_FLIP = "flip"
#: The byzantine strategies.
STRATEGIES = (ALWAYS_REJECT, YES_TO_BOTH, NO_THEN_YES, EQUIVOCATE, NEVER_ANSWER, ALWAYS_FLIP)
#: With transactions pending and no poll possible, a node looks again after this long.
IDLE_RETRY_S = 0.25

_TX, _QUERY, _REPLY, _TICK, _CALL = range(5)


class SimNode:
    """One simulated masternode: an engine, a poll manager, its journal and records."""

    def __init__(self, node_id, strategy):
        self.node_id = node_id
        self.strategy = strategy
        self.engine = None
        self.polls = None
        self.decisions = {}  # txid -> (accepted, reason, time): the journal, durable
        self.history = []  # (txid, accepted) in decision order, across restarts
        self.records = []  # conflict-set records persisted before votes left
        self.up = True
        self.retry_at = None
        self.restarts = 0

    @property
    def honest(self):
        return self.strategy == HONEST

    def journal_lookup(self, txid):
        decided = self.decisions.get(txid)
        return None if decided is None else decided[0]


class Simulation:
    """N nodes, one clock, one message queue; deterministic for a given ``seed``.

    ``byzantine`` maps a strategy to a node count; those nodes are picked at
    random (seeded). ``weights`` (a list, default all 1) are the stakes.
    Latencies are uniform in ``latency_s``; each message is lost with
    probability ``loss`` until time ``loss_until`` (None: forever).
    """

    def __init__(self, n_nodes=200, params=None, seed=0, byzantine=None, weights=None,
                 latency_s=(0.005, 0.1), loss=0.0, loss_until=None, query_timeout_ms=2000,
                 max_polls=2, reputation=True):
        self.params = params or SnowballParams()
        self.rng = random.Random(seed)
        self.latency_s = latency_s
        self.loss = loss
        self.loss_until = loss_until
        self.query_timeout_ms = query_timeout_ms
        self.max_polls = max_polls
        self.reputation = reputation
        self.now = 0.0
        self.txs = {}  # txid -> outpoints
        self.submitted_at = {}
        self.first_spend = {}  # outpoint -> the first txid submitted spending it
        self.events = 0
        self._queue = []
        self._seq = 0
        self.messages_sent = 0
        self.messages_dropped = 0
        self._group = None  # node id -> partition group, while partitioned
        self._cut = {}  # node id -> the only node ids it can talk to (an eclipse)
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
        self.nodes = [SimNode(i, s) for i, s in enumerate(strategies)]
        for node in self.nodes:
            self._boot(node)

    def _boot(self, node):
        node.engine = SnowballEngine(self.params, lookup=node.journal_lookup)
        if not node.honest:
            return
        penalty = 0.5 if self.reputation else 1.0
        node.polls = PollManager(
            node.engine, Reputation(self._clock, timeout_penalty=penalty),
            random.Random(self.rng.getrandbits(64)), node.node_id,
            query_timeout_ms=self.query_timeout_ms, max_polls=self.max_polls,
            validators=self.weights, connected=self._reachable_from(node.node_id))

    def _clock(self):
        return self.now

    @property
    def honest_nodes(self):
        return [n for n in self.nodes if n.honest]

    def byzantine_share(self):
        """The share of stake held by byzantine nodes."""
        total = sum(self.weights.values())
        return sum(self.weights[n.node_id] for n in self.nodes if not n.honest) / total

    # -- topology -------------------------------------------------------------

    def _linked(self, a, b):
        if a in self._cut and b not in self._cut[a] or b in self._cut and a not in self._cut[b]:
            return False
        return self._group is None or self._group[a] == self._group[b]

    def _reachable_from(self, node_id):
        return [n.node_id for n in self.nodes if n.node_id != node_id and n.up
                and self._linked(node_id, n.node_id)]

    def _refresh_connections(self):
        for node in self.nodes:
            if node.polls is not None:
                node.polls.set_connected(self._reachable_from(node.node_id))

    def partition(self, groups, start, end):
        """Between ``start`` and ``end`` nodes talk only within their group (a list of id lists)."""
        group_of = {node_id: index for index, group in enumerate(groups) for node_id in group}

        def split():
            self._group = group_of
            self._refresh_connections()

        def heal():
            self._group = None
            self._refresh_connections()
            for node in self.nodes:
                self._pump(node)
        self._push(start, _CALL, split)
        self._push(end, _CALL, heal)

    def eclipse(self, node_id, keep):
        """From now on ``node_id`` talks only to the nodes in ``keep``."""
        self._cut[node_id] = set(keep)
        self._refresh_connections()

    def restart(self, node_id, at, down_s=1.0):
        """Crash ``node_id`` at ``at`` (memory lost); it comes back ``down_s`` later."""
        node = self.nodes[node_id]

        def crash():
            node.up = False
            node.retry_at = None
            self._refresh_connections()

        def boot():
            node.up = True
            node.restarts += 1
            self._boot(node)
            self._refresh_connections()
            decided = node.decisions
            kept = [r for r in node.records if not any(t in decided for t, _ in r.members)]
            self._record(node, node.engine.restore(kept))
            self._pump(node)
        self._push(at, _CALL, crash)
        self._push(at + down_s, _CALL, boot)

    # -- transactions ---------------------------------------------------------

    def _register(self, txid, outpoints, at):
        self.txs[txid] = tuple(outpoints)
        self.submitted_at.setdefault(txid, at)
        for op in outpoints:
            self.first_spend.setdefault(op, txid)

    def submit(self, txid, outpoints, first_nodes=None, at=0.0, gossip=True):
        """Introduce a transaction at ``first_nodes`` (default: a random one) at time ``at``.

        With ``gossip`` every other node hears of it after one message latency.
        """
        self._register(txid, outpoints, at)
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
        self._register(tx_a, outpoints, at)
        self._register(tx_b, outpoints, at)
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

    def _send(self, sender, receiver, kind, *args):
        self.messages_sent += 1
        lossy = self.loss and (self.loss_until is None or self.now < self.loss_until)
        if not self._linked(sender, receiver) or (lossy and self.rng.random() < self.loss):
            self.messages_dropped += 1
            return
        self._push(self.now + self._latency(), kind, receiver, *args)

    def run(self, until=None, max_events=None):
        """Process events until the queue is empty, time ``until`` or ``max_events``."""
        queue = self._queue
        handlers = (self._on_tx, self._on_query, self._on_reply, self._on_tick, None)
        processed = 0
        while queue:
            if until is not None and queue[0][0] > until:
                break
            if max_events is not None and processed >= max_events:
                break
            when, _, kind, args = heapq.heappop(queue)
            self.now = when
            if kind == _CALL:
                args[0]()
            elif self.nodes[args[0]].up:
                handlers[kind](*args)
            processed += 1
        if until is not None:
            self.now = max(self.now, until)
        self.events += processed
        return self.report()

    def _learn(self, node, txid):
        if txid not in self.txs or node.engine.status(txid) is not None:
            return
        if txid in node.decisions:
            return  # decided before a restart: the journal has it
        spent = {op for t, (ok, _, _) in node.decisions.items() if ok for op in self.txs[t]}
        if spent & set(self.txs[txid]):
            # Invalid at entry: its input is spent by a finalized transaction.
            self._record(node, [(txid, False, REASON_DOUBLE_SPEND)])
            return
        self._record(node, node.engine.add(txid, self.txs[txid]))

    def _on_tx(self, node_id, txid):
        node = self.nodes[node_id]
        self._learn(node, txid)
        self._pump(node)

    def _answer(self, node, poller, txids):
        strategy = node.strategy
        if strategy == NEVER_ANSWER:
            return None
        if strategy == ALWAYS_REJECT:
            return [False] * len(txids)
        if strategy == YES_TO_BOTH:
            return [True] * len(txids)
        if strategy == NO_THEN_YES:
            return [all(self.first_spend[op] != t for op in self.txs.get(t, ())) for t in txids]
        votes = node.engine.votes(txids)
        if strategy == HONEST:
            node.records.extend(node.engine.dirty_records())  # durable before the votes leave
        if strategy == ALWAYS_FLIP or (strategy == EQUIVOCATE and poller % 2):
            return [not v for v in votes]
        return votes

    def _on_query(self, node_id, poller, poll_id, txids):
        node = self.nodes[node_id]
        for txid in txids:  # fetching an unknown transaction from the poller
            self._learn(node, txid)
        votes = self._answer(node, poller, txids)
        if votes is not None:
            self._send(node_id, poller, _REPLY, node_id, poll_id, votes)
        self._pump(node)

    def _on_reply(self, node_id, voter, poll_id, votes):
        node = self.nodes[node_id]
        if node.polls is not None:
            self._record(node, node.polls.on_reply(poll_id, voter, votes))
            self._pump(node)

    def _on_tick(self, node_id):
        node = self.nodes[node_id]
        if node.retry_at is not None and node.retry_at <= self.now:
            node.retry_at = None
        self._record(node, node.polls.on_tick(self.now))
        self._pump(node)

    def _pump(self, node):
        polls = node.polls
        if polls is None or not node.up:
            return
        while polls.can_start():
            started = polls.stats.started
            queries = polls.start_poll(self.now)
            if polls.stats.started == started:
                break  # nothing eligible now (e.g. stalled transactions backing off)
            self._push(self.now + polls.query_timeout_s, _TICK, node.node_id)
            for query in queries:
                self._send(node.node_id, query.validator, _QUERY, node.node_id, query.poll_id,
                           query.txids)
        if len(node.engine) and not polls.polls_in_flight and node.retry_at is None:
            node.retry_at = self.now + IDLE_RETRY_S
            self._push(node.retry_at, _TICK, node.node_id)

    def _record(self, node, decisions):
        for txid, accepted, reason in decisions:
            node.history.append((txid, accepted))
            node.decisions.setdefault(txid, (accepted, reason, self.now))

    # -- results --------------------------------------------------------------

    def report(self):
        """A :class:`~timecoin.consensus.sim_report.SimReport` of the honest nodes so far."""
        return build_report(self)


if __name__ == "__main__":  # pragma: no cover
    from timecoin.consensus.scenarios import main
    main()
