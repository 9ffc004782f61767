"""Transactions: the data model, the canonical encoding, signing and stateless checks.

Layout (all integers little-endian, every count bounded)::

    version u8 | kind u8 | network_id u8
    n_inputs u32  (<= MAX_INPUTS)  then per input:
        prev_txid 32 | vout u32 | pubkey 32 | signature 64
    n_outputs u32 (<= MAX_OUTPUTS) then per output:
        amount u64 | key_hash 20
    payload u32-length-prefixed bytes (<= MAX_PAYLOAD; kind specific)

The whole encoding is at most ``MAX_TX_SIZE`` bytes. The txid is the BLAKE2b-256
hash of it; Ed25519 signatures as libsodium verifies them are not malleable,
so the txid of a valid transaction is fixed. Every input signs the same
message: the hash of the encoding with all signature fields zeroed, which
includes the network id and the kind.

A ``masternode_register`` transaction (:mod:`timecoin.ledger.registration`)
carries a masternode signature at the end of its payload; it is zeroed in the
sighash too, and the masternode signs the same message as the inputs.
"""

import hashlib
import struct
from typing import NamedTuple

import nacl.exceptions
from nacl.bindings import crypto_sign_open

from timecoin.ledger.encoding import DecodeError, Reader, Writer
from timecoin.ledger.keys import ADDRESS_HASH_SIZE, PUBKEY_SIZE, SIGNATURE_SIZE, pubkey_hash
from timecoin.ledger.networks import MAX_SUPPLY
from timecoin.ledger.registration import PAYLOAD_SIZE, SIGNATURE_AT_END, decode_payload

TX_VERSION = 1

#: A spend of earlier outputs.
KIND_TRANSFER = 0
#: The outputs a network starts with; valid only inside its genesis.
KIND_GENESIS = 1
#: A masternode registration by collateral (see :mod:`timecoin.ledger.registration`).
KIND_MASTERNODE_REGISTER = 2
#: A block's reward: no inputs; pays the block reward and its fees to the
#: active masternodes (valid only inside its block, see :mod:`timecoin.ledger.emission`).
KIND_BLOCK_REWARD = 3
KIND_NAMES = {KIND_TRANSFER: "transfer", KIND_GENESIS: "genesis",
              KIND_MASTERNODE_REGISTER: "masternode_register", KIND_BLOCK_REWARD: "block_reward"}
#: What :func:`first_bad_signature` returns when the masternode signature of a
#: registration fails (past any input index, so it fits the verifier's words).
MASTERNODE_SIGNATURE = 500

MAX_INPUTS = 500
MAX_OUTPUTS = 500
MAX_PAYLOAD = 1024
MAX_TX_SIZE = 100_000
#: Minimum fee, in units per byte of encoding, for relay and the mempool.
MIN_FEE_RATE = 1

ZERO_SIG = bytes(SIGNATURE_SIZE)
SIGHASH_TAG = b"timecoin-sighash"

_HEAD = struct.Struct("<BBBI")
_INPUT = struct.Struct(f"<32sI{PUBKEY_SIZE}s{SIGNATURE_SIZE}s")
_OUTPUT = struct.Struct(f"<Q{ADDRESS_HASH_SIZE}s")
_U32 = struct.Struct("<I")
_PREVOUT = struct.Struct(f"<32sI{PUBKEY_SIZE + SIGNATURE_SIZE}x")
#: Offset of the signature inside an encoded input.
_SIG_AT = 32 + 4 + PUBKEY_SIZE
_BAD_SIGNATURE = (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError)


#: Reasons that no later state can cure: the txid is remembered as rejected.
PERMANENT_REJECTIONS = frozenset({
    "bad-signature", "pubkey-mismatch", "wrong-network", "duplicate-input", "zero-amount",
    "amount-too-large", "outputs-overflow", "unsupported-version", "unsupported-kind",
    "payload-not-allowed", "no-inputs", "no-outputs", "input-spent", "outputs-exceed-inputs",
    "bad-registration", "unknown-tier", "collateral-out-of-range", "collateral-amount",
    "collateral-owner",
})


class TxRejected(Exception):
    """A transaction was refused; ``code`` is a stable reason, ``message`` the detail."""

    def __init__(self, code, message=None):
        super().__init__(code, message or code)
        self.code = code
        self.message = message or code

    def __str__(self):
        return f"{self.code}: {self.message}" if self.message != self.code else self.code


class OutPoint(NamedTuple):
    """A reference to output ``vout`` of transaction ``txid`` (hashed and compared
    as a plain tuple: it keys every UTXO map)."""

    txid: bytes
    vout: int

    def __str__(self):
        return f"{self.txid.hex()}:{self.vout}"


