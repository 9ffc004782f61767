"""Wire messages of the block service (kind ids reserved in :mod:`timecoin.p2p.messages`).

* ``block_proposal``: a signed BFT :class:`~timecoin.consensus.bft_messages.Proposal`
  (its canonical encoding) and the whole proposed block (``Block.encode``), so
  that validators can check what they are asked to prevote;
* ``block_prevote`` / ``block_precommit``: one signed
  :class:`~timecoin.consensus.bft_messages.Vote` each (its canonical encoding);
* ``getblocks``: committed blocks from ``from_height``, at most ``limit``;
* ``blocks``: ``(block, commit certificate, bodies)`` entries in height order
  (possibly none: the sender has nothing from that height); ``bodies`` are the
  raw transactions the block confirms, in the block's order (the reward
  transaction is in the block already), so that a node that never saw them
  can apply the certified block. A reply stays under ``MAX_REPLY_BYTES``
  (the sender pages by bytes as well as by count), and decoding refuses
  bodies whose txids are not the block's txids in order;
  a reply cut by that bound says so (``cut``: it holds more of the range);
* ``tip``: the sender's best block height (block sync: a node sends its own
  to its peers every sync interval; a peer above it answers with its own, and
  must then serve the blocks up to it);
* ``evidence``: one :class:`~timecoin.consensus.certificate.Evidence` (two
  conflicting signed BFT messages of one masternode, ``Evidence.encode``).

Signatures are not checked here (the block service does, with the active set
of the message's height); the decoders only check shapes and bounds.
"""

from dataclasses import dataclass

from timecoin.consensus.bft_messages import (
    PRECOMMIT,
    PREVOTE,
    MessageError,
    Proposal,
    Vote,
    decode_message,
)
from timecoin.consensus.certificate import CertificateError, Evidence
from timecoin.ledger.block import MAX_BLOCK_TXS, Block, BlockError, decode_bodies
from timecoin.ledger.encoding import DecodeError
from timecoin.ledger.tx import MAX_TX_SIZE
from timecoin.p2p.messages import (
    BLOCK_PRECOMMIT,
    BLOCK_PREVOTE,
    BLOCK_PROPOSAL,
    BLOCK_TIP,
    BLOCKS,
    EVIDENCE,
    GETBLOCKS,
    register_message,
)

#: Bounds: the encoding of one BFT message, one block, one certificate.
MAX_BFT_MESSAGE = 512
MAX_BLOCK_BYTES = 1 << 20
MAX_CERTIFICATE_BYTES = 1 << 18
#: Blocks per ``blocks`` message (a lagging node asks again for the rest).
MAX_BLOCKS_PER_MESSAGE = 16
#: Bytes of the entries of one ``blocks`` reply (under the P2P frame limit,
#: ``timecoin.p2p.framing.DEFAULT_MAX_MESSAGE_SIZE``, 10 MiB, with room for
#: the framing). A block whose entry alone is larger cannot be served.
MAX_REPLY_BYTES = 8 << 20


def entry_size(block_bytes, certificate, bodies):
    """The bytes one ``blocks`` entry counts against ``MAX_REPLY_BYTES``."""
    return len(block_bytes) + len(certificate) + sum(len(b) for b in bodies)


def check_bodies(block, bodies):
    """Raise :class:`DecodeError` unless ``bodies`` (raw transactions) decode
    and their txids are ``block``'s txids, in order (``decode_bodies``)."""
    try:
        decode_bodies(block, bodies)
    except BlockError as e:
        raise DecodeError(str(e)) from None


def _decode_bft(data, expected):
    try:
        message, end = decode_message(data)
    except MessageError as e:
        raise DecodeError(f"bad BFT message: {e}") from None
    if end != len(data):
        raise DecodeError("trailing bytes after a BFT message")
    if not isinstance(message, expected[0]) or message.msg_type != expected[1]:
        raise DecodeError("a BFT message of the wrong type")
    return message


@register_message
@dataclass(frozen=True)
class BlockProposalMessage:
    """A signed proposal and the block it proposes (``block_bytes``: ``Block.encode``)."""

    KIND = BLOCK_PROPOSAL
    INCOMPRESSIBLE = True
    proposal: Proposal
    block_bytes: bytes

    def encode(self, w):
        w.varbytes(self.proposal.encode(), MAX_BFT_MESSAGE)
        w.varbytes(self.block_bytes, MAX_BLOCK_BYTES)

    @classmethod
    def decode(cls, r):
        proposal = _decode_bft(r.varbytes(MAX_BFT_MESSAGE, "proposal"), (Proposal, 1))
        return cls(proposal, bytes(r.varbytes(MAX_BLOCK_BYTES, "block")))


class _VoteMessage:
    """A signed vote of the class's ``VOTE_TYPE``."""

    VOTE_TYPE = None

    def encode(self, w):
        w.varbytes(self.vote.encode(), MAX_BFT_MESSAGE)

    @classmethod
    def decode(cls, r):
        return cls(_decode_bft(r.varbytes(MAX_BFT_MESSAGE, "vote"), (Vote, cls.VOTE_TYPE)))


