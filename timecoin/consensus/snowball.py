"""Snowball finality over conflict sets: a sans-I/O engine driven by poll results.

A *conflict set* is every pending transaction spending one outpoint; a
transaction with several inputs belongs to several sets. Per set the engine
keeps a preference (what this node votes), and per transaction its preference
strength (successful rounds in total), its confidence (consecutive successful
rounds) and the number of polls it has been in. See ``doc/snowball.md``.

The engine never samples, sends or times anything: :mod:`timecoin.consensus.polls` runs
the polls and feeds each finished one to :meth:`SnowballEngine.record_poll`.
"""

from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from fractions import Fraction

PENDING = "pending"
ACCEPTED = "accepted"
REJECTED = "rejected"

#: Reasons carried by decisions.
REASON_FINALIZED = "finalized"
REASON_CONFLICT = "conflict"
REASON_DOUBLE_SPEND = "double-spend"
REASON_MAX_ROUNDS = "max-rounds"

#: The ``[consensus.avalanche]`` keys read by :meth:`SnowballParams.from_config`.
CONFIG_KEYS = ("sample_size", "alpha", "beta", "finality_confidence", "max_rounds")


def _share(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    # Exact arithmetic: 0.7 * 10 must give 7, not 7.000000000000001.
    share = Fraction(value).limit_denominator(1_000_000)
    if not Fraction(1, 2) < share <= 1:
        raise ValueError(f"{name} must be in (0.5, 1], got {value!r}")
    return share


def _count(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class SnowballParams:
    """Validated Snowball parameters (the ``[consensus.avalanche]`` section).

    ``alpha`` is the share of a sample that must vote yes for a round to count
    (alpha confidence). ``alpha_preference`` (not a config key; default: a bare
    strict majority) is the share that raises a transaction's preference
    strength and so may flip a preference; it never exceeds ``alpha``.
    """

    k: int = 20
    alpha: float = 0.75
    beta: int = 15
    finality_confidence: int = 15
    max_rounds: int = 30
    alpha_preference: float | None = None

    def __post_init__(self):
        _count(self.k, "sample_size")
        alpha = _share(self.alpha, "alpha")
        _count(self.beta, "beta")
        _count(self.finality_confidence, "finality_confidence")
        _count(self.max_rounds, "max_rounds")
        if self.max_rounds < max(self.beta, self.finality_confidence):
            raise ValueError("max_rounds must be >= beta and >= finality_confidence")
        if self.alpha_preference is None:
            pref = None
        else:
            pref = _share(self.alpha_preference, "alpha_preference")
            if pref > alpha:
                raise ValueError("alpha_preference must not exceed alpha")
        object.__setattr__(self, "_alpha_share", alpha)
        object.__setattr__(self, "_pref_share", pref)

    @classmethod
    def from_config(cls, section):
        """Build from a ``[consensus.avalanche]`` mapping; missing keys keep defaults."""
        kwargs = {}
        for key in CONFIG_KEYS:
            if key in section:
                kwargs["k" if key == "sample_size" else key] = section[key]
        return cls(**kwargs)

    @staticmethod
    def majority(n):
        """The smallest strict majority of ``n`` votes."""
        return n // 2 + 1

    def quorum(self, n):
        """Yes votes needed out of an actual sample of ``n`` for a successful round.

        ``max(ceil(alpha * n), n // 2 + 1)``: at least the alpha share and always
        a strict majority, also on networks smaller than ``k`` (1 of 1, 2 of 2,
        3 of 3, 3 of 4 with alpha 0.75). An empty sample (``n == 0``) can never
        succeed: its quorum is 1.
        """
        if n <= 0:
            return 1
        share = self._alpha_share
        return max(-((-share.numerator * n) // share.denominator), self.majority(n))

    def preference_quorum(self, n):
        """Yes votes out of ``n`` that raise preference strength (<= :meth:`quorum`)."""
        if n <= 0:
            return 1
        if self._pref_share is None:
            return self.majority(n)
        share = self._pref_share
        return max(-((-share.numerator * n) // share.denominator), self.majority(n))


@dataclass
class _Tx:
    txid: object
    outpoints: tuple
    strength: int = 0
    confidence: int = 0
    rounds: int = 0
    contested: bool = False


@dataclass(frozen=True)
class TxSnapshot:
    """A pending transaction's counters, for RPC, metrics and tests."""

    txid: object
    preferred: bool
    contested: bool
    strength: int
    confidence: int
    rounds: int


@dataclass
class EngineStats:
    """Counters of one engine since it was made."""

    polls: int = 0
    successful_rounds: int = 0
    failed_rounds: int = 0
    ambiguous_rounds: int = 0
    preference_flips: int = 0
    accepted: int = 0
    rejected: Counter = field(default_factory=Counter)
    rounds_to_accept: Counter = field(default_factory=Counter)


class SnowballEngine:
    """Snowball over conflict sets: preferences, counters and decisions.

    Decisions are ``(txid, accepted, reason)`` tuples, returned by :meth:`add`
    and :meth:`record_poll`; each transaction is decided at most once and a
    decision never changes. ``remember`` bounds how many decided transactions
    (and outpoints spent by accepted ones) are kept to answer votes.
    """

    def __init__(self, params, remember=100_000):
        self.params = params
        self.stats = EngineStats()
        self._remember = remember
        self._pending = {}  # txid -> _Tx, in arrival order
        self._sets = {}  # outpoint -> list of pending txids; [0] is the preference
        self._decided = OrderedDict()  # txid -> True (accepted) / False (rejected)
        self._spent = OrderedDict()  # outpoint -> accepted txid

    # -- transactions -------------------------------------------------------

    def add(self, txid, outpoints):
        """A validated transaction was seen; return decisions (empty unless a double spend).

        It joins the conflict set of each outpoint; the first transaction seen
        in a set is that set's preference. Known txids are ignored.
        """
        if txid in self._pending or txid in self._decided:
            return []
        outpoints = tuple(dict.fromkeys(outpoints))
        if any(op in self._spent for op in outpoints):
            return [self._decide_rejected(txid, REASON_DOUBLE_SPEND)]
        tx = _Tx(txid, outpoints)
        self._pending[txid] = tx
        for op in outpoints:
            members = self._sets.setdefault(op, [])
            if members:
                tx.contested = True
                for other in members:
                    self._pending[other].contested = True
            members.append(txid)
        return []

    def cancel(self, txid):
        """Stop deciding ``txid`` without a decision; True if it was pending."""
        tx = self._pending.get(txid)
        if tx is None:
            return False
        self._drop(tx)
        return True

    def status(self, txid):
        """``"pending"``, ``"accepted"``, ``"rejected"`` or None if unknown (or forgotten)."""
        if txid in self._pending:
            return PENDING
        decided = self._decided.get(txid)
        if decided is None:
            return None
        return ACCEPTED if decided else REJECTED

    def snapshot(self, txid):
        """A :class:`TxSnapshot` of a pending transaction, or None."""
        tx = self._pending.get(txid)
        if tx is None:
            return None
        return TxSnapshot(
            txid, self.is_preferred(txid), tx.contested, tx.strength, tx.confidence, tx.rounds
        )

    def is_contested(self, txid):
        """True if pending ``txid`` has (or had) a conflicting transaction."""
        tx = self._pending.get(txid)
        return tx is not None and tx.contested

    def conflicts(self, txid):
        """The pending transactions sharing an outpoint with pending ``txid``."""
        tx = self._pending.get(txid)
        if tx is None:
            return set()
        return {other for op in tx.outpoints for other in self._sets[op] if other != txid}

    def __len__(self):
        return len(self._pending)

    # -- voting -------------------------------------------------------------

    def is_preferred(self, txid):
        """This node's vote on ``txid``: preferred in every one of its conflict sets.

        Accepted transactions are preferred; rejected and unknown ones are not.
        """
        tx = self._pending.get(txid)
        if tx is None:
            return self._decided.get(txid, False)
        sets = self._sets
        for op in tx.outpoints:
            if sets[op][0] != txid:
                return False
        return True

    def votes(self, txids):
        """The answer to a query: ``[is_preferred(t) for t in txids]``."""
        is_preferred = self.is_preferred
        return [is_preferred(t) for t in txids]

    def in_flight(self, limit=None):
        """Up to ``limit`` pending txids, oldest first: the batch for the next poll."""
        if limit is None or limit >= len(self._pending):
            return list(self._pending)
        return [t for t, _ in zip(self._pending, range(limit), strict=False)]

    # -- polls --------------------------------------------------------------

    def record_poll(self, results):
        """Feed one finished poll: ``{txid: (yes_count, sample_size)}``; return decisions.

        A round is successful for a transaction when ``yes >= quorum(sample_size)``;
        it raises the confidence of that transaction and resets the confidence of
        every transaction conflicting with it. A failed round resets confidence.
        If two conflicting transactions both reach the quorum (only possible
        with byzantine voters) the round counts as failed for both.
        """
        params = self.params
        pending = self._pending
        self.stats.polls += 1
        polled = []
        winners = set()
        strong = set()
        quorums = {}  # sample size -> (preference quorum, quorum)
        for txid, (yes, size) in results.items():
            tx = pending.get(txid)
            if tx is None:
                continue
            tx.rounds += 1
            polled.append(tx)
            needed = quorums.get(size)
            if needed is None:
                needed = quorums[size] = (params.preference_quorum(size), params.quorum(size))
            if yes >= needed[0]:
                strong.add(txid)
                if yes >= needed[1]:
                    winners.add(txid)
        # Only a contested transaction (one that has had a rival) has conflicts.
        ambiguous = {t for t in winners if pending[t].contested and self.conflicts(t) & winners}
        self.stats.ambiguous_rounds += len(ambiguous)
        winners -= ambiguous
        strong -= {t for t in strong if pending[t].contested and self.conflicts(t) & strong}
        for txid in strong:
            self._strengthen(pending[txid])
        for tx in polled:
            if tx.txid in winners:
                self.stats.successful_rounds += 1
                tx.confidence += 1
                if tx.contested:
                    for other in self.conflicts(tx.txid):
                        pending[other].confidence = 0
            else:
                self.stats.failed_rounds += 1
                tx.confidence = 0
        decisions = []
        for tx in polled:
            needed = params.beta if tx.contested else params.finality_confidence
            if tx.txid in self._pending and tx.confidence >= needed:
                decisions.extend(self._accept(tx))
        for tx in polled:
            if tx.txid in self._pending and tx.rounds >= params.max_rounds:
                self._drop(tx)
                decisions.append(self._decide_rejected(tx.txid, REASON_MAX_ROUNDS))
        return decisions

    # -- internals ----------------------------------------------------------

    def _strengthen(self, tx):
        tx.strength += 1
        for op in tx.outpoints:
            members = self._sets[op]
            preferred = self._pending[members[0]]
            # Ties go to the smaller txid: nodes split evenly, and flipping in
            # step, then converge instead of swapping preferences forever.
            if preferred is not tx and (tx.strength, preferred.txid) > (
                    preferred.strength, tx.txid):
                members.remove(tx.txid)
                members.insert(0, tx.txid)
                self.stats.preference_flips += 1

    def _accept(self, tx):
        conflicts = self.conflicts(tx.txid)
        losers = [t for t in self._pending if t in conflicts] if conflicts else []
        self._drop(tx)
        self._remember_decision(tx.txid, True)
        for op in tx.outpoints:
            self._spent[op] = tx.txid
        self.stats.accepted += 1
        self.stats.rounds_to_accept[tx.rounds] += 1
        decisions = [(tx.txid, True, REASON_FINALIZED)]
        for other in losers:
            self._drop(self._pending[other])
            decisions.append(self._decide_rejected(other, REASON_CONFLICT))
        return decisions

    def _decide_rejected(self, txid, reason):
        self._remember_decision(txid, False)
        self.stats.rejected[reason] += 1
        return (txid, False, reason)

    def _drop(self, tx):
        """Remove a pending tx; a set losing its preference prefers its strongest member."""
        del self._pending[tx.txid]
        for op in tx.outpoints:
            members = self._sets[op]
            was_preferred = members[0] == tx.txid
            members.remove(tx.txid)
            if not members:
                del self._sets[op]
            elif was_preferred:
                best = min(members, key=lambda t: (-self._pending[t].strength, t))
                members.remove(best)
                members.insert(0, best)

    def _remember_decision(self, txid, accepted):
        self._decided[txid] = accepted
        while len(self._decided) > self._remember:
            self._decided.popitem(last=False)
        while len(self._spent) > self._remember:
            self._spent.popitem(last=False)
