"""Certified UTXO snapshots, sans I/O: the set at a block cut into chunks.

A snapshot is the UTXO set after block ``height`` in ascending outpoint order
(txid, then vout), cut into chunks of ``chunk_outputs`` outputs (the last one
may be shorter). Each output is written as the 64 bytes the set hash adds for
it (:func:`timecoin.ledger.utxo.utxo_element`: txid 32 | u32 vout | u64 amount
| key hash 20, little-endian), so the MuHash rebuilt from the chunks is the
node's ``utxo_set_hash`` exactly. Encodings (doc/proofs.md)::

    chunk    = "timecoin-utxo-chunk" | u8 version (1) | u8 network id |
               u64 height | block hash 32 | u32 index | u32 n | n x output 64
    manifest = "timecoin-utxo-manifest" | u8 version (1) | u8 network id |
               u64 height | block hash 32 | utxo_set_hash 32 | u64 outputs |
               u32 chunk_outputs | u32 chunks | chunks x chunk hash 32

A chunk's hash is the BLAKE2b-256 of its encoding. The manifest is not
signed: what certifies the set is the block header's ``utxo_set_hash``, which
:class:`SnapshotAssembly` compares with the MuHash of every chunk. The chunk
hashes let a node tell which peer's chunk differs from the manifest before
the whole set is there; a manifest that lies about its chunks is found by the
set hash at the end. Everything raises :class:`SnapshotError` only, with a
``reason``.
"""

import contextlib
import hashlib
from dataclasses import dataclass

from zope.interface import implementer

from timecoin.interfaces import ISnapshotAssembly
from timecoin.ledger.encoding import (
    DecodeError,
    LimitError,
    Reader,
    ReasonError,
    TrailingBytesError,
    TruncatedError,
    Writer,
)
from timecoin.ledger.muhash import MuHash
from timecoin.ledger.networks import MAX_SUPPLY
from timecoin.ledger.tx import OutPoint
from timecoin.ledger.utxo import utxo_element

CHUNK_MAGIC = b"timecoin-utxo-chunk"
MANIFEST_MAGIC = b"timecoin-utxo-manifest"
VERSION = 1
OUTPUT_SIZE = 64
#: Outputs per chunk by default (256 KiB of outputs), and at most.
CHUNK_OUTPUTS = 4096
MAX_CHUNK_OUTPUTS = 65_536
#: The most chunks a manifest lists (with the default chunk size, 268 million outputs).
MAX_CHUNKS = 65_536
_CHUNK_HEAD = len(CHUNK_MAGIC) + 2 + 8 + 32 + 4 + 4
MAX_CHUNK_SIZE = _CHUNK_HEAD + OUTPUT_SIZE * MAX_CHUNK_OUTPUTS
MAX_MANIFEST_SIZE = len(MANIFEST_MAGIC) + 2 + 8 + 32 + 32 + 8 + 4 + 4 + 32 * MAX_CHUNKS

REASONS = (
    "not-a-chunk", "not-a-manifest", "unsupported-version", "oversized", "truncated",
    "over-limit", "trailing-bytes", "bad-amount", "unsorted-outputs", "bad-manifest",
    "header-mismatch", "wrong-network", "wrong-snapshot", "chunk-index", "duplicate-chunk",
    "chunk-size", "chunk-hash-mismatch", "chunk-order", "missing-chunks",
    "set-hash-mismatch",
    # the registry sent with a snapshot (timecoin.ledger.snapshot_registry)
    "bad-registry", "registry-mismatch", "collateral-missing",
)


class SnapshotError(ReasonError):
    """A chunk or manifest does not decode or does not match; ``reason`` (one of
    :data:`REASONS`) says why, ``index`` names the chunk at fault if one is."""

    def __init__(self, reason, detail="", index=None):
        super().__init__(reason, detail, "" if index is None else f" (chunk {index})")
        self.index = index


def chunk_hash(data):
    """The hash a manifest lists for the chunk encoded as ``data``."""
    return hashlib.blake2b(bytes(data), digest_size=32).digest()


