"""The UTXO state machine, sans I/O.

Each output moves through::

    Unspent -> Locked(txid, expiry) -> SpentPending -> SpentFinalized -> Confirmed
                  |                        |
                  +-- release / expiry ----+--> Unspent

Only finalized outputs are in the set: a transaction's new outputs enter it when
the transaction finalizes, and its inputs leave it then. The set hash (MuHash3072)
and the count and total are updated at the same moment, so they describe exactly
the finalized set and agree on every node that finalized the same transactions.

The class holds a bounded LRU cache of clean outputs over storage. Outputs that
are locked or pending, and outputs changed by a journal entry that storage has
not applied yet, are *pinned*: never evicted, so a stale row can never be read
back from storage over them. Callers load what :meth:`UtxoSet.missing` names
before calling :meth:`UtxoSet.check_inputs`.
"""

import enum
import heapq
import struct
from collections import OrderedDict

from zope.interface import implementer

from timecoin.interfaces import IUtxoState
from timecoin.ledger.muhash import MuHash
from timecoin.ledger.tx import OutPoint, TxRejected, pubkey_matches

DEFAULT_LOCK_TIMEOUT = 30.0


class UtxoStatus(enum.Enum):
    """Where an output stands in its life."""

    UNSPENT = "unspent"
    LOCKED = "locked"
    SPENT_PENDING = "spent_pending"
    SPENT_FINALIZED = "spent_finalized"
    CONFIRMED = "confirmed"


_LIVE = (UtxoStatus.UNSPENT, UtxoStatus.LOCKED, UtxoStatus.SPENT_PENDING)


class UtxoEntry:
    """One output and its state."""

    __slots__ = ("outpoint", "amount", "key_hash", "status", "lock_txid", "lock_expiry", "seq")

    def __init__(self, outpoint, amount, key_hash):
        self.outpoint = outpoint
        self.amount = amount
        self.key_hash = key_hash
        self.status = UtxoStatus.UNSPENT
        self.lock_txid = None
        self.lock_expiry = None
        #: Journal sequence of the last finalized change not yet in storage.
        self.seq = None

    @property
    def pinned(self):
        return self.status is not UtxoStatus.UNSPENT or self.seq is not None


def utxo_element(outpoint, amount, key_hash):
    """The bytes of one output as the set hash sees it."""
    return outpoint.txid + struct.pack("<IQ", outpoint.vout, amount) + key_hash


