"""Wire messages of Snowball finality (kind ids reserved in :mod:`timecoin.p2p.messages`).

* ``snowball_query``: poll id and up to ``MAX_QUERY_TXIDS`` txids;
* ``snowball_votes``: the poll id and one bit per queried txid (1 = preferred);
* ``subscribe``: ask a node to push its finality decisions;
* ``finality_event``: one decision: txid, accepted or not, time to finality.
"""

from dataclasses import dataclass

from timecoin.encoding import DecodeError
from timecoin.p2p.messages import (
    FINALITY_EVENT,
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