@dataclass(frozen=True)
class SnapshotChunk:
    """Chunk ``index`` of the snapshot at (``height``, ``block_hash``):
    ``outputs`` are ``(OutPoint, amount, key_hash)`` in ascending outpoint order."""

    network_id: int
    height: int
    block_hash: bytes
    index: int
    outputs: tuple

    def encode(self):
        w = Writer().raw(CHUNK_MAGIC).u8(VERSION).u8(self.network_id).u64(self.height)
        w.fixed(self.block_hash, 32).u32(self.index)
        w.count(len(self.outputs), MAX_CHUNK_OUTPUTS)
        for outpoint, amount, key_hash in self.outputs:
            w.raw(utxo_element(outpoint, amount, key_hash))
        return w.getvalue()

    @classmethod
    def decode(cls, data):
        """The chunk in ``data``; :class:`SnapshotError` unless exactly one,
        its outputs strictly ascending and every amount in 1..MAX_SUPPLY."""
        r = _open(data, CHUNK_MAGIC, MAX_CHUNK_SIZE, "not-a-chunk")
        with _reading():
            network_id, height = r.u8("network id"), r.u64("height")
            block_hash, index = r.fixed(32, "block hash"), r.u32("index")
            outputs = []
            for _ in range(r.count(MAX_CHUNK_OUTPUTS, "outputs")):
                txid, vout = r.fixed(32, "txid"), r.u32("vout")
                outputs.append((OutPoint(txid, vout), r.u64("amount"), r.fixed(20, "key hash")))
            r.end()
        for n, (outpoint, amount, _) in enumerate(outputs):
            if not 0 < amount <= MAX_SUPPLY:
                raise SnapshotError("bad-amount", f"output {outpoint} of {amount}", index)
            if n and outputs[n - 1][0] >= outpoint:
                raise SnapshotError("unsorted-outputs", f"{outpoint} out of order", index)
        return cls(network_id, height, block_hash, index, tuple(outputs))


