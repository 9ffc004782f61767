"""Byzantine masternodes: a node's vote answers replaced on the wire.

:class:`VoteRewriter` is a :class:`~timecoin.sim.network.FrameFilter` on one
node: it remembers the txids of every Snowball query the node receives (per
connection and poll id) and, when the node answers, hands the honest votes to
an :class:`IVoteStrategy`, which returns the votes to send instead (or None
to send no answer). The node itself runs unchanged; only what leaves it lies.
"""

import random

from zope.interface import Interface, implementer

from timecoin.finality.messages import SnowballQuery, SnowballVotes
from timecoin.ledger.encoding import DecodeError
from timecoin.p2p import messages as m
from timecoin.p2p.framing import decode_frame_payload, encode_frame_payload
from timecoin.sim.network import FrameFilter


class IVoteStrategy(Interface):
    """How a byzantine node answers Snowball queries."""

    def votes(recipient, txids, honest):
        """The votes (one bool per txid) to send to ``recipient`` (its IP address)
        instead of ``honest``; None to leave the query unanswered."""


@implementer(IVoteStrategy)
class HonestVotes:
    """Answers as the node would (for tests of the hook itself)."""

    def votes(self, recipient, txids, honest):
        return honest


@implementer(IVoteStrategy)
class FlippedVotes:
    """Answers the opposite of its preference on every transaction."""

    def votes(self, recipient, txids, honest):
        return tuple(not v for v in honest)


@implementer(IVoteStrategy)
class ConstantVotes:
    """Answers ``value`` for everything (True: supports every side of a conflict)."""

    def __init__(self, value):
        self.value = bool(value)

    def votes(self, recipient, txids, honest):
        return (self.value,) * len(txids)


@implementer(IVoteStrategy)
class SilentVotes:
    """Never answers (a crashed or withholding masternode that stays connected)."""

    def votes(self, recipient, txids, honest):
        return None


@implementer(IVoteStrategy)
class EquivocatingVotes:
    """Tells each recipient something else: for each (recipient, txid) a coin
    flip from ``rng``, the same every time it is asked."""

    def __init__(self, rng=None):
        self._rng = rng or random.Random(0)
        self._answers = {}

    def votes(self, recipient, txids, honest):
        out = []
        for txid in txids:
            key = (recipient, txid)
            if key not in self._answers:
                self._answers[key] = self._rng.random() < 0.5
            out.append(self._answers[key])
        return tuple(out)


class VoteRewriter(FrameFilter):
    """Replaces a node's Snowball answers by those of ``strategy`` (an IVoteStrategy)."""

    def __init__(self, strategy):
        self.strategy = strategy
        self.rewritten = 0

    @staticmethod
    def _kind(payload):
        # Uncompressed frames start with flags 0, then the little-endian u16 kind.
        if len(payload) < 3 or payload[0]:
            return None
        return int.from_bytes(payload[1:3], "little")

    def incoming(self, transport, payload):
        if self._kind(payload) == m.SNOWBALL_QUERY:
            try:
                query = decode_frame_payload(payload)
            except DecodeError:
                return payload
            if isinstance(query, SnowballQuery):
                transport.poll_txids[query.poll_id] = query.txids
        return payload

    def outgoing(self, transport, payload):
        if self._kind(payload) != m.SNOWBALL_VOTES:
            return payload
        answer = decode_frame_payload(payload)
        txids = transport.poll_txids.pop(answer.poll_id, None)
        if txids is None or len(txids) != len(answer.votes):
            return payload
        votes = self.strategy.votes(transport.dst, txids, answer.votes)
        self.rewritten += 1
        if votes is None:
            return None
        return encode_frame_payload(SnowballVotes(answer.poll_id, tuple(bool(v) for v in votes)))


@implementer(IVoteStrategy)
class NoThenYesVotes:
    """Against the first spend of each coin, for every later spend: "no" to the
    first transaction it is asked about that spends a coin, "yes" to every other
    spend of that coin (the re-spend a wallet makes when the first stalled).
    ``coin_of`` maps a txid to its coin (any hashable), for the txids it knows;
    others are answered honestly."""

    def __init__(self, coin_of):
        self._coin_of = coin_of
        self._first = {}

    def votes(self, recipient, txids, honest):
        out = []
        for txid, vote in zip(txids, honest, strict=True):
            coin = self._coin_of.get(txid)
            if coin is None:
                out.append(vote)
                continue
            first = self._first.setdefault(coin, txid)
            out.append(txid != first)
        return tuple(out)


@implementer(IVoteStrategy)
class SplitVotes:
    """Equivocates per poller, the same way every time: pollers in one half
    (by their address) hear "yes" for the first spend of each coin it saw and
    "no" for the others, the other half the opposite, so each half is pushed
    toward another side of every conflict. ``coin_of`` as for NoThenYesVotes."""

    def __init__(self, coin_of):
        self._coin_of = coin_of
        self._first = {}

    def votes(self, recipient, txids, honest):
        half = sum(recipient.encode()) % 2 == 0
        out = []
        for txid, vote in zip(txids, honest, strict=True):
            coin = self._coin_of.get(txid)
            if coin is None:
                out.append(vote)
                continue
            first = self._first.setdefault(coin, txid)
            out.append((txid == first) == half)
        return tuple(out)


class KindFilter(FrameFilter):
    """Drops the frames of ``kinds`` (message kind ids) a node receives or sends:
    e.g. the journal catch-up's, to show that a node catches up without it.
    ``dropped`` counts them."""

    def __init__(self, kinds):
        self.kinds = frozenset(kinds)
        self.dropped = 0

    def _keep(self, payload):
        kind = VoteRewriter._kind(payload)
        if kind is None and payload:
            try:
                kind = type(decode_frame_payload(payload)).KIND
            except (DecodeError, AttributeError):
                return payload
        if kind in self.kinds:
            self.dropped += 1
            return None
        return payload

    def incoming(self, transport, payload):
        return self._keep(payload)

    def outgoing(self, transport, payload):
        return self._keep(payload)


def force_finalized(node, txid):
    """A node whose finality is forced: ``node`` finalizes ``txid`` (pending
    there) without any quorum, as a faulty or eclipsed node might; a certified
    block conflicting with it is then a safety incident there. (Through
    ``IFinality.decide_by_block`` with no block behind it: height 0.)"""
    node.finality.decide_by_block(txid, 0)