class TxIn(NamedTuple):
    """An input: the outpoint it spends, the spender's public key and signature."""

    prevout: OutPoint
    pubkey: bytes
    signature: bytes = ZERO_SIG


class TxOut(NamedTuple):
    """An output: an amount in units locked to a public-key hash."""

    amount: int
    key_hash: bytes


class Transaction:
    """A decoded transaction; ``raw``, ``txid`` and ``size`` are computed once.

    Immutable by convention (a plain class with slots: building one is on the
    validation hot path). Equality compares the fields, not the cached bytes.
    """

    __slots__ = ("inputs", "outputs", "network_id", "kind", "payload", "version", "raw",
                 "txid", "_sighash")

    def __init__(self, inputs, outputs, network_id, kind=KIND_TRANSFER, payload=b"",
                 version=TX_VERSION, raw=b"", txid=b""):
        self.inputs = inputs
        self.outputs = outputs
        self.network_id = network_id
        self.kind = kind
        self.payload = payload
        self.version = version
        self._sighash = None
        self.raw = raw or _encode(self, sigs=True)
        self.txid = txid or hashlib.blake2b(self.raw, digest_size=32).digest()

    def _fields(self):
        return (self.inputs, self.outputs, self.network_id, self.kind, self.payload,
                self.version)

    def __eq__(self, other):
        if not isinstance(other, Transaction):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self):
        return hash(self._fields())

    def __repr__(self):
        return (f"Transaction(txid={self.txid.hex()}, inputs={len(self.inputs)}, "
                f"outputs={len(self.outputs)}, network_id={self.network_id}, "
                f"kind={self.kind})")

    @property
    def size(self):
        return len(self.raw)

    @property
    def output_total(self):
        return sum(o.amount for o in self.outputs)

    def outpoints(self):
        return [OutPoint(self.txid, i) for i in range(len(self.outputs))]

    def sighash(self):
        """The message every input signs (computed once, from ``raw``)."""
        if self._sighash is None:
            unsigned = _unsigned(self.raw, len(self.inputs))
            if self.kind == KIND_MASTERNODE_REGISTER and len(self.payload) == PAYLOAD_SIZE:
                unsigned = unsigned[:-SIGNATURE_AT_END] + ZERO_SIG
            self._sighash = hashlib.blake2b(SIGHASH_TAG + unsigned, digest_size=32).digest()
        return self._sighash

    def hex(self):
        return self.raw.hex()


def _encode(tx, sigs):
    w = Writer().u8(tx.version).u8(tx.kind).u8(tx.network_id)
    w.count(len(tx.inputs), MAX_INPUTS)
    for i in tx.inputs:
        w.fixed(i.prevout.txid, 32).u32(i.prevout.vout).fixed(i.pubkey, PUBKEY_SIZE)
        w.fixed(i.signature if sigs else ZERO_SIG, SIGNATURE_SIZE)
    w.count(len(tx.outputs), MAX_OUTPUTS)
    for o in tx.outputs:
        w.u64(o.amount).fixed(o.key_hash, ADDRESS_HASH_SIZE)
    w.varbytes(tx.payload, MAX_PAYLOAD)
    return w.getvalue()


def _unsigned(raw, n_inputs):
    """``raw`` with every signature zeroed: the canonical encoding is fixed-width,
    so each signature sits at a known offset."""
    parts, pos = [raw[:7]], 7
    for _ in range(n_inputs):
        parts.append(raw[pos:pos + _SIG_AT])
        parts.append(ZERO_SIG)
        pos += _INPUT.size
    parts.append(raw[pos:])
    return b"".join(parts)


def _decode_fast(data):
    """The transaction in well-formed ``data``, or None (the checked decoder
    then says what is wrong)."""
    size = len(data)
    if size < _HEAD.size:
        return None
    version, kind, network_id, n_in = _HEAD.unpack_from(data)
    pos = _HEAD.size + n_in * _INPUT.size
    if n_in > MAX_INPUTS or pos + 4 > size:
        return None
    inputs = tuple(TxIn(OutPoint(t, v), pk, sig)
                   for t, v, pk, sig in _INPUT.iter_unpack(data[_HEAD.size:pos]))
    (n_out,) = _U32.unpack_from(data, pos)
    start, pos = pos + 4, pos + 4 + n_out * _OUTPUT.size
    if n_out > MAX_OUTPUTS or pos + 4 > size:
        return None
    outputs = tuple(map(TxOut._make, _OUTPUT.iter_unpack(data[start:pos])))
    (n_payload,) = _U32.unpack_from(data, pos)
    if n_payload > MAX_PAYLOAD or pos + 4 + n_payload != size:
        return None
    return Transaction(inputs, outputs, network_id, kind, data[pos + 4:], version, raw=data)


