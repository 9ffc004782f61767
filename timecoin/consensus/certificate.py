"""Commit certificates and equivocation evidence: canonical encodings and
standalone, pure verification (light clients and block sync reuse them).

A **commit certificate** proves that more than 2/3 of a validator set's stake
precommitted ``block_hash`` at (height, round): it carries the precommit
signatures, one per distinct signer, sorted by signer id.

**Evidence** is two signed messages of one validator, of the same type at the same
(height, round), for different blocks (a nil vote counts as a block here, as in
CometBFT: voting nil and a block in one round is also double signing).

``verify`` is a callable ``verify(validator_id, message_bytes, signature) -> bool``.
"""

import struct
from dataclasses import dataclass

from timecoin.consensus.bft_messages import (
    NIL,
    PRECOMMIT,
    MessageError,
    Proposal,
    Vote,
    decode_message,
    sign_bytes,
)

_CERT_HEAD = struct.Struct(">QIB")


class CertificateError(ValueError):
    """A commit certificate or a piece of evidence does not verify; ``reason`` says why."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class CommitCertificate:
    """The precommits that committed ``block_hash`` at (height, round):
    ``signatures`` is a tuple of (validator id, signature) sorted by id."""

    height: int
    round: int
    block_hash: bytes
    signatures: tuple

    @classmethod
    def from_votes(cls, votes):
        """A certificate from precommit :class:`Vote` objects for one block."""
        votes = list(votes)
        first = votes[0]
        for vote in votes:
            if (vote.msg_type, vote.height, vote.round, vote.block_hash) != (
                    PRECOMMIT, first.height, first.round, first.block_hash):
                raise MessageError("a certificate holds precommits for one block and round")
        signatures = tuple(sorted({v.validator: v.signature for v in votes}.items()))
        return cls(first.height, first.round, first.block_hash, signatures)

    def sign_bytes(self, network_id):
        """The bytes every signature in this certificate covers."""
        return sign_bytes(network_id, self.height, self.round, PRECOMMIT, self.block_hash)

    def encode(self):
        """u64 height, u32 round, u8 hash len, hash, u16 count, then (u8 len, id,
        u8 len, signature) per signer in id order."""
        parts = [struct.pack(">QI", self.height, self.round),
                 bytes([len(self.block_hash)]), self.block_hash,
                 struct.pack(">H", len(self.signatures))]
        for validator, signature in self.signatures:
            parts += [bytes([len(validator)]), validator, bytes([len(signature)]), signature]
        return b"".join(parts)

    @classmethod
    def decode(cls, data):
        """Inverse of :meth:`encode`; raises :class:`MessageError` on malformed input."""
        try:
            height, round_ = struct.unpack_from(">QI", data, 0)
            pos = 12
            block_hash, pos = _take(data, pos)
            (count,) = struct.unpack_from(">H", data, pos)
            pos += 2
            signatures = []
            for _ in range(count):
                validator, pos = _take(data, pos)
                signature, pos = _take(data, pos)
                signatures.append((validator, signature))
        except (struct.error, IndexError) as exc:
            raise MessageError("truncated certificate") from exc
        if pos != len(data):
            raise MessageError("trailing bytes after certificate")
        return cls(height, round_, block_hash, tuple(signatures))


def _take(data, pos):
    size = data[pos]
    value = bytes(data[pos + 1:pos + 1 + size])
    if len(value) != size:
        raise IndexError("truncated")
    return value, pos + 1 + size


def verify_certificate(certificate, validators, network_id, verify, height=None,
                       block_hash=None):
    """Check ``certificate`` against the :class:`~timecoin.consensus.proposer.ValidatorSet`
    that signs its height; raise :class:`CertificateError` if it does not prove a commit.

    ``height`` and ``block_hash``, when given, must match. Signers must be distinct,
    sorted, in the set, with valid signatures, and hold more than 2/3 of its stake.
    """
    if height is not None and certificate.height != height:
        raise CertificateError("wrong-height")
    if block_hash is not None and certificate.block_hash != block_hash:
        raise CertificateError("wrong-hash")
    if certificate.block_hash == NIL:
        raise CertificateError("nil-block")
    ids = [v for v, _ in certificate.signatures]
    if len(set(ids)) != len(ids):
        raise CertificateError("duplicate-signer")
    if ids != sorted(ids):
        raise CertificateError("unsorted-signers")
    message = certificate.sign_bytes(network_id)
    stake = 0
    for validator, signature in certificate.signatures:
        weight = validators.stake(validator)
        if not weight:
            raise CertificateError("unknown-signer")
        if not verify(validator, message, signature):
            raise CertificateError("bad-signature")
        stake += weight
    if not validators.is_quorum(stake):
        raise CertificateError("insufficient-stake")
    return True


@dataclass(frozen=True)
class Evidence:
    """Two conflicting signed messages (two :class:`Vote` or two :class:`Proposal`)
    of one validator; ``first`` sorts before ``second`` by canonical encoding."""

    first: object
    second: object

    @classmethod
    def of(cls, a, b):
        """Evidence from two conflicting messages in either order (checked for shape)."""
        first, second = sorted((a, b), key=lambda m: m.encode())
        evidence = cls(first, second)
        evidence.check_shape()
        return evidence

    @property
    def validator(self):
        """The offender's id."""
        return self.first.validator

    @property
    def height(self):
        """The height both messages are at."""
        return self.first.height

    def check_shape(self):
        """Raise :class:`CertificateError` unless the pair conflicts (signatures unchecked)."""
        a, b = self.first, self.second
        if type(a) is not type(b) or not isinstance(a, (Vote, Proposal)):
            raise CertificateError("not-a-pair")
        if (a.msg_type, a.height, a.round, a.validator) != (
                b.msg_type, b.height, b.round, b.validator):
            raise CertificateError("not-same-slot")
        if a.block_hash == b.block_hash:
            raise CertificateError("same-block")
        if a.encode() >= b.encode():
            raise CertificateError("not-canonical-order")

    def encode(self):
        """The two messages' canonical encodings, first then second."""
        return self.first.encode() + self.second.encode()

    @classmethod
    def decode(cls, data):
        """Inverse of :meth:`encode`."""
        first, pos = decode_message(data, 0)
        second, end = decode_message(data, pos)
        if end != len(data):
            raise MessageError("trailing bytes after evidence")
        return cls(first, second)


def verify_evidence(evidence, validators, network_id, verify):
    """Check ``evidence`` standalone: a conflicting pair, by a validator of the set
    of its height, both signatures valid. Raise :class:`CertificateError` if not."""
    evidence.check_shape()
    if evidence.validator not in validators:
        raise CertificateError("unknown-signer")
    for message in (evidence.first, evidence.second):
        if not verify(message.validator, message.sign_bytes(network_id), message.signature):
            raise CertificateError("bad-signature")
    return True
