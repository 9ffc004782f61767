"""Blocks: the header the BFT round signs, and its canonical encoding.

A block checkpoints the transactions finalized since the block before it::

    "timecoin-block/2" | u8 network id | u64 height | prev_hash 32 | u64 time |
    u32 round | proposer pubkey 32 | tx_root 32 | utxo_set_hash 32 |
    masternode_set_hash 32 | u64 reward | u32 n | n x deactivated pubkey 32 |
    u32 m | m x missed pubkey 32 | last_commit_hash 32

``hash`` is the BLAKE2b-256 of that encoding; it is what the masternodes
prevote and precommit. ``tx_root`` is the Merkle root
(:mod:`timecoin.ledger.merkle`) of ``txids``: the block's finalized
transactions in the proposer's finality order, then the reward transaction's
txid last (when the block pays one). ``utxo_set_hash`` is the MuHash of the
UTXO set after the block (reward included); ``masternode_set_hash`` is the
active set after it (the set that signs the next block); ``reward`` is the new
coins it creates (fees are paid on top, see :mod:`timecoin.ledger.emission`).
``deactivated`` lists the masternodes the block takes out of the active set
on evidence of double signing, ``missed`` those it takes out for missed
service (absent from the carried commits of ``MISSED_SERVICE_BLOCKS``
consecutive blocks, :mod:`timecoin.ledger.missed`). ``last_commit_hash``
commits to the block's **last commit**: the commit certificate of the block
before it, as its proposer holds it (CometBFT's ``LastCommit``), carried in
the body; :func:`last_commit_hash` of the empty bytes (32 zero bytes) at
height 1, whose previous block is the genesis.

A :class:`Block` is the header with its ``txids`` (the body); the encoding of
a whole block (:meth:`Block.encode`) adds the txids, the reward
transaction's bytes and the last commit's bytes, for the wire and for storage.
"""

import hashlib
from dataclasses import dataclass

from timecoin.ledger.encoding import DecodeError, Reader, Writer
from timecoin.ledger.merkle import merkle_root
from timecoin.ledger.tx import KIND_BLOCK_REWARD, MAX_TX_SIZE, TxRejected, decode_tx

BLOCK_TAG = b"timecoin-block/2"
#: The most transactions one block checkpoints (a proposer includes the oldest
#: finalized ones first; the rest wait for the next block).
MAX_BLOCK_TXS = 20_000
MAX_DEACTIVATIONS = 1_000
#: The largest carried commit certificate (about 100 bytes per signer).
MAX_LAST_COMMIT = 200_000
#: ``last_commit_hash`` of a block that carries no commit (height 1).
NO_LAST_COMMIT = bytes(32)


def last_commit_hash(raw):
    """What a header's ``last_commit_hash`` is for the carried commit ``raw``
    (an encoded commit certificate): its BLAKE2b-256, 32 zero bytes if empty."""
    return hashlib.blake2b(raw, digest_size=32).digest() if raw else NO_LAST_COMMIT


class BlockError(ValueError):
    """A block is malformed or does not match what its header says."""


@dataclass(frozen=True)
class BlockHeader:
    """The fields SPEC.md names, and the hash the BFT round agrees on."""

    network_id: int
    height: int
    prev_hash: bytes
    time: int
    round: int
    proposer: bytes
    tx_root: bytes
    utxo_set_hash: bytes
    masternode_set_hash: bytes
    reward: int
    deactivated: tuple = ()
    missed: tuple = ()
    last_commit_hash: bytes = NO_LAST_COMMIT

    def encode(self):
        w = Writer().raw(BLOCK_TAG).u8(self.network_id).u64(self.height)
        w.fixed(self.prev_hash, 32).u64(self.time).u32(self.round).fixed(self.proposer, 32)
        w.fixed(self.tx_root, 32).fixed(self.utxo_set_hash, 32)
        w.fixed(self.masternode_set_hash, 32).u64(self.reward)
        w.count(len(self.deactivated), MAX_DEACTIVATIONS)
        for pubkey in self.deactivated:
            w.fixed(pubkey, 32)
        w.count(len(self.missed), MAX_DEACTIVATIONS)
        for pubkey in self.missed:
            w.fixed(pubkey, 32)
        w.fixed(self.last_commit_hash, 32)
        return w.getvalue()

    @classmethod
    def read(cls, r):
        if r.fixed(len(BLOCK_TAG), "block tag") != BLOCK_TAG:
            raise DecodeError("not a timecoin block header")
        network_id, height = r.u8("network id"), r.u64("height")
        prev_hash, time = r.fixed(32, "prev hash"), r.u64("time")
        rnd, proposer = r.u32("round"), r.fixed(32, "proposer")
        tx_root, utxo_hash = r.fixed(32, "tx root"), r.fixed(32, "utxo set hash")
        set_hash, reward = r.fixed(32, "masternode set hash"), r.u64("reward")
        deactivated = tuple(r.fixed(32, "deactivated pubkey")
                            for _ in range(r.count(MAX_DEACTIVATIONS, "deactivations")))
        missed = tuple(r.fixed(32, "missed pubkey")
                       for _ in range(r.count(MAX_DEACTIVATIONS, "missed service")))
        commit_hash = r.fixed(32, "last commit hash")
        return cls(network_id, height, prev_hash, time, rnd, proposer, tx_root, utxo_hash,
                   set_hash, reward, deactivated, missed, commit_hash)

    @classmethod
    def decode(cls, data):
        r = Reader(data)
        header = cls.read(r)
        r.end()
        return header

    @property
    def hash(self):
        return hashlib.blake2b(self.encode(), digest_size=32).digest()

    def fields(self):
        """The header as the API reports it (hex strings, integers)."""
        return {
            "height": self.height, "hash": self.hash.hex(), "prev_hash": self.prev_hash.hex(),
            "time": self.time, "round": self.round, "proposer": self.proposer.hex(),
            "tx_root": self.tx_root.hex(), "utxo_set_hash": self.utxo_set_hash.hex(),
            "masternode_set_hash": self.masternode_set_hash.hex(), "reward": self.reward,
            "deactivated": [pk.hex() for pk in self.deactivated],
            "missed": [pk.hex() for pk in self.missed],
            "last_commit_hash": self.last_commit_hash.hex(),
        }