def decode_tx(data):
    """Decode ``data`` as exactly one transaction, or raise :class:`TxRejected`."""
    if len(data) > MAX_TX_SIZE:
        raise TxRejected("too-large", f"{len(data)} bytes exceeds {MAX_TX_SIZE}")
    if type(data) is bytes:
        tx = _decode_fast(data)
        if tx is not None:
            return tx
    try:
        r = Reader(data)
        version, kind, network_id = r.u8(), r.u8(), r.u8()
        inputs = []
        for _ in range(r.count(MAX_INPUTS, "input count")):
            prevout = OutPoint(r.fixed(32, "prev txid"), r.u32("vout"))
            inputs.append(TxIn(prevout, r.fixed(PUBKEY_SIZE, "pubkey"),
                               r.fixed(SIGNATURE_SIZE, "signature")))
        outputs = []
        for _ in range(r.count(MAX_OUTPUTS, "output count")):
            outputs.append(TxOut(r.u64("amount"), r.fixed(ADDRESS_HASH_SIZE, "key hash")))
        payload = r.varbytes(MAX_PAYLOAD, "payload")
        r.end()
    except DecodeError as e:
        raise TxRejected("malformed", str(e)) from None
    data = bytes(data)
    return Transaction(tuple(inputs), tuple(outputs), network_id, kind, payload, version,
                       raw=data)


def ledger_changes(raw):
    """``(txid, prevouts, outputs)`` of the encoding of a transaction decoded
    before (a journal entry's): ``(txid, vout)`` and ``(amount, key_hash)`` tuples,
    what the UTXO tables need, without building the transaction."""
    (n_in,) = _U32.unpack_from(raw, 3)
    pos = _HEAD.size + n_in * _INPUT.size
    prevouts = list(_PREVOUT.iter_unpack(raw[_HEAD.size:pos]))
    (n_out,) = _U32.unpack_from(raw, pos)
    outputs = list(_OUTPUT.iter_unpack(raw[pos + 4:pos + 4 + n_out * _OUTPUT.size]))
    return hashlib.blake2b(raw, digest_size=32).digest(), prevouts, outputs


def decode_hex(text):
    """Decode a hex string (as RPC receives it) into a transaction."""
    if not isinstance(text, str):
        raise TxRejected("malformed", "transaction hex must be a string")
    if len(text) > 2 * MAX_TX_SIZE:
        raise TxRejected("too-large", f"{len(text) // 2} bytes exceeds {MAX_TX_SIZE}")
    try:
        data = bytes.fromhex(text)
    except ValueError:
        raise TxRejected("malformed", "not hexadecimal") from None
    return decode_tx(data)


def check_stateless(tx, network_id):
    """Checks that need no UTXO set: structure, amounts and signatures.

    The pubkey-to-address match needs the spent outputs and is checked with
    the state (:meth:`timecoin.ledger.utxo.UtxoSet.check_inputs`).
    """
    check_structure(tx, network_id)
    check_signatures(tx)


def check_structure(tx, network_id):
    """The stateless checks but the signatures: network, kind, inputs, amounts."""
    if tx.network_id != network_id:
        raise TxRejected("wrong-network", f"transaction is for network {tx.network_id}")
    if tx.version != TX_VERSION:
        raise TxRejected("unsupported-version", f"version {tx.version}")
    if tx.kind not in (KIND_TRANSFER, KIND_MASTERNODE_REGISTER):
        name = KIND_NAMES.get(tx.kind, str(tx.kind))
        raise TxRejected("unsupported-kind", f"kind {name} is not accepted on this network")
    if tx.kind == KIND_TRANSFER and tx.payload:
        raise TxRejected("payload-not-allowed", "a transfer carries no payload")
    if not tx.inputs:
        raise TxRejected("no-inputs")
    if not tx.outputs:
        raise TxRejected("no-outputs")
    seen = set()
    for i in tx.inputs:
        if i.prevout in seen:
            raise TxRejected("duplicate-input", f"{i.prevout} is spent twice")
        seen.add(i.prevout)
    total = 0
    for n, o in enumerate(tx.outputs):
        if o.amount <= 0:
            raise TxRejected("zero-amount", f"output {n} has no value")
        if o.amount > MAX_SUPPLY:
            raise TxRejected("amount-too-large", f"output {n} exceeds the supply")
        total += o.amount
    if total > MAX_SUPPLY:
        raise TxRejected("outputs-overflow", "outputs add up to more than the supply")
    if tx.kind == KIND_MASTERNODE_REGISTER:
        registration_of(tx)


