"""BFT proposals and votes, the canonical bytes they are signed over, and the
actions the round machine asks its caller to perform.

Every proposal and vote is signed over :func:`sign_bytes`:
``b"timecoin-bft/1" || u8 len(network_id) || network_id || u64 height || u32 round
|| u8 type || i32 pol_round || u8 len(block_hash) || block_hash`` (big-endian).
``pol_round`` is the proposal's valid round (-1 for none) and always -1 in votes;
a nil vote has the empty block hash :data:`NIL`. Validators are identified by
their public key bytes; signing and verifying are done by injected callables
(Ed25519 in the node), so this module knows no cryptography.
"""

import struct
from dataclasses import dataclass

#: Domain separator of every BFT signature.
DOMAIN = b"timecoin-bft/1"

#: The block hash of a nil vote.
NIL = b""

PROPOSAL = 1
PREVOTE = 2
PRECOMMIT = 3
TYPE_NAMES = {PROPOSAL: "proposal", PREVOTE: "prevote", PRECOMMIT: "precommit"}

#: Largest block hash accepted (bytes); the node uses 32-byte hashes.
MAX_HASH_LEN = 64
#: Largest validator id (public key) accepted, and largest signature.
MAX_ID_LEN = 64
MAX_SIG_LEN = 128

_HEAD = struct.Struct(">QIBi")


class MessageError(ValueError):
    """A proposal, vote, certificate or evidence is malformed."""


def sign_bytes(network_id, height, round_, msg_type, block_hash, pol_round=-1):
    """The canonical bytes a proposal or vote is signed over."""
    if not isinstance(network_id, bytes) or len(network_id) > 255:
        raise MessageError("network id must be at most 255 bytes")
    if msg_type not in TYPE_NAMES:
        raise MessageError(f"unknown message type {msg_type!r}")
    if not isinstance(block_hash, bytes) or len(block_hash) > MAX_HASH_LEN:
        raise MessageError("bad block hash")
    if msg_type != PROPOSAL and pol_round != -1:
        raise MessageError("only a proposal carries a POL round")
    if msg_type == PROPOSAL and (block_hash == NIL or not -1 <= pol_round < round_):
        raise MessageError("a proposal names a block and a POL round below its round")
    if not (0 <= height < 2**64 and 0 <= round_ < 2**31):
        raise MessageError("height or round out of range")
    return b"".join((
        DOMAIN, bytes([len(network_id)]), network_id,
        _HEAD.pack(height, round_, msg_type, pol_round),
        bytes([len(block_hash)]), block_hash,
    ))


def _check_signed(validator, signature):
    if not isinstance(validator, bytes) or not 0 < len(validator) <= MAX_ID_LEN:
        raise MessageError("bad validator id")
    if not isinstance(signature, bytes) or len(signature) > MAX_SIG_LEN:
        raise MessageError("bad signature")


@dataclass(frozen=True)
class Vote:
    """A signed prevote or precommit by ``validator`` for ``block_hash`` (NIL: nil)."""

    msg_type: int
    height: int
    round: int
    block_hash: bytes
    validator: bytes
    signature: bytes = b""

    def __post_init__(self):
        if self.msg_type not in (PREVOTE, PRECOMMIT):
            raise MessageError("a vote is a prevote or a precommit")
        _check_signed(self.validator, self.signature)

    def sign_bytes(self, network_id):
        """The bytes this vote's signature covers."""
        return sign_bytes(network_id, self.height, self.round, self.msg_type, self.block_hash)

    def encode(self):
        """Canonical encoding: the signed fields, then validator and signature."""
        return _encode(self.msg_type, self.height, self.round, -1, self.block_hash,
                       self.validator, self.signature)


@dataclass(frozen=True)
class Proposal:
    """A signed proposal of ``block_hash`` at (height, round); ``pol_round`` is the
    round of the prevote quorum that justifies re-proposing it (-1: none)."""

    height: int
    round: int
    block_hash: bytes
    pol_round: int
    validator: bytes
    signature: bytes = b""

    msg_type = PROPOSAL

    def __post_init__(self):
        _check_signed(self.validator, self.signature)
        if self.block_hash == NIL or not -1 <= self.pol_round < self.round:
            raise MessageError("a proposal names a block and a POL round below its round")

    def sign_bytes(self, network_id):
        """The bytes this proposal's signature covers."""
        return sign_bytes(network_id, self.height, self.round, PROPOSAL, self.block_hash,
                          self.pol_round)

    def encode(self):
        """Canonical encoding: the signed fields, then proposer and signature."""
        return _encode(PROPOSAL, self.height, self.round, self.pol_round, self.block_hash,
                       self.validator, self.signature)


def _encode(msg_type, height, round_, pol_round, block_hash, validator, signature):
    return b"".join((
        _HEAD.pack(height, round_, msg_type, pol_round),
        bytes([len(block_hash)]), block_hash,
        bytes([len(validator)]), validator,
        bytes([len(signature)]), signature,
    ))


def decode_message(data, offset=0):
    """Decode one :class:`Vote` or :class:`Proposal` at ``offset``; return (message, end)."""
    try:
        height, round_, msg_type, pol_round = _HEAD.unpack_from(data, offset)
        pos = offset + _HEAD.size
        fields = []
        for _ in range(3):
            size = data[pos]
            fields.append(bytes(data[pos + 1:pos + 1 + size]))
            if len(fields[-1]) != size:
                raise MessageError("truncated message")
            pos += 1 + size
    except (struct.error, IndexError) as exc:
        raise MessageError("truncated message") from exc
    block_hash, validator, signature = fields
    if msg_type == PROPOSAL:
        return Proposal(height, round_, block_hash, pol_round, validator, signature), pos
    if pol_round != -1:
        raise MessageError("a vote carries no POL round")
    return Vote(msg_type, height, round_, block_hash, validator, signature), pos


# --- actions: what the machine asks its caller to do --------------------------------


@dataclass(frozen=True)
class Broadcast:
    """Send ``message`` (a signed Proposal or Vote) to every validator."""

    message: object


@dataclass(frozen=True)
class SendCertificate:
    """Send ``certificate`` (the last committed height's) to ``validator``, who is behind."""

    validator: bytes
    certificate: object


@dataclass(frozen=True)
class BuildBlock:
    """This node proposes at (height, round): build a block, then call
    ``BftMachine.on_block_built(height, round, block_hash)``."""

    height: int
    round: int


@dataclass(frozen=True)
class ValidateBlock:
    """Check the block ``block_hash`` proposed at ``height`` (fetch it if missing), then
    call ``BftMachine.on_block_validated(height, block_hash, valid)``, now or later."""

    height: int
    block_hash: bytes


@dataclass(frozen=True)
class CommitBlock:
    """``block_hash`` is committed at ``height``; ``certificate`` proves it."""

    height: int
    block_hash: bytes
    certificate: object


@dataclass(frozen=True)
class EvidenceFound:
    """A validator signed two different blocks at one (height, round, type)."""

    evidence: object
