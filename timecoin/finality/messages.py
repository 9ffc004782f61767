"""Wire messages of Snowball finality (kind ids reserved in :mod:`timecoin.p2p.messages`).

* ``snowball_query``: poll id and up to ``MAX_QUERY_TXIDS`` txids;
* ``snowball_votes``: the poll id and one bit per queried txid (1 = preferred);
* ``subscribe``: ask a node to push its finality decisions;
* ``finality_event``: one decision: txid, accepted or not, time to finality;
* ``get_finalized`` / ``finalized``: pages of a masternode's finality journal,
  for a node that was away to catch up.
"""

from dataclasses import dataclass

from timecoin.ledger.encoding import DecodeError
from timecoin.ledger.tx import MAX_TX_SIZE
from timecoin.p2p.messages import (
    FINALITY_EVENT,
    FINALIZED,
    GET_FINALIZED,
    HASH_SIZE,
    SNOWBALL_QUERY,
    SNOWBALL_VOTES,
    SUBSCRIBE,
    register_message,
)

MAX_QUERY_TXIDS = 1024
MAX_REASON = 32


@register_message
@dataclass(frozen=True)
class SnowballQuery:
    """Ask for this node's preference on each of ``txids`` (poll ``poll_id``)."""

    KIND = SNOWBALL_QUERY
    INCOMPRESSIBLE = True  # txids: a large query is sent as it is
    poll_id: int
    txids: tuple

    def encode(self, w):
        w.u32(self.poll_id).count(len(self.txids), MAX_QUERY_TXIDS)
        for txid in self.txids:
            w.fixed(txid, HASH_SIZE)

    @classmethod
    def decode(cls, r):
        poll_id = r.u32("poll id")
        n = r.count(MAX_QUERY_TXIDS, "txid count")
        return cls(poll_id, tuple(r.fixed(HASH_SIZE, "txid") for _ in range(n)))


@register_message
@dataclass(frozen=True)
class SnowballVotes:
    """The answer to a query: one vote per queried txid, in order."""

    KIND = SNOWBALL_VOTES
    poll_id: int
    votes: tuple

    def encode(self, w):
        bits = bytearray((len(self.votes) + 7) // 8)
        for i, vote in enumerate(self.votes):
            if vote:
                bits[i // 8] |= 1 << (i % 8)
        w.u32(self.poll_id).count(len(self.votes), MAX_QUERY_TXIDS).raw(bits)

    @classmethod
    def decode(cls, r):
        poll_id = r.u32("poll id")
        n = r.count(MAX_QUERY_TXIDS, "vote count")
        bits = r.fixed((n + 7) // 8, "vote bits")
        if n % 8 and bits[-1] >> (n % 8):
            raise DecodeError("vote bits beyond the count are set")
        return cls(poll_id, tuple(bool(bits[i // 8] >> (i % 8) & 1) for i in range(n)))


@register_message
@dataclass(frozen=True)
class Subscribe:
    """Ask the node to push a ``finality_event`` for each of its decisions."""

    KIND = SUBSCRIBE

    def encode(self, w):
        pass

    @classmethod
    def decode(cls, r):
        return cls()


@register_message
@dataclass(frozen=True)
class FinalityEvent:
    """One finality decision of the sending node."""

    KIND = FINALITY_EVENT
    txid: bytes
    accepted: bool
    reason: str
    finality_ms: int

    def encode(self, w):
        w.fixed(self.txid, HASH_SIZE).u8(1 if self.accepted else 0)
        w.text(self.reason, MAX_REASON).u32(self.finality_ms)

    @classmethod
    def decode(cls, r):
        txid = r.fixed(HASH_SIZE, "txid")
        flag = r.u8("accepted")
        if flag > 1:
            raise DecodeError("accepted flag must be 0 or 1")
        return cls(txid, bool(flag), r.text(MAX_REASON, "reason"), r.u32("finality ms"))


MAX_FINALIZED_PAGE = 500


@register_message
@dataclass(frozen=True)
class GetFinalized:
    """Ask for the sender's journal: entries after ``after_seq``, at most ``limit``."""

    KIND = GET_FINALIZED
    after_seq: int
    limit: int

    def encode(self, w):
        w.u64(self.after_seq).u32(self.limit)

    @classmethod
    def decode(cls, r):
        after, limit = r.u64("after seq"), r.u32("limit")
        if not 1 <= limit <= MAX_FINALIZED_PAGE:
            raise DecodeError(f"limit must be 1 to {MAX_FINALIZED_PAGE}")
        return cls(after, limit)


@register_message
@dataclass(frozen=True)
class Finalized:
    """A page of the sender's journal: ``(seq, raw transaction)`` in finality order."""

    KIND = FINALIZED
    entries: tuple
    more: bool

    def encode(self, w):
        w.count(len(self.entries), MAX_FINALIZED_PAGE)
        for seq, raw in self.entries:
            w.u64(seq).varbytes(raw, MAX_TX_SIZE)
        w.u8(1 if self.more else 0)

    @classmethod
    def decode(cls, r):
        n = r.count(MAX_FINALIZED_PAGE, "entry count")
        entries = tuple((r.u64("seq"), r.varbytes(MAX_TX_SIZE, "transaction")) for _ in range(n))
        more = r.u8("more")
        if more > 1:
            raise DecodeError("more flag must be 0 or 1")
        return cls(entries, bool(more))