@register_message
@dataclass(frozen=True)
class BlockPrevoteMessage(_VoteMessage):
    """One signed prevote."""

    KIND = BLOCK_PREVOTE
    VOTE_TYPE = PREVOTE
    vote: Vote


@register_message
@dataclass(frozen=True)
class BlockPrecommitMessage(_VoteMessage):
    """One signed precommit."""

    KIND = BLOCK_PRECOMMIT
    VOTE_TYPE = PRECOMMIT
    vote: Vote


def vote_message(vote):
    """The wire message carrying ``vote``."""
    return BlockPrevoteMessage(vote) if vote.msg_type == PREVOTE else BlockPrecommitMessage(vote)


@register_message
@dataclass(frozen=True)
class GetBlocks:
    """Ask for committed blocks from ``from_height`` (>= 1), at most ``limit``."""

    KIND = GETBLOCKS
    from_height: int
    limit: int

    def encode(self, w):
        w.u64(self.from_height).u32(self.limit)

    @classmethod
    def decode(cls, r):
        start, limit = r.u64("from height"), r.u32("limit")
        if start < 1 or not 1 <= limit <= MAX_BLOCKS_PER_MESSAGE:
            raise DecodeError(f"getblocks asks from height >= 1, 1 to "
                              f"{MAX_BLOCKS_PER_MESSAGE} blocks")
        return cls(start, limit)


@register_message
@dataclass(frozen=True)
class Blocks:
    """Committed blocks in height order: ``entries`` of ``(block bytes,
    certificate bytes, bodies)``, ``bodies`` a tuple of the raw transactions
    the block confirms, in its order (see the module docstring); ``cut``:
    the sender stopped at ``MAX_REPLY_BYTES`` and holds more of the range."""

    KIND = BLOCKS
    INCOMPRESSIBLE = True
    entries: tuple
    cut: bool = False

    def encode(self, w):
        w.count(len(self.entries), MAX_BLOCKS_PER_MESSAGE)
        total = 0
        for block_bytes, certificate, bodies in self.entries:
            total += entry_size(block_bytes, certificate, bodies)
            if total > MAX_REPLY_BYTES:
                raise ValueError(f"a blocks reply over {MAX_REPLY_BYTES} bytes")
            w.varbytes(block_bytes, MAX_BLOCK_BYTES).varbytes(certificate, MAX_CERTIFICATE_BYTES)
            w.count(len(bodies), MAX_BLOCK_TXS)
            for raw in bodies:
                w.varbytes(raw, MAX_TX_SIZE)
        w.u8(int(self.cut))

    @classmethod
    def decode(cls, r):
        n = r.count(MAX_BLOCKS_PER_MESSAGE, "block count")
        entries, total = [], 0
        for _ in range(n):
            block_bytes = bytes(r.varbytes(MAX_BLOCK_BYTES, "block"))
            certificate = bytes(r.varbytes(MAX_CERTIFICATE_BYTES, "certificate"))
            bodies = []
            total += len(block_bytes) + len(certificate)
            for _ in range(r.count(MAX_BLOCK_TXS, "body count")):
                raw = bytes(r.varbytes(MAX_TX_SIZE, "body"))
                total += len(raw)
                if total > MAX_REPLY_BYTES:
                    raise DecodeError(f"a blocks reply over {MAX_REPLY_BYTES} bytes")
                bodies.append(raw)
            if total > MAX_REPLY_BYTES:
                raise DecodeError(f"a blocks reply over {MAX_REPLY_BYTES} bytes")
            try:
                block = Block.decode(block_bytes)
            except BlockError as e:
                raise DecodeError(f"bad block: {e}") from None
            check_bodies(block, bodies)
            entries.append((block_bytes, certificate, tuple(bodies)))
        cut = r.u8("cut")
        if cut > 1 or (cut and not entries):
            raise DecodeError("a blocks reply's cut flag is 0, or 1 after an entry")
        return cls(tuple(entries), bool(cut))


@register_message
@dataclass(frozen=True)
class Tip:
    """The sender holds committed blocks up to ``height`` (and serves them)."""

    KIND = BLOCK_TIP
    height: int

    def encode(self, w):
        w.u64(self.height)

    @classmethod
    def decode(cls, r):
        return cls(r.u64("height"))


@register_message
@dataclass(frozen=True)
class EvidenceMessage:
    """Two conflicting signed messages of one masternode (its shape checked
    here; its signatures by the receiver, against the active set)."""

    KIND = EVIDENCE
    INCOMPRESSIBLE = True
    evidence: Evidence

    def encode(self, w):
        w.varbytes(self.evidence.encode(), 2 * MAX_BFT_MESSAGE)

    @classmethod
    def decode(cls, r):
        data = bytes(r.varbytes(2 * MAX_BFT_MESSAGE, "evidence"))
        try:
            evidence = Evidence.decode(data)
            evidence.check_shape()
        except (MessageError, CertificateError) as e:
            raise DecodeError(f"bad evidence: {e}") from None
        return cls(evidence)
