"""The finality proof and its one canonical, bounded binary encoding.

A :class:`FinalityProof` holds the block header that checkpoints a
transaction, the block's commit certificate, the txid's Merkle path in the
block, and the validator-set hand-offs from the genesis to that block: for
each block at which the active set changed, its header, its certificate and
the new set in full (:class:`SetHandoff`). Encoding (integers little-endian,
as everywhere in the ledger; doc/proofs.md gives it field by field)::

    "timecoin-finality-proof" | u8 version (1) | u8 network id |
    u32 n | n x hand-off | header | certificate |
    txid 32 | u32 index | u32 size | u8 m | m x sibling hash 32

    hand-off    = header | certificate | u32 k | k x (pubkey 32 | u64 weight)
    header      = u32 length | BlockHeader encoding
    certificate = u32 length | CommitCertificate encoding

Every length and count has a bound, the whole proof at most
:data:`MAX_PROOF_SIZE` bytes, and decoding consumes every byte. Decoding and
verification (:mod:`timecoin.proofs.verify`) raise :class:`ProofError` only,
with a ``reason`` from :data:`REASONS`.
"""

from dataclasses import dataclass

from timecoin.consensus.bft_messages import MessageError
from timecoin.consensus.certificate import CommitCertificate
from timecoin.ledger.block import MAX_BLOCK_TXS, MAX_DEACTIVATIONS, BlockHeader
from timecoin.ledger.encoding import (
    DecodeError,
    LimitError,
    Reader,
    ReasonError,
    TrailingBytesError,
    TruncatedError,
    Writer,
)

MAGIC = b"timecoin-finality-proof"
VERSION = 1
#: The largest proof accepted, in bytes (checked before anything is parsed).
MAX_PROOF_SIZE = 8 * 1024 * 1024
#: The most hand-offs one proof carries.
MAX_HANDOFFS = 50_000
#: The largest validator set a hand-off lists.
MAX_SET_SIZE = 4_096
#: The largest encoded header: the fixed fields and every deactivation.
MAX_HEADER_BYTES = 16 + 1 + 8 + 32 + 8 + 4 + 32 + 32 + 32 + 32 + 8 + 4 + 32 * MAX_DEACTIVATIONS
#: The largest encoded certificate: one signature (u8 len, 32-byte key, u8
#: len, 64-byte signature) per member of the largest set.
MAX_CERTIFICATE_BYTES = 8 + 4 + 1 + 32 + 2 + (1 + 32 + 1 + 64) * MAX_SET_SIZE
#: The largest Merkle tree a block has (its txids and the reward's), and the
#: longest path in it.
MAX_TREE_SIZE = MAX_BLOCK_TXS + 1
MAX_PATH = 32
#: Rounds are below 2**31 (``bft_messages.sign_bytes``).
MAX_ROUND = 2**31

#: Every reason a proof is refused, each with its own cause (doc/proofs.md).
REASONS = (
    "not-a-proof", "unsupported-version", "wrong-network", "oversized", "truncated",
    "over-limit", "trailing-bytes", "malformed-header", "malformed-certificate",
    "malformed-set", "txid-mismatch", "txid-not-in-block", "no-validators",
    "wrong-height", "wrong-hash", "duplicate-signer", "unsorted-signers",
    "unknown-signer", "bad-signature", "insufficient-stake", "set-hash-mismatch",
    "handoff-out-of-order", "handoff-no-change",
)


class ProofError(ReasonError):
    """A finality proof does not decode or does not verify; ``reason`` (one of
    :data:`REASONS`) says why, ``height`` names the block at fault if one is."""

    def __init__(self, reason, detail="", height=None):
        super().__init__(reason, detail, "" if height is None else f" (block {height})")
        self.height = height


@dataclass(frozen=True)
class SetHandoff:
    """A block at which the active set changed: its header, its commit
    certificate, and the set after it, ``validators`` = ((pubkey, weight), ...)
    in ascending pubkey order, whose hash the header's ``masternode_set_hash``
    is."""

    header: BlockHeader
    certificate: CommitCertificate
    validators: tuple

    def active_set(self):
        """The new set as ``{pubkey: weight}``."""
        return dict(self.validators)


