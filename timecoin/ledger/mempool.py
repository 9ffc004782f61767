"""The mempool, sans I/O: pending transactions bounded by count and bytes.

Entries are ordered by fee rate (units per byte) in a heap with lazy deletion,
so admission, eviction and the minimum fee rate cost O(log n); size and byte
counters are kept as the entries change, so reading them is O(1). When the pool
is full, a newcomer must pay a strictly higher fee rate than the lowest entry,
which is evicted (repeatedly, until the newcomer fits); only entries the caller
says may be forgotten (``evictable``: finality never polled nor voted on them)
are ever evicted, so eviction never frees a coin a vote has touched. Rejected
txids are remembered for an hour so that a flood of the same bad transaction
costs one lookup each. Dropped txids (evicted, or expired before any poll) are
remembered apart for as long: a drop is not a decision, so a dropped
transaction may enter again (the network may still finalize it).

The pool also keeps what follows from its entries: the contenders (double
spends of a pending transaction, admitted without locks for finality to
decide between) and the pending outputs paying each address, both updated as
entries come and go (evictions included).
"""

import heapq
import itertools
from collections import OrderedDict
from dataclasses import dataclass

from zope.interface import implementer

from timecoin.interfaces import IMempool
from timecoin.ledger.tx import TxRejected

DEFAULT_MAX_BYTES = 300_000_000
DEFAULT_MAX_COUNT = 500_000
REJECTED_TTL = 3600.0
REJECTED_MAX = 100_000


@dataclass
class MempoolEntry:
    """A pending transaction with its fee and the time it arrived."""

    tx: object
    fee: int
    fee_rate: float
    added_at: float


@implementer(IMempool)
class Mempool:
    """Bounded, fee-rate ordered pending transactions (see the module docstring)."""

    def __init__(self, clock, max_bytes=DEFAULT_MAX_BYTES, max_count=DEFAULT_MAX_COUNT,
                 rejected_ttl=REJECTED_TTL, rejected_max=REJECTED_MAX):
        self._clock = clock
        self.max_bytes = max_bytes
        self.max_count = max_count
        self.size = 0
        self.bytes = 0
        self._entries = {}
        self._heap = []
        self._tiebreak = itertools.count()
        self._rejected = OrderedDict()
        self._rejected_ttl = rejected_ttl
        self._rejected_max = rejected_max
        self._dropped = OrderedDict()
        self._contenders = set()
        self._incoming = {}  # key_hash -> {(txid, vout): amount} of pending outputs

    def __contains__(self, txid):
        return txid in self._entries

    def __len__(self):
        return self.size

    def get(self, txid):
        return self._entries.get(txid)

    def txids(self):
        return list(self._entries)

    def _lowest(self):
        while self._heap:
            rate, _, txid = self._heap[0]
            if txid in self._entries:
                return rate, txid
            heapq.heappop(self._heap)
        return None

    def min_fee_rate(self):
        """0 while there is room; else the rate a newcomer must beat."""
        if self.size < self.max_count and self.bytes < self.max_bytes:
            return 0.0
        lowest = self._lowest()
        return lowest[0] if lowest else 0.0

    def add(self, tx, fee, contender=False, evictable=None):
        txid, size = tx.txid, len(tx.raw)
        if txid in self._entries:
            raise TxRejected("already-known", "transaction is already pending")
        if size > self.max_bytes:
            raise TxRejected("mempool-full", "transaction is larger than the mempool")
        rate = fee / size
        victims = []
        if self.size + 1 > self.max_count or self.bytes + size > self.max_bytes:
            victims = self._choose_victims(size, rate, evictable)
            for victim in victims:
                self.remove(victim)
        self._entries[txid] = MempoolEntry(tx, fee, rate, self._clock.seconds())
        heapq.heappush(self._heap, (rate, next(self._tiebreak), txid))
        self.size += 1
        self.bytes += size
        if contender:
            self._contenders.add(txid)
        for n, out in enumerate(tx.outputs):
            self._incoming.setdefault(out.key_hash, {})[(txid, n)] = out.amount
        return victims

    def _choose_victims(self, tx_size, rate, evictable):
        """The lowest-rate evictable txids to evict to fit ``tx_size``; refuse if
        they pay as much.

        Pops them off the heap and pushes them back, so a refusal leaves no trace.
        """
        popped, victims = [], []
        count, size = self.size, self.bytes
        try:
            while count + 1 > self.max_count or size + tx_size > self.max_bytes:
                if self._lowest() is None:
                    raise TxRejected("mempool-full",
                                     "mempool is full of transactions being decided")
                item = heapq.heappop(self._heap)
                popped.append(item)
                lowest_rate, _, txid = item
                if lowest_rate >= rate:
                    raise TxRejected(
                        "mempool-full",
                        f"fee rate {rate:.3f} does not beat the lowest pending {lowest_rate:.3f}",
                    )
                if evictable is not None and not evictable(txid):
                    continue  # being decided: its coins stay bound to its conflict set
                victims.append(txid)
                count -= 1
                size -= self._entries[txid].tx.size
        finally:
            for item in popped:
                heapq.heappush(self._heap, item)
        return victims

    def remove(self, txid):
        entry = self._entries.pop(txid, None)
        if entry is not None:
            self.size -= 1
            self.bytes -= entry.tx.size
            self._contenders.discard(txid)
            self._forget_incoming(entry.tx)
            if len(self._heap) > 2 * self.size + 64:
                self._compact()
        return entry

    def _forget_incoming(self, tx):
        for n, out in enumerate(tx.outputs):
            pending = self._incoming.get(out.key_hash)
            if pending is not None:
                pending.pop((tx.txid, n), None)
                if not pending:
                    del self._incoming[out.key_hash]

    # -- derived views -------------------------------------------------------

    def contenders(self):
        return list(self._contenders)

    def is_contender(self, txid):
        return txid in self._contenders

    def incoming(self, key_hash):
        return sum(self._incoming.get(key_hash, {}).values())

    def _compact(self):
        self._heap = [item for item in self._heap if item[2] in self._entries]
        heapq.heapify(self._heap)

    # -- recently rejected ---------------------------------------------------

    def reject(self, txid, reason):
        self._rejected.pop(txid, None)
        self._rejected[txid] = (self._clock.seconds() + self._rejected_ttl, reason)
        while len(self._rejected) > self._rejected_max:
            self._rejected.popitem(last=False)

    def rejection(self, txid):
        item = self._rejected.get(txid)
        if item is None:
            return None
        expiry, reason = item
        if expiry <= self._clock.seconds():
            del self._rejected[txid]
            return None
        return reason

    def expire_rejections(self):
        now = self._clock.seconds()
        for memory in (self._rejected, self._dropped):
            while memory:
                txid, (expiry, _) = next(iter(memory.items()))
                if expiry > now:
                    break
                del memory[txid]

    # -- recently dropped (not a decision) -----------------------------------

    def note_dropped(self, txid, reason):
        self._dropped.pop(txid, None)
        self._dropped[txid] = (self._clock.seconds() + self._rejected_ttl, reason)
        while len(self._dropped) > self._rejected_max:
            self._dropped.popitem(last=False)

    def drop_reason(self, txid):
        item = self._dropped.get(txid)
        if item is None or item[0] <= self._clock.seconds() or txid in self._entries:
            return None
        return item[1]