@implementer(IUtxoState)
class UtxoSet:
    """The UTXO state machine over a bounded cache (see the module docstring)."""

    def __init__(self, clock, cache_entries=1_000_000, lock_timeout=DEFAULT_LOCK_TIMEOUT,
                 muhash=None, count=0, total_amount=0):
        self._clock = clock
        self.cache_entries = cache_entries
        self.lock_timeout = lock_timeout
        self._muhash = muhash or MuHash()
        self.count = count
        self.total_amount = total_amount
        self._entries = OrderedDict()
        self._locks = {}  # txid -> tuple of outpoints
        self._expiry = []  # heap of (expiry, txid)
        self._unapplied = {}  # seq -> list of outpoints touched by that journal entry
        self._summaries = {}  # seq -> (MuHash, count, total) right after that entry
        #: Outpoints :meth:`missing` found in memory, and did not; outputs :meth:`trim` evicted.
        self.cache_hits = self.cache_misses = self.cache_evictions = 0

    # -- loading -------------------------------------------------------------

    def missing(self, outpoints):
        entries = self._entries
        absent = [op for op in outpoints if op not in entries]
        self.cache_misses += len(absent)
        self.cache_hits += len(outpoints) - len(absent)
        return absent

    def load(self, rows):
        for outpoint, amount, key_hash in rows:
            if outpoint not in self._entries:
                self._entries[outpoint] = UtxoEntry(outpoint, amount, key_hash)

    def get(self, outpoint):
        entry = self._entries.get(outpoint)
        if entry is not None and not entry.pinned:
            self._entries.move_to_end(outpoint)
        return entry

    def __len__(self):
        return len(self._entries)

    # -- validation and locking ----------------------------------------------

    def check_inputs(self, tx, allow_locked=False):
        """The inputs' total; ``allow_locked`` admits inputs locked by a rival
        (a conflicting transaction that finality will decide between)."""
        total = 0
        for n, txin in enumerate(tx.inputs):
            entry = self._entries.get(txin.prevout)
            if entry is None:
                raise TxRejected("missing-input", f"input {n} spends unknown output {txin.prevout}")
            if entry.status in (UtxoStatus.SPENT_FINALIZED, UtxoStatus.CONFIRMED):
                raise TxRejected("input-spent", f"input {n} spends {txin.prevout}, already spent")
            if entry.status is not UtxoStatus.UNSPENT and not allow_locked:
                raise TxRejected(
                    "input-locked",
                    f"input {n} spends {txin.prevout}, locked by {entry.lock_txid.hex()}",
                )
            if not pubkey_matches(txin, entry.key_hash):
                raise TxRejected("pubkey-mismatch", f"input {n} key does not own {txin.prevout}")
            total += entry.amount
        return total

    def lock(self, tx, pending=False):
        """Lock every input for ``tx`` (``pending``: straight to SpentPending,
        when finality starts at once)."""
        if tx.txid in self._locks:
            raise ValueError("transaction already holds locks")
        expiry = self._clock.seconds() + self.lock_timeout
        ops = tuple(i.prevout for i in tx.inputs)
        entries = [self._entries[op] for op in ops]
        for op, entry in zip(ops, entries, strict=True):
            if entry.status is not UtxoStatus.UNSPENT:
                raise ValueError(f"{op} is not unspent")
        status = UtxoStatus.SPENT_PENDING if pending else UtxoStatus.LOCKED
        for entry in entries:
            entry.status = status
            entry.lock_txid = tx.txid
            entry.lock_expiry = expiry
        self._locks[tx.txid] = ops
        heapq.heappush(self._expiry, (expiry, tx.txid))

    def lock_holder(self, outpoint):
        entry = self._entries.get(outpoint)
        return entry.lock_txid if entry is not None else None

    def mark_pending(self, txid):
        for op in self._locks.get(txid, ()):
            entry = self._entries[op]
            if entry.status is UtxoStatus.LOCKED:
                entry.status = UtxoStatus.SPENT_PENDING

    def release(self, txid):
        ops = self._locks.pop(txid, ())
        for op in ops:
            entry = self._entries[op]
            if entry.lock_txid == txid and entry.status in (UtxoStatus.LOCKED,
                                                           UtxoStatus.SPENT_PENDING):
                entry.status = UtxoStatus.UNSPENT
                entry.lock_txid = entry.lock_expiry = None
        return bool(ops)

    def expire_locks(self, keep=None):
        """Release the locks that expired; return the txids released.

        ``keep(txid)`` (if given) is asked first: True keeps that transaction's
        locks with no expiry any more (finality still has it in a poll, so its
        coins must stay bound to it until a decision).
        """
        now = self._clock.seconds()
        expired = []
        while self._expiry and self._expiry[0][0] <= now:
            expiry, txid = heapq.heappop(self._expiry)
            ops = self._locks.get(txid)
            if not ops or self._entries[ops[0]].lock_expiry != expiry:
                continue
            if keep is not None and keep(txid):
                for op in ops:
                    self._entries[op].lock_expiry = None
                continue
            self.release(txid)
            expired.append(txid)
        return expired

    def next_expiry(self):
        """When the earliest live lock expires, or None."""
        while self._expiry and self._expiry[0][1] not in self._locks:
            heapq.heappop(self._expiry)
        return self._expiry[0][0] if self._expiry else None

    # -- finality ------------------------------------------------------------

    def finalize(self, tx, seq):
        """Spend ``tx``'s inputs and add its outputs to the set.

        The inputs must be locked by ``tx`` (genesis transactions have none).
        """
        ops = self._locks.pop(tx.txid, ())
        if len(ops) != len(tx.inputs):
            raise ValueError(f"{tx.txid.hex()} does not hold the locks of its inputs")
        touched = []
        for op in ops:
            entry = self._entries[op]
            entry.status = UtxoStatus.SPENT_FINALIZED
            entry.lock_expiry = None
            entry.seq = seq
            self._muhash.remove(utxo_element(op, entry.amount, entry.key_hash))
            self.count -= 1
            self.total_amount -= entry.amount
            touched.append(op)
        for op, out in zip(tx.outpoints(), tx.outputs, strict=True):
            entry = UtxoEntry(op, out.amount, out.key_hash)
            entry.seq = seq
            self._entries[op] = entry
            self._muhash.add(utxo_element(op, out.amount, out.key_hash))
            self.count += 1
            self.total_amount += out.amount
            touched.append(op)
        self._unapplied[seq] = touched
        self._summaries[seq] = (self._muhash.copy(), self.count, self.total_amount)

    def unwind(self, tx, spent):
        """Undo :meth:`finalize` of ``tx`` (a safety incident: a certified block
        conflicts with it): its outputs leave the set, its inputs (``spent``,
        ``[(amount, key_hash)]``) are unspent again. Outputs of ``tx`` that a
        later transaction spent must be unwound first (that one before)."""
        for op in tx.outpoints():  # checked first: nothing changes if one is spent
            entry = self._entries.get(op)
            if entry is not None and entry.status is not UtxoStatus.UNSPENT:
                raise ValueError(f"{op} of {tx.txid.hex()} is {entry.status.value}: "
                                 "unwind its spender first")
        for op, out in zip(tx.outpoints(), tx.outputs, strict=True):
            self._entries.pop(op, None)
            self._muhash.remove(utxo_element(op, out.amount, out.key_hash))
            self.count -= 1
            self.total_amount -= out.amount
        for txin, (amount, key_hash) in zip(tx.inputs, spent, strict=True):
            op = txin.prevout
            self._entries[op] = UtxoEntry(op, amount, key_hash)
            self._muhash.add(utxo_element(op, amount, key_hash))
            self.count += 1
            self.total_amount += amount
        # Summaries taken with ``tx`` in the set no longer describe it.
        self._summaries.clear()

    def summary_at(self, seq):
        """``(MuHash, count, total)`` of the set right after journal entry ``seq``
        was finalized, while storage has not applied it; else None."""
        return self._summaries.get(seq)

    def confirm(self, outpoints):
        for op in outpoints:
            entry = self._entries.get(op)
            if entry is not None and entry.status is UtxoStatus.SPENT_FINALIZED:
                entry.status = UtxoStatus.CONFIRMED

    def applied(self, seq):
        """Storage holds every journal entry up to ``seq``; unpin what they touched."""
        for s in [k for k in self._summaries if k <= seq]:
            del self._summaries[s]
        for s in sorted(k for k in self._unapplied if k <= seq):
            for op in self._unapplied.pop(s):
                entry = self._entries.get(op)
                if entry is None or entry.seq != s:
                    continue
                entry.seq = None
                if entry.status in (UtxoStatus.SPENT_FINALIZED, UtxoStatus.CONFIRMED):
                    del self._entries[op]
        self.trim()

    def trim(self):
        """Evict clean outputs, least recently used first, down to the cache bound."""
        excess = len(self._entries) - self.cache_entries
        if excess <= 0:
            return
        victims = []
        for op, entry in self._entries.items():
            if not entry.pinned:
                victims.append(op)
                if len(victims) >= excess:
                    break
        for op in victims:
            del self._entries[op]
        self.cache_evictions += len(victims)

    # -- views ---------------------------------------------------------------

    def set_hash(self):
        return self._muhash.hexdigest()

    @property
    def muhash(self):
        return self._muhash.copy()

    def overlay(self, key_hash, stored):
        """Merge ``stored`` ``(outpoint, amount)`` rows of one address with memory.

        Returns ``(outpoint, amount, status)`` for every finalized unspent
        output of the address, as of now.
        """
        result = {}
        for op, amount in stored:
            result[op] = (amount, UtxoStatus.UNSPENT)
        for op in self._pinned_outpoints():
            entry = self._entries.get(op)
            if entry is not None and entry.key_hash == key_hash:
                result[op] = (entry.amount, entry.status)
        return [(op, amount, status) for op, (amount, status) in sorted(result.items())
                if status in _LIVE]

    def _pinned_outpoints(self):
        for ops in self._locks.values():
            yield from ops
        for ops in self._unapplied.values():
            yield from ops

    def iter_entries(self):
        """Stream the outputs held in memory (pinned and cached)."""
        yield from list(self._entries.values())

    def locked_txids(self):
        return list(self._locks)


def outpoint_from_row(txid, vout):
    return OutPoint(bytes(txid), int(vout))