@dataclass(frozen=True)
class SnapshotManifest:
    """What a snapshot claims: its block, set hash, size and chunk hashes."""

    network_id: int
    height: int
    block_hash: bytes
    utxo_set_hash: bytes
    output_count: int
    chunk_outputs: int
    chunk_hashes: tuple

    def encode(self):
        w = Writer().raw(MANIFEST_MAGIC).u8(VERSION).u8(self.network_id).u64(self.height)
        w.fixed(self.block_hash, 32).fixed(self.utxo_set_hash, 32).u64(self.output_count)
        w.u32(self.chunk_outputs).count(len(self.chunk_hashes), MAX_CHUNKS)
        for digest in self.chunk_hashes:
            w.fixed(digest, 32)
        return w.getvalue()

    @classmethod
    def decode(cls, data):
        """The manifest in ``data``; :class:`SnapshotError` unless exactly one
        whose chunk count fits its output count and chunk size."""
        r = _open(data, MANIFEST_MAGIC, MAX_MANIFEST_SIZE, "not-a-manifest")
        with _reading():
            network_id, height = r.u8("network id"), r.u64("height")
            block_hash, set_hash = r.fixed(32, "block hash"), r.fixed(32, "utxo set hash")
            output_count, chunk_outputs = r.u64("outputs"), r.u32("chunk outputs")
            hashes = tuple(r.fixed(32, "chunk hash")
                           for _ in range(r.count(MAX_CHUNKS, "chunks")))
            r.end()
        manifest = cls(network_id, height, block_hash, set_hash, output_count, chunk_outputs,
                       hashes)
        if not 0 < chunk_outputs <= MAX_CHUNK_OUTPUTS:
            raise SnapshotError("bad-manifest", f"{chunk_outputs} outputs per chunk")
        if len(hashes) != -(-output_count // chunk_outputs):
            raise SnapshotError("bad-manifest", f"{len(hashes)} chunks for {output_count} "
                                f"outputs of {chunk_outputs} a chunk")
        return manifest

    def expected_outputs(self, index):
        """How many outputs chunk ``index`` holds."""
        return min(self.chunk_outputs, self.output_count - index * self.chunk_outputs)

    def check_header(self, header):
        """Raise ``header-mismatch`` unless ``header`` (a ``BlockHeader``) is the
        block this manifest is of, with the same set hash."""
        if (header.network_id, header.height, header.hash, header.utxo_set_hash) != (
                self.network_id, self.height, self.block_hash, self.utxo_set_hash):
            raise SnapshotError("header-mismatch",
                                f"the manifest is not of block {header.height}'s set")


def _open(data, magic, limit, not_this):
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SnapshotError(not_this, "bytes expected")
    if len(data) > limit:
        raise SnapshotError("oversized", f"{len(data)} bytes, at most {limit}")
    start = bytes(data[:len(magic)])
    if start != magic:
        if magic.startswith(start):
            raise SnapshotError("truncated", "the bytes end inside the magic")
        raise SnapshotError(not_this, "the bytes do not start with its magic")
    r = Reader(data)
    r.fixed(len(magic))
    with _reading():
        version = r.u8("version")
    if version != VERSION:
        raise SnapshotError("unsupported-version", f"version {version}")
    return r


@contextlib.contextmanager
def _reading():
    """Turns the Reader's errors into :class:`SnapshotError` reasons."""
    try:
        yield
    except TruncatedError as e:
        raise SnapshotError("truncated", str(e)) from None
    except LimitError as e:
        raise SnapshotError("over-limit", str(e)) from None
    except TrailingBytesError as e:
        raise SnapshotError("trailing-bytes", str(e)) from None
    except DecodeError as e:  # the Reader raises no other kind; kept for safety
        raise SnapshotError("truncated", str(e)) from None


def cut_snapshot(network_id, height, block_hash, outputs, chunk_outputs=CHUNK_OUTPUTS):
    """The manifest and the encoded chunks of ``outputs``, ``(OutPoint, amount,
    key_hash)`` in ascending outpoint order (:class:`ValueError` if not)."""
    if not 0 < chunk_outputs <= MAX_CHUNK_OUTPUTS:
        raise ValueError(f"{chunk_outputs} outputs per chunk")
    muhash, chunks, current, previous, count = MuHash(), [], [], None, 0
    for outpoint, amount, key_hash in outputs:
        if previous is not None and outpoint <= previous:
            raise ValueError(f"outputs are not in ascending order at {outpoint}")
        previous = outpoint
        muhash.add(utxo_element(outpoint, amount, key_hash))
        current.append((outpoint, amount, key_hash))
        count += 1
        if len(current) == chunk_outputs:
            chunks.append(SnapshotChunk(network_id, height, block_hash, len(chunks),
                                        tuple(current)).encode())
            current = []
    if current:
        chunks.append(SnapshotChunk(network_id, height, block_hash, len(chunks),
                                    tuple(current)).encode())
    manifest = SnapshotManifest(network_id, height, block_hash, muhash.digest(), count,
                                chunk_outputs, tuple(chunk_hash(c) for c in chunks))
    return manifest, chunks


@implementer(ISnapshotAssembly)
class SnapshotAssembly:
    """Rebuilds a snapshot from chunks arriving in any order, from any peers.

    :meth:`add` refuses a chunk that is not the manifest's (so its sender can
    be banned and the chunk fetched elsewhere) and returns its outputs;
    :meth:`finish` checks the whole set's MuHash against the manifest's
    ``utxo_set_hash`` (the header's, when a header was given).
    """

    def __init__(self, manifest, header=None):
        if header is not None:
            manifest.check_header(header)
        self.manifest = manifest
        self._muhashes = {}
        self._bounds = {}  # index -> (first outpoint, last outpoint)
        self.muhash = None

    def missing(self):
        """The indexes of the chunks not added yet."""
        return [i for i in range(len(self.manifest.chunk_hashes)) if i not in self._muhashes]

    def add(self, index, data):
        """Check chunk ``index`` (its bytes) and keep its share of the set hash;
        return its outputs. Nothing is kept if it is refused."""
        m = self.manifest
        if not 0 <= index < len(m.chunk_hashes):
            raise SnapshotError("chunk-index", f"the manifest has {len(m.chunk_hashes)}", index)
        if index in self._muhashes:
            raise SnapshotError("duplicate-chunk", "added already", index)
        if chunk_hash(data) != m.chunk_hashes[index]:
            raise SnapshotError("chunk-hash-mismatch", "not the manifest's chunk", index)
        chunk = SnapshotChunk.decode(data)
        if chunk.network_id != m.network_id:
            raise SnapshotError("wrong-network", f"a chunk of network {chunk.network_id}", index)
        if (chunk.height, chunk.block_hash, chunk.index) != (m.height, m.block_hash, index):
            raise SnapshotError("wrong-snapshot", "a chunk of another block or place", index)
        if len(chunk.outputs) != m.expected_outputs(index):
            raise SnapshotError("chunk-size", f"{len(chunk.outputs)} outputs, "
                                f"{m.expected_outputs(index)} expected", index)
        muhash = MuHash()
        for outpoint, amount, key_hash in chunk.outputs:
            muhash.add(utxo_element(outpoint, amount, key_hash))
        self._muhashes[index] = muhash
        self._bounds[index] = (chunk.outputs[0][0], chunk.outputs[-1][0])
        return chunk.outputs

    def finish(self):
        """The set hash of every chunk; :class:`SnapshotError` if chunks are
        missing, out of order across chunks, or the hash is not the manifest's."""
        missing = self.missing()
        if missing:
            raise SnapshotError("missing-chunks", f"{len(missing)} chunks, first {missing[0]}")
        for index in range(1, len(self._bounds)):
            if self._bounds[index][0] <= self._bounds[index - 1][1]:
                raise SnapshotError("chunk-order", "its first output is not above the "
                                    "previous chunk's last", index)
        total = MuHash()
        for index in range(len(self._muhashes)):
            total.combine(self._muhashes[index])
        digest = total.digest()
        if digest != self.manifest.utxo_set_hash:
            raise SnapshotError("set-hash-mismatch", "the chunks' MuHash is not the set hash")
        #: The whole set's MuHash (what the node's UTXO tables store), once finished.
        self.muhash = total
        return digest