@dataclass(frozen=True)
class FinalityProof:
    """Proof that ``txid`` is in the committed block ``header`` (see the
    module docstring); ``path`` is the Merkle path of leaf ``index`` of a
    ``size``-leaf tree, from the leaf upwards."""

    network_id: int
    handoffs: tuple
    header: BlockHeader
    certificate: CommitCertificate
    txid: bytes
    index: int
    size: int
    path: tuple

    @property
    def height(self):
        """The height of the block the proof is for."""
        return self.header.height

    def encode(self):
        """The canonical bytes (:class:`ValueError` if a field is out of bounds)."""
        w = Writer().raw(MAGIC).u8(VERSION).u8(self.network_id)
        w.count(len(self.handoffs), MAX_HANDOFFS)
        for handoff in self.handoffs:
            _write_block(w, handoff.header, handoff.certificate)
            w.count(len(handoff.validators), MAX_SET_SIZE)
            for pubkey, weight in handoff.validators:
                w.fixed(pubkey, 32).u64(weight)
        _write_block(w, self.header, self.certificate)
        w.fixed(self.txid, 32).u32(self.index).u32(self.size)
        if len(self.path) > MAX_PATH:
            raise ValueError(f"a Merkle path of {len(self.path)} hashes is too long")
        w.u8(len(self.path))
        for sibling in self.path:
            w.fixed(sibling, 32)
        data = w.getvalue()
        if len(data) > MAX_PROOF_SIZE:
            raise ValueError(f"a proof of {len(data)} bytes exceeds {MAX_PROOF_SIZE}")
        return data

    @classmethod
    def decode(cls, data):
        """The proof in ``data``; :class:`ProofError` if it is not exactly one."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ProofError("not-a-proof", "a proof is bytes")
        if len(data) > MAX_PROOF_SIZE:
            raise ProofError("oversized", f"{len(data)} bytes, at most {MAX_PROOF_SIZE}")
        try:
            return cls._read(Reader(data))
        except TruncatedError as e:
            raise ProofError("truncated", str(e)) from None
        except LimitError as e:
            raise ProofError("over-limit", str(e)) from None
        except TrailingBytesError as e:
            raise ProofError("trailing-bytes", str(e)) from None
        except DecodeError as e:  # the Reader raises no other kind; kept for safety
            raise ProofError("truncated", str(e)) from None

    @classmethod
    def _read(cls, r):
        start = r.fixed(min(len(MAGIC), r.remaining()), "magic")
        if start != MAGIC:
            if MAGIC.startswith(start):
                raise TruncatedError("truncated: the proof ends inside its magic")
            raise ProofError("not-a-proof", "the bytes do not start with the proof magic")
        version = r.u8("version")
        if version != VERSION:
            raise ProofError("unsupported-version", f"version {version}")
        network_id = r.u8("network id")
        handoffs = []
        for _ in range(r.count(MAX_HANDOFFS, "hand-offs")):
            header, certificate = _read_block(r)
            members = [(r.fixed(32, "pubkey"), r.u64("weight"))
                       for _ in range(r.count(MAX_SET_SIZE, "set size"))]
            handoffs.append(SetHandoff(header, certificate, _checked_set(members, header)))
        header, certificate = _read_block(r)
        txid, index, size = r.fixed(32, "txid"), r.u32("index"), r.u32("size")
        path_length = r.u8("path length")
        if path_length > MAX_PATH:
            raise LimitError(f"path of {path_length} hashes exceeds the limit of {MAX_PATH}")
        path = tuple(r.fixed(32, "path hash") for _ in range(path_length))
        r.end()
        if not 0 < size <= MAX_TREE_SIZE:
            raise LimitError(f"tree size {size} outside 1..{MAX_TREE_SIZE}")
        return cls(network_id, tuple(handoffs), header, certificate, txid, index, size, path)


def _write_block(w, header, certificate):
    w.varbytes(header.encode(), MAX_HEADER_BYTES)
    w.varbytes(certificate.encode(), MAX_CERTIFICATE_BYTES)


def _read_block(r):
    raw_header = r.varbytes(MAX_HEADER_BYTES, "header")
    raw_certificate = r.varbytes(MAX_CERTIFICATE_BYTES, "certificate")
    try:
        header = BlockHeader.decode(raw_header)
    except DecodeError as e:
        raise ProofError("malformed-header", str(e)) from None
    try:
        certificate = CommitCertificate.decode(raw_certificate)
    except MessageError as e:
        raise ProofError("malformed-certificate", str(e), header.height) from None
    if certificate.round >= MAX_ROUND or len(certificate.block_hash) != 32:
        raise ProofError("malformed-certificate", "round or block hash out of range",
                         header.height)
    return header, certificate


def _checked_set(members, header):
    """``members`` if they are a canonical set: non-empty, pubkeys strictly
    ascending, every weight positive."""
    if not members:
        raise ProofError("malformed-set", "a hand-off lists no validator", header.height)
    for (a, _), (b, _) in zip(members, members[1:], strict=False):
        if a >= b:
            raise ProofError("malformed-set", "pubkeys not strictly ascending", header.height)
    if any(weight == 0 for _, weight in members):
        raise ProofError("malformed-set", "a validator of weight 0", header.height)
    return tuple(members)