@dataclass(frozen=True)
class Block:
    """A header, the txids it checkpoints, its reward transaction (or None)
    and its last commit (the previous block's encoded commit certificate,
    ``b""`` at height 1).

    ``txids`` are the finalized transactions only; :attr:`all_txids` appends
    the reward's, the list ``tx_root`` is the root of.
    """

    header: BlockHeader
    txids: tuple
    reward_tx: object = None
    last_commit: bytes = b""

    @property
    def hash(self):
        return self.header.hash

    @property
    def height(self):
        return self.header.height

    @property
    def all_txids(self):
        if self.reward_tx is None:
            return tuple(self.txids)
        return tuple(self.txids) + (self.reward_tx.txid,)

    def check(self):
        """Raise :class:`BlockError` if the body does not match the header."""
        if len(self.txids) > MAX_BLOCK_TXS:
            raise BlockError(f"{len(self.txids)} transactions exceed {MAX_BLOCK_TXS}")
        if len(set(self.txids)) != len(self.txids):
            raise BlockError("a transaction appears twice")
        if self.reward_tx is not None and self.reward_tx.kind != KIND_BLOCK_REWARD:
            raise BlockError("the reward transaction is not of the block_reward kind")
        if merkle_root(self.all_txids) != self.header.tx_root:
            raise BlockError("tx_root is not the Merkle root of the block's txids")
        if last_commit_hash(self.last_commit) != self.header.last_commit_hash:
            raise BlockError("last_commit_hash is not the hash of the carried commit")

    def encode(self):
        w = Writer().raw(self.header.encode()).count(len(self.txids), MAX_BLOCK_TXS)
        for txid in self.txids:
            w.fixed(txid, 32)
        w.varbytes(self.reward_tx.raw if self.reward_tx is not None else b"", MAX_TX_SIZE)
        w.varbytes(self.last_commit, MAX_LAST_COMMIT)
        return w.getvalue()

    @classmethod
    def decode(cls, data):
        """The block in ``data``; :class:`BlockError` if malformed."""
        try:
            r = Reader(data)
            header = BlockHeader.read(r)
            txids = tuple(r.fixed(32, "txid") for _ in range(r.count(MAX_BLOCK_TXS, "txids")))
            raw = r.varbytes(MAX_TX_SIZE, "reward transaction")
            last_commit = r.varbytes(MAX_LAST_COMMIT, "last commit")
            r.end()
            reward_tx = decode_tx(raw) if raw else None
        except (DecodeError, TxRejected) as e:
            raise BlockError(f"malformed block: {e}") from None
        return cls(header, txids, reward_tx, bytes(last_commit))

    def fields(self):
        """``getblock``'s answer: the header fields and ``txids`` (reward last)."""
        answer = self.header.fields()
        answer["txids"] = [t.hex() for t in self.all_txids]
        answer["reward_txid"] = self.reward_tx.txid.hex() if self.reward_tx else None
        return answer


def decode_bodies(block, bodies):
    """The decoded transactions of ``bodies`` (raw transactions that came
    with ``block``); :class:`BlockError` unless each decodes and their txids
    are ``block``'s txids, in order."""
    if len(bodies) != len(block.txids):
        raise BlockError(f"block {block.height} names {len(block.txids)} transactions, "
                         f"{len(bodies)} bodies came with it")
    txs = []
    for n, (raw, txid) in enumerate(zip(bodies, block.txids, strict=True)):
        try:
            tx = decode_tx(raw)
        except TxRejected as e:
            raise BlockError(f"body {n} of block {block.height} does not decode: {e}") from None
        if tx.txid != txid:
            raise BlockError(f"body {n} of block {block.height} is not its transaction "
                             f"{txid.hex()}")
        txs.append(tx)
    return txs
