"""The safety checker of the battery: every node's status history, judged.

:class:`SafetyChecker` records, for each node index and txid, the statuses
the node reported in order: each decision the node publishes (through
:meth:`~timecoin.interfaces.IFinalityEvents.add_listener`: ``finalized`` once
durable, ``rejected`` otherwise) and each ``gettransaction`` status read by
:meth:`SafetyChecker.observe`. A node's history survives its restarts (it
is kept by index), so a restarted node that contradicts itself is caught.

It then checks, over the honest nodes (those not marked byzantine):

* **safety** — no two transactions that spend a common outpoint are both
  finalized (by one node or by two);
* **monotonicity** — once a status is final (``finalized``, ``rejected``,
  ``confirmed``) every later final status is the same, except that
  ``finalized`` may become ``confirmed``;
* **liveness** — given transactions are finalized on given nodes.

It also gives finality times: simulated seconds from a transaction's
submission to each honest node's ``finalized``.
"""

from collections import defaultdict
from dataclasses import dataclass

FINAL = ("finalized", "rejected", "confirmed")
ACCEPTED = ("finalized", "confirmed")


@dataclass(frozen=True)
class Entry:
    """One status a node reported for a transaction, at simulated time ``at``."""

    at: float
    status: str
    reason: str | None
    source: str  # "event" (a published decision) or "query" (gettransaction)


@dataclass(frozen=True)
class Conflict:
    """Two transactions spending a common outpoint, both finalized by honest nodes."""

    first: bytes
    second: bytes
    first_nodes: tuple
    second_nodes: tuple


@dataclass(frozen=True)
class NonMonotone:
    """A node whose final status of a transaction changed."""

    node: int
    txid: bytes
    statuses: tuple


def monotone(statuses):
    """True if the final statuses among ``statuses`` never change (but
    ``finalized`` may become ``confirmed``)."""
    first = None
    for status in statuses:
        if status not in FINAL:
            continue
        if first is None:
            first = status
        elif status != first and not (first == "finalized" and status == "confirmed"):
            return False
        if status == "confirmed":
            first = "confirmed"
    return True


def percentile(values, share):
    """The ``share`` (0..1) percentile of ``values`` (nearest rank), None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))
    return ordered[rank]


class SafetyChecker:
    """Status histories of a cluster's nodes and the battery's checks on them
    (see the module docstring). ``now`` gives the simulated time."""

    def __init__(self, now):
        self._now = now
        self.histories = defaultdict(list)  # (node index, txid) -> [Entry]
        self.inputs = {}  # txid -> frozenset of outpoints
        self.submitted_at = {}  # txid -> simulated time
        self.byzantine = set()

    # -- recording -------------------------------------------------------------
    def attach(self, cluster):
        """Record the decisions of every node of ``cluster``, restarts included."""
        cluster.add_start_listener(self._node_built)
        for host in cluster.running():
            self._node_built(host.index, host.node)

    def _node_built(self, index, node):
        node.events.add_listener(self.listener_for(index))

    def listener_for(self, index):
        """An ``IFinalityEvents`` listener recording node ``index``'s decisions."""
        def decided(txid, accepted, reason, finality_ms):
            status = "finalized" if accepted else "rejected"
            self.record(index, txid, status, None if accepted else reason, "event")
        return decided

    def track(self, tx, submitted_at=None):
        """Know ``tx``'s inputs (for the safety check) and when it was sent."""
        self.inputs[tx.txid] = frozenset(i.prevout for i in tx.inputs)
        self.submitted_at.setdefault(tx.txid, self._now() if submitted_at is None
                                     else submitted_at)

    def record(self, index, txid, status, reason=None, source="query"):
        """Node ``index`` reported ``status`` for ``txid`` (repeats are kept once)."""
        history = self.histories[(index, txid)]
        if history and history[-1].status == status:
            return
        history.append(Entry(self._now(), status, reason, source))

    def observe(self, cluster, txids=None):
        """Read ``gettransaction`` of every tracked (or given) txid on every
        running node; unknown transactions are not recorded."""
        txids = list(self.inputs) if txids is None else list(txids)
        for host in cluster.running():
            for txid in txids:
                status = cluster.status(host.index, txid)
                if status is not None:
                    self.record(host.index, txid, status["status"], status.get("reason"))

    # -- reading ---------------------------------------------------------------
    def honest(self, index):
        return index not in self.byzantine

    def status(self, index, txid):
        """The last status node ``index`` reported for ``txid`` (None: none)."""
        history = self.histories.get((index, txid))
        return history[-1].status if history else None

    def finalized_by(self, txid):
        """Honest node indices that ever reported ``txid`` finalized or confirmed."""
        return sorted(index for (index, t), history in self.histories.items()
                      if t == txid and self.honest(index)
                      and any(e.status in ACCEPTED for e in history))

    def finalized_on(self, txid, indices):
        """True if every node of ``indices`` reports ``txid`` finalized now."""
        return all(self.status(i, txid) in ACCEPTED for i in indices)

    # -- checks ------------------------------------------------------------------
    def conflicts(self):
        """Every pair of conflicting transactions both finalized by honest nodes."""
        accepted = defaultdict(set)  # txid -> honest nodes
        for (index, txid), history in self.histories.items():
            if self.honest(index) and any(e.status in ACCEPTED for e in history):
                accepted[txid].add(index)
        spenders = defaultdict(set)  # outpoint -> finalized txids
        for txid in accepted:
            for outpoint in self.inputs.get(txid, ()):
                spenders[outpoint].add(txid)
        pairs = set()
        for txids in spenders.values():
            ordered = sorted(txids)
            pairs.update((a, b) for n, a in enumerate(ordered) for b in ordered[n + 1:])
        return [Conflict(a, b, tuple(sorted(accepted[a])), tuple(sorted(accepted[b])))
                for a, b in sorted(pairs)]

    def non_monotone(self):
        """Every honest (node, txid) history whose final status changed."""
        out = []
        for (index, txid), history in sorted(self.histories.items()):
            statuses = tuple(e.status for e in history)
            if self.honest(index) and not monotone(statuses):
                out.append(NonMonotone(index, txid, statuses))
        return out

    def liveness_failures(self, txids, indices):
        """``(txid, [nodes])`` for each txid some node of ``indices`` has not finalized."""
        out = []
        for txid in txids:
            missing = [i for i in indices if self.status(i, txid) not in ACCEPTED]
            if missing:
                out.append((txid, missing))
        return out

    def finality_times(self):
        """Simulated seconds from submission to each honest node's first
        ``finalized`` of each tracked transaction."""
        times = []
        for (index, txid), history in self.histories.items():
            if not self.honest(index) or txid not in self.submitted_at:
                continue
            for entry in history:
                if entry.status in ACCEPTED:
                    times.append(entry.at - self.submitted_at[txid])
                    break
        return times