def registration_of(tx):
    """The checked :class:`~timecoin.ledger.registration.Registration` of a
    registration transaction, or ``TxRejected``: its payload's size, its tier,
    and its collateral (one of its own outputs, of exactly the tier's amount,
    locked to the key of input 0, which signs for it)."""
    reg = decode_payload(tx.payload)
    if reg is None:
        raise TxRejected("bad-registration",
                         f"payload is {len(tx.payload)} bytes, a registration's is {PAYLOAD_SIZE}")
    tier = reg.tier
    if tier is None:
        raise TxRejected("unknown-tier", f"tier code {reg.tier_code}")
    if reg.collateral_vout >= len(tx.outputs):
        raise TxRejected("collateral-out-of-range",
                         f"collateral output {reg.collateral_vout} does not exist")
    collateral = tx.outputs[reg.collateral_vout]
    if collateral.amount != tier.collateral:
        raise TxRejected("collateral-amount",
                         f"collateral is {collateral.amount} units, {tier.name} needs "
                         f"exactly {tier.collateral}")
    if collateral.key_hash != pubkey_hash(tx.inputs[0].pubkey):
        raise TxRejected("collateral-owner",
                         "the collateral must pay the key that signs input 0")
    return reg


def check_signatures(tx):
    """Raise ``TxRejected("bad-signature")`` unless every input's signature verifies."""
    n = first_bad_signature(tx)
    if n is not None:
        raise bad_signature(n)


def bad_signature(n):
    """The rejection of a transaction whose input ``n`` (or, for
    ``MASTERNODE_SIGNATURE``, whose masternode signature) does not verify."""
    if n == MASTERNODE_SIGNATURE:
        return TxRejected("bad-signature", "the masternode signature does not verify")
    return TxRejected("bad-signature", f"input {n} signature does not verify")


def first_bad_signature(tx):
    """The index of the first input whose signature does not verify, then
    ``MASTERNODE_SIGNATURE`` if a registration's masternode signature does
    not; None if all verify."""
    message = tx.sighash()
    for n, i in enumerate(tx.inputs):
        try:
            crypto_sign_open(i.signature + message, i.pubkey)
        except _BAD_SIGNATURE:
            return n
    if tx.kind == KIND_MASTERNODE_REGISTER:
        reg = decode_payload(tx.payload)
        if reg is None:
            return MASTERNODE_SIGNATURE
        try:
            crypto_sign_open(reg.masternode_signature + message, reg.masternode_pubkey)
        except _BAD_SIGNATURE:
            return MASTERNODE_SIGNATURE
    return None


def sign_transfer(key_for_input, prevouts, outputs, network_id, kind=KIND_TRANSFER,
                  payload=b""):
    """Build and sign a transaction.

    ``key_for_input`` maps each prevout to the :class:`~timecoin.ledger.keys.PrivateKey`
    that owns it (or is one key for all). ``outputs`` are ``(amount, key_hash)``.
    """
    def key(op):
        return key_for_input(op) if callable(key_for_input) else key_for_input

    unsigned = Transaction(
        tuple(TxIn(op, key(op).pubkey) for op in prevouts),
        tuple(TxOut(a, h) for a, h in outputs), network_id, kind, payload,
    )
    message = unsigned.sighash()
    return Transaction(
        tuple(TxIn(op, key(op).pubkey, key(op).sign(message)) for op in prevouts),
        unsigned.outputs, network_id, kind, payload,
    )


def sign_registration(key_for_input, prevouts, outputs, network_id, registration,
                      masternode_key):
    """Build and sign a registration: the inputs by their keys, the payload
    (``registration``, a :class:`~timecoin.ledger.registration.Registration`
    whose signature field is ignored) by ``masternode_key``."""
    payload = registration._replace(masternode_pubkey=masternode_key.pubkey,
                                    masternode_signature=ZERO_SIG).encode()
    unsigned = sign_transfer(key_for_input, prevouts, outputs, network_id,
                             KIND_MASTERNODE_REGISTER, payload)
    signature = masternode_key.sign(unsigned.sighash())
    payload = payload[:-SIGNATURE_AT_END] + signature
    return Transaction(unsigned.inputs, unsigned.outputs, network_id, KIND_MASTERNODE_REGISTER,
                       payload)


def pubkey_matches(txin, key_hash):
    return pubkey_hash(txin.pubkey) == key_hash
