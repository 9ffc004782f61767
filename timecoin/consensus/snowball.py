"""Snowball finality over conflict sets: a sans-I/O engine driven by poll results.

A *conflict set* is every transaction this node has seen spending one outpoint;
a transaction with several inputs belongs to several sets. Per set the engine
keeps a preference (what this node votes), and per transaction its preference
strength (rounds reaching ``alpha_preference``), its confidence (consecutive
rounds reaching ``alpha``) and the number of polls it has been in. The rules
follow avalanchego's n-ary Snowball; ``doc/snowball.md`` states them.

Safety rules kept here:

* once a transaction entered, its outpoints stay bound to its conflict set
  until one member is finalized: nothing local (no timeout, no round limit)
  frees them; ``max_rounds`` only marks a transaction *stalled*;
* ``rejected`` means invalid at entry or a conflicting transaction was
  finalized; ``accepted`` and ``rejected`` are terminal;
* votes follow decisions (also beyond the in-memory window, through
  ``lookup``), and after :meth:`SnowballEngine.restore` the node never votes for
  another side of a set it voted on before, until that set is decided.

The engine never samples, sends or times anything: :mod:`timecoin.consensus.polls`
runs the polls and feeds each finished one to :meth:`SnowballEngine.record_poll`.
"""

from collections import OrderedDict
from dataclasses import dataclass, field

from zope.interface import implementer

from timecoin.consensus.interfaces import ISnowballEngine
from timecoin.consensus.params import CONFIG_KEYS, SnowballParams
from timecoin.consensus.state import (
    ConflictSetRecord,
    EngineStats,
    FinalStatusError,
    TxSnapshot,
    _Tx,
)

__all__ = ["CONFIG_KEYS", "ConflictSetRecord", "EngineStats", "FinalStatusError",
           "SnowballEngine", "SnowballParams", "TxSnapshot"]

PENDING = "pending"
ACCEPTED = "accepted"
REJECTED = "rejected"

#: Reasons carried by decisions.
REASON_FINALIZED = "finalized"
REASON_CONFLICT = "conflict"
REASON_DOUBLE_SPEND = "double-spend"
REASON_REPORTED = "finalized-by-network"
#: The reason of a transaction a committed block decided (its rivals: ``conflict: ...``).
REASON_BLOCK = "decided-by-block"
#: The reason a pending transaction's snapshot gives once it ran ``max_rounds``.
REASON_STALLED = "stalled"
#: A stalled transaction is polled once every 2, 4, ... up to this many poll starts.
MAX_STALL_BACKOFF = 16


@dataclass
class _Set:
    members: list  # txids in arrival order
    preferred: object  # the txid this node prefers
    pinned: object = None  # after restore or a block vote: the only member voted for
    voted_yes: set = field(default_factory=set)  # members this node answered "yes" for
    restored: bool = False  # reloaded after a restart: earlier votes are not all known


