"""Wire messages of snapshot sync (kind ids reserved in :mod:`timecoin.p2p.messages`,
rate limited with the block messages: ``rate_limit_blocks``).

* ``get_snapshot``: no body; ask for the newest snapshot the peer serves;
* ``snapshot_offer``: its manifest (``SnapshotManifest.encode``), the
  registry after its block (``timecoin.ledger.snapshot_registry``), a finality
  proof (``FinalityProof.encode``) of the snapshot block's last txid, which
  carries the block's header, its commit certificate and the active-set
  hand-offs from the genesis, and the whole block (``Block.encode``); all
  four empty when the peer serves no snapshot;
* ``get_snapshot_chunk``: chunk ``index`` of the snapshot at ``height``;
* ``snapshot_chunk``: the chunk's bytes (``SnapshotChunk.encode``), empty
  when the peer does not hold it.

Only shapes and bounds are checked here; the fetcher checks everything else
(doc/sync.md).
"""

from dataclasses import dataclass

from timecoin.finality.block_messages import MAX_BLOCK_BYTES
from timecoin.ledger.snapshot import MAX_CHUNK_SIZE, MAX_MANIFEST_SIZE
from timecoin.ledger.snapshot_registry import MAX_REGISTRY_SIZE
from timecoin.p2p.messages import (
    GET_SNAPSHOT,
    GET_SNAPSHOT_CHUNK,
    SNAPSHOT_CHUNK,
    SNAPSHOT_OFFER,
    register_message,
)
from timecoin.proofs.finality import MAX_PROOF_SIZE


@register_message
@dataclass(frozen=True)
class GetSnapshot:
    """Ask for the newest snapshot a peer serves."""

    KIND = GET_SNAPSHOT

    def encode(self, w):
        pass

    @classmethod
    def decode(cls, r):
        return cls()


@register_message
@dataclass(frozen=True)
class SnapshotOffer:
    """A peer's newest snapshot: manifest, registry, proof of its block, the
    block (all empty: it serves none)."""

    KIND = SNAPSHOT_OFFER
    INCOMPRESSIBLE = True
    manifest: bytes = b""
    registry: bytes = b""
    proof: bytes = b""
    block: bytes = b""

    @property
    def empty(self):
        return not self.manifest

    def encode(self, w):
        w.varbytes(self.manifest, MAX_MANIFEST_SIZE).varbytes(self.registry, MAX_REGISTRY_SIZE)
        w.varbytes(self.proof, MAX_PROOF_SIZE).varbytes(self.block, MAX_BLOCK_BYTES)

    @classmethod
    def decode(cls, r):
        return cls(bytes(r.varbytes(MAX_MANIFEST_SIZE, "manifest")),
                   bytes(r.varbytes(MAX_REGISTRY_SIZE, "registry")),
                   bytes(r.varbytes(MAX_PROOF_SIZE, "proof")),
                   bytes(r.varbytes(MAX_BLOCK_BYTES, "block")))


@register_message
@dataclass(frozen=True)
class GetSnapshotChunk:
    """Ask for chunk ``index`` of the snapshot at ``height``."""

    KIND = GET_SNAPSHOT_CHUNK
    height: int
    index: int

    def encode(self, w):
        w.u64(self.height).u32(self.index)

    @classmethod
    def decode(cls, r):
        return cls(r.u64("height"), r.u32("index"))


@register_message
@dataclass(frozen=True)
class SnapshotChunkMessage:
    """Chunk ``index`` of the snapshot at ``height`` (``data`` empty: not held)."""

    KIND = SNAPSHOT_CHUNK
    INCOMPRESSIBLE = True
    height: int
    index: int
    data: bytes

    def encode(self, w):
        w.u64(self.height).u32(self.index).varbytes(self.data, MAX_CHUNK_SIZE)

    @classmethod
    def decode(cls, r):
        return cls(r.u64("height"), r.u32("index"), bytes(r.varbytes(MAX_CHUNK_SIZE, "chunk")))