@implementer(ISnowballEngine)
class SnowballEngine:
    """Snowball over conflict sets: preferences, counters and decisions.

    Decisions are ``(txid, accepted, reason)`` tuples, returned by :meth:`add`,
    :meth:`record_poll` and :meth:`report_finalized`; each transaction is
    decided at most once and a decision never changes. ``remember`` bounds how
    many decided transactions (and outpoints spent by accepted ones) are kept;
    ``lookup(txid)`` (True: finalized, False: rejected, None: unknown), e.g. a
    journal lookup, answers votes beyond that window.
    """

    def __init__(self, params, remember=100_000, lookup=None):
        self.params = params
        self.stats = EngineStats()
        self._remember = remember
        self._lookup = lookup
        self._pending = {}  # txid -> _Tx, in arrival order
        self._sets = {}  # outpoint -> _Set, while it has a pending member
        self._decided = OrderedDict()  # txid -> True (accepted) / False (rejected)
        self._spent = OrderedDict()  # outpoint -> accepted txid
        self._voted = {}  # outpoint -> (members, preferred) last voted on
        self._dirty = set()  # outpoints whose record changed since dirty_records()
        self._forgotten = set()  # outpoints whose sets ``cancel`` emptied since then
        self._ticks = 0  # calls of in_flight(), the clock of stall back-off

    # -- transactions -------------------------------------------------------

    def add(self, txid, outpoints):
        """A validated transaction entered; return decisions (empty unless a double spend).

        It joins the conflict set of each outpoint (as a contender if the set
        exists, however long it has been polled); the first transaction seen
        in a set is that set's preference. Known txids are ignored.
        """
        if txid in self._pending or txid in self._decided:
            return []
        outpoints = tuple(dict.fromkeys(outpoints))
        if any(op in self._spent for op in outpoints):
            return [self._decide(txid, False, REASON_DOUBLE_SPEND)]
        tx = _Tx(txid, outpoints)
        self._pending[txid] = tx
        for op in outpoints:
            conflict_set = self._sets.get(op)
            if conflict_set is None:
                self._sets[op] = _Set([txid], txid)
                continue
            tx.contested = True
            for other in conflict_set.members:
                self._pending[other].contested = True
            conflict_set.members.append(txid)
        self._mark_recorded(tx)  # durable from entry: a restart must not lose it
        return []

    def can_forget(self, txid):
        tx = self._pending.get(txid)
        return tx is not None and not tx.rounds and not tx.voted

    def cancel(self, txid):
        """Forget pending ``txid`` if it was never polled; True if forgotten.

        A transaction that has been in a poll stays bound to its conflict sets
        (other nodes may have counted this node's vote): it is not forgotten.
        """
        if not self.can_forget(txid):
            return False
        tx = self._pending[txid]
        self._drop(tx)
        for op in tx.outpoints:  # its saved records go too (see dirty_records)
            if op in self._sets:
                self._mark_set(op)
            else:
                self._forgotten.add(op)
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
        return TxSnapshot(txid, self.is_preferred(txid), tx.contested, tx.strength,
                          tx.confidence, tx.rounds, tx.stalled,
                          REASON_STALLED if tx.stalled else None)

    def is_contested(self, txid):
        """True if pending ``txid`` has (or had) a conflicting transaction."""
        tx = self._pending.get(txid)
        return tx is not None and tx.contested

    def is_stalled(self, txid):
        """True if pending ``txid`` ran ``max_rounds`` polls undecided."""
        tx = self._pending.get(txid)
        return tx is not None and tx.stalled

    def conflicts(self, txid):
        """The pending transactions sharing an outpoint with pending ``txid``."""
        tx = self._pending.get(txid)
        if tx is None:
            return set()
        return {o for op in tx.outpoints for o in self._sets[op].members if o != txid}

    def __len__(self):
        return len(self._pending)

    # -- voting -------------------------------------------------------------

    def is_preferred(self, txid):
        """This node's vote on ``txid``: preferred in every one of its conflict sets.

        Accepted transactions are preferred, rejected ones are not; unknown
        ones are looked up (``lookup``), else not preferred. A set pinned by
        :meth:`restore` is voted for its pinned member only.
        """
        tx = self._pending.get(txid)
        if tx is None:
            decided = self._decided.get(txid)
            if decided is None and self._lookup is not None:
                decided = self._lookup(txid)
            return bool(decided)
        for op in tx.outpoints:
            conflict_set = self._sets[op]
            if (conflict_set.pinned or conflict_set.preferred) != txid:
                return False
        return True

    def votes(self, txids):
        """The answer to a query: ``[is_preferred(t) for t in txids]``.

        Each conflict set voted on is recorded for :meth:`dirty_records`: the
        caller persists those records before the votes leave.
        """
        answer = []
        for txid in txids:
            yes = self.is_preferred(txid)
            answer.append(yes)
            tx = self._pending.get(txid)
            if tx is not None:
                tx.voted = True
                if yes:
                    for op in tx.outpoints:
                        self._sets[op].voted_yes.add(txid)
                self._mark_recorded(tx)
        return answer

    def dirty_records(self):
        """The :class:`ConflictSetRecord` list changed since the last call.

        A set is recorded when a member enters (:meth:`add`), when it is voted
        on (:meth:`votes`, also this node's own vote in its polls) and when
        :meth:`cancel` removes a member; a set ``cancel`` emptied comes as a
        record with no members and ``preferred`` None: delete it.
        """
        records = [ConflictSetRecord(op, (), None)
                   for op in sorted(self._forgotten, key=repr) if op not in self._sets]
        self._forgotten.clear()
        for op in sorted(self._dirty, key=repr):
            conflict_set = self._sets.get(op)
            if conflict_set is None:
                continue
            members = tuple((t, self._pending[t].outpoints) for t in conflict_set.members)
            records.append(ConflictSetRecord(op, members, self._voted[op][1]))
        self._dirty.clear()
        return records

    def restore(self, records):
        """Reload conflict sets from :meth:`dirty_records` output saved before a restart.

        Members are added (decided ones skipped) and count as voted on (they
        stay bound to their sets: ``cancel`` refuses them); each set is pinned
        to the member it was voted for: this node votes for no other member of
        that set until the set is decided. Later records for a set replace earlier
        ones. Returns decisions (double spends of outpoints already spent).
        """
        decisions = []
        latest = {}
        for record in records:
            latest[record.outpoint] = record
            for txid, outpoints in record.members:
                decisions.extend(self.add(txid, outpoints))
                if txid in self._pending:
                    self._pending[txid].voted = True
        for op, record in latest.items():
            conflict_set = self._sets.get(op)
            if conflict_set is not None:
                conflict_set.restored = True
            if conflict_set is not None and record.preferred in conflict_set.members:
                conflict_set.preferred = conflict_set.pinned = record.preferred
                self._voted[op] = (tuple(conflict_set.members), record.preferred)
        return decisions

    def in_flight(self, limit=None, contested=True):
        """Up to ``limit`` pending txids, oldest first: the batch for the next poll.

        With ``contested=False`` only uncontested transactions are taken.

        A stalled transaction is included only once every 2, 4, ...,
        :data:`MAX_STALL_BACKOFF` calls while its rounds keep failing (its
        polling slows down but goes on); a successful round restores full speed.
        """
        self._ticks += 1
        batch = []
        for txid, tx in self._pending.items():
            if limit is not None and len(batch) >= limit:
                break
            if tx.stalled and self._ticks < tx.next_tick or not contested and tx.contested:
                continue
            if tx.stalled:
                tx.backoff = min(tx.backoff * 2, MAX_STALL_BACKOFF)
                tx.next_tick = self._ticks + tx.backoff
            batch.append(txid)
        return batch

    # -- polls --------------------------------------------------------------

    def record_poll(self, results):
        """Feed one finished poll: ``{txid: (yes_count, sample_size)}``; return decisions.

        Per transaction, as avalanchego's n-ary Snowball: ``yes >=
        preference_quorum`` raises its strength (it becomes a set's preference
        only with strictly more strength than the current one: a tie keeps the
        preference) and resets the confidence of its conflicts; ``yes >=
        quorum`` then raises its confidence, anything less resets it. Two
        conflicting transactions both reaching a threshold in one poll (only
        byzantine voters can do that) count as failed rounds for both.
        """
        params = self.params
        pending = self._pending
        self.stats.polls += 1
        polled, winners, strong = [], set(), set()
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
        ambiguous = {t for t in strong if pending[t].contested and self.conflicts(t) & strong}
        self.stats.ambiguous_rounds += len(ambiguous & winners)
        strong -= ambiguous
        winners -= ambiguous
        for txid in strong:
            self._strengthen(pending[txid])
        for tx in polled:
            if tx.txid in winners:
                self.stats.successful_rounds += 1
                tx.confidence += 1
                tx.backoff, tx.next_tick = 1, 0  # progress: poll it at full speed again
            else:
                self.stats.failed_rounds += 1
                tx.confidence = 0
        for txid in strong:
            if pending[txid].contested:
                for other in self.conflicts(txid):
                    pending[other].confidence = 0
        decisions = []
        for tx in polled:
            needed = params.beta if tx.contested else params.finality_confidence
            if tx.txid in pending and tx.confidence >= needed:
                decisions.extend(self._accept(tx, REASON_FINALIZED))
        for tx in polled:
            if tx.txid in pending and not tx.stalled and tx.rounds >= params.max_rounds:
                tx.stalled = True
                self.stats.stalled += 1
        return decisions

    def report_finalized(self, txid, outpoints, trusted):
        """Catch-up input: peers report ``txid`` (spending ``outpoints``) finalized.

        ``trusted`` is the caller's verdict that the reporters hold more than
        ``alpha`` of the active stake (:meth:`SnowballParams.exceeds_confidence_share`).
        The report is applied directly only if trusted and ``txid`` conflicts
        with no pending transaction; otherwise ``txid`` merely enters (if new)
        and is polled as usual. A rejected ``txid`` stays rejected. Returns
        decisions.
        """
        if txid in self._decided:
            return []
        decisions = self.add(txid, outpoints)
        if decisions or not trusted or self.conflicts(txid):
            self.stats.reports_deferred += 1
            return decisions
        self.stats.reports_applied += 1
        return self._accept(self._pending[txid], REASON_REPORTED)

    def stalled_sets(self):
        """Every conflict set with a stalled member: ``[[(txid, confidence)]]``,
        each set's members in arrival order (a member of several sets is in each)."""
        seen, out = set(), []
        for op, conflict_set in self._sets.items():
            if op in seen or not any(self._pending[t].stalled for t in conflict_set.members):
                continue
            seen.add(op)
            out.append([(t, self._pending[t].confidence) for t in conflict_set.members])
        return out

    def decide_by_block(self, txid, height):
        """A committed block at ``height`` confirms pending ``txid``: it is accepted,
        its rivals rejected (``conflict: decided by block H``); votes follow.
        Returns decisions (empty if ``txid`` is not pending here)."""
        tx = self._pending.get(txid)
        if tx is None:
            return []
        return self._accept(tx, REASON_BLOCK,
                            loser_reason=f"{REASON_CONFLICT}: decided by block {height}")

    def may_decide_by_block(self, txid):
        """True if this node may vote for a block that decides pending ``txid``:
        in none of its conflict sets did this node ever answer "yes" for
        another member, and none was reloaded after a restart (whose earlier
        votes are not all known). A block deciding ``txid`` then never
        contradicts a vote of this node (see doc/finality.md, "Blocks decide
        stalled sets")."""
        tx = self._pending.get(txid)
        if tx is None:
            return False
        for op in tx.outpoints:
            conflict_set = self._sets[op]
            if conflict_set.restored or conflict_set.voted_yes - {txid}:
                return False
            if conflict_set.pinned not in (None, txid):
                return False
        return True

    def vote_for_block(self, txid):
        """This node votes for a block deciding pending ``txid``: from now on it
        answers "yes" for no other member of its sets (they are pinned to it,
        and the pin is saved with the next records). True if pinned; False if
        :meth:`may_decide_by_block` does not allow it."""
        if not self.may_decide_by_block(txid):
            return False
        for op in self._pending[txid].outpoints:
            conflict_set = self._sets[op]
            conflict_set.pinned = conflict_set.preferred = txid
            self._mark_set(op)
        return True

    # -- internals ----------------------------------------------------------

    def _mark_recorded(self, tx):
        for op in tx.outpoints:
            self._mark_set(op)

    def _mark_set(self, op):
        conflict_set = self._sets[op]
        record = (tuple(conflict_set.members), conflict_set.pinned or conflict_set.preferred)
        if self._voted.get(op) != record:
            self._voted[op] = record
            self._dirty.add(op)

    def _strengthen(self, tx):
        tx.strength += 1
        for op in tx.outpoints:
            conflict_set = self._sets[op]
            preferred = self._pending[conflict_set.preferred]
            if preferred is not tx and tx.strength > preferred.strength:
                conflict_set.preferred = tx.txid
                self.stats.preference_flips += 1

    def _accept(self, tx, reason, loser_reason=REASON_CONFLICT):
        conflicts = self.conflicts(tx.txid)
        losers = [t for t in self._pending if t in conflicts] if conflicts else []
        self._drop(tx)
        decisions = [self._decide(tx.txid, True, reason)]
        for op in tx.outpoints:
            self._spent[op] = tx.txid
        self.stats.rounds_to_accept[tx.rounds] += 1
        for other in losers:
            self._drop(self._pending[other])
            decisions.append(self._decide(other, False, loser_reason))
        return decisions

    def _decide(self, txid, accepted, reason):
        known = self._decided.get(txid)
        if known is not None and known != accepted:
            raise FinalStatusError(f"{txid!r} was decided {known}, cannot become {accepted}")
        self._decided[txid] = accepted
        while len(self._decided) > self._remember:
            self._decided.popitem(last=False)
        while len(self._spent) > self._remember:
            self._spent.popitem(last=False)
        if accepted:
            self.stats.accepted += 1
        else:
            self.stats.rejected[reason] += 1
        return (txid, accepted, reason)

    def _drop(self, tx):
        """Remove a pending tx; a set losing its preference prefers its strongest member."""
        del self._pending[tx.txid]
        for op in tx.outpoints:
            conflict_set = self._sets[op]
            conflict_set.members.remove(tx.txid)
            if not conflict_set.members:
                del self._sets[op]
                self._voted.pop(op, None)
                self._dirty.discard(op)
                continue
            if conflict_set.pinned == tx.txid:
                conflict_set.pinned = None
            if conflict_set.preferred == tx.txid:
                # max() keeps the earliest member on a tie: no txid-order rule to grind.
                conflict_set.preferred = max(conflict_set.members,
                                             key=lambda t: self._pending[t].strength)
