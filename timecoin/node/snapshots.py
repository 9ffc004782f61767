"""The node's UTXO snapshots: cut every ``[sync] snapshot_interval`` blocks,
served to joining peers, and a fetched one installed (doc/sync.md).

:class:`NodeSnapshots` provides ``ISnapshotSource`` and ``ISnapshotInstaller``
over the node's storage (``ISnapshotStorage``), chain (``IBlockConsensus``)
and proofs (``IFinalityProofs``). :meth:`NodeSnapshots.block_committed` is
called once a block is durable; at a multiple of the interval it queues the
cut on the storage writer thread (its own transaction, after the block's;
never on the reactor), with the registry's rows after the block.
"""

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from timecoin.consensus.certificate import CommitCertificate
from timecoin.interfaces import ISnapshotInstaller, ISnapshotSource
from timecoin.ledger.block import Block, BlockHeader
from timecoin.ledger.registry import MasternodeRegistry, masternode_set_hash
from timecoin.ledger.snapshot import CHUNK_OUTPUTS, OUTPUT_SIZE, SnapshotManifest
from timecoin.ledger.snapshot_registry import encode_registry
from timecoin.proofs.source import ProofUnavailable
from timecoin.proofs.verify import genesis_set
from timecoin.storage.snapshot_tables import InstalledSnapshot

#: Bytes of a chunk message besides its outputs (chunk head, kind, lengths).
CHUNK_OVERHEAD = 512


def chunk_outputs_for(max_message_size):
    """Outputs per chunk so that a chunk message fits ``max_message_size``."""
    return max(1, min(CHUNK_OUTPUTS, (max_message_size - CHUNK_OVERHEAD) // OUTPUT_SIZE))


def installed_snapshot(fetched, genesis, committed_at):
    """The :class:`InstalledSnapshot` of a fetched one: its block row, and the
    hand-offs of its proof (with the snapshot block's own if it changed the set)."""
    offer = fetched.offer
    block, certificate = offer.block, offer.proof.certificate
    handoffs = [(h.header.height, h.active_set()) for h in offer.proof.handoffs]
    rows = [(h.header.height, h.header.hash, h.header.encode(), h.certificate.encode())
            for h in offer.proof.handoffs]
    before = handoffs[-1][1] if handoffs else genesis_set(genesis)
    if masternode_set_hash(before) != block.header.masternode_set_hash:
        after = MasternodeRegistry.from_rows(offer.registry_rows).active_set()
        handoffs.append((block.height, after))
    block_row = (block.height, block.hash, block.header.encode(), block.encode(),
                 certificate.encode(), committed_at)
    return InstalledSnapshot(offer.manifest, fetched.outputs, fetched.muhash, block_row,
                             list(offer.registry_rows), handoffs, rows)


@implementer(ISnapshotSource, ISnapshotInstaller)
class NodeSnapshots:
    """Cutting, serving and installing snapshots (see the module docstring)."""

    log = Logger()

    def __init__(self, clock, genesis, storage, chain, proofs, interval, max_message_size):
        self._clock = clock
        self._genesis = genesis
        self._storage = storage
        self._chain = chain
        self._proofs = proofs
        #: Blocks between snapshots (0: none is cut).
        self.interval = interval
        self.chunk_outputs = chunk_outputs_for(max_message_size)
        self.cut = 0

    def block_committed(self, block, registry_rows):
        """``block`` is durable, ``registry_rows`` the registry after it: at a
        multiple of the interval, cut the snapshot. Fires when it is stored
        (at once otherwise)."""
        if not self.interval or block.height % self.interval:
            return defer.succeed(None)
        d = self._storage.save_snapshot(self._genesis.network.network_id, block.height,
                                        block.hash, self.chunk_outputs,
                                        encode_registry(registry_rows),
                                        expected_set_hash=block.header.utxo_set_hash)

        def saved(manifest):
            self.cut += 1
            self.log.info("snapshot of the set after block {height} stored ({outputs} "
                          "outputs, {chunks} chunks)", height=manifest.height,
                          outputs=manifest.output_count, chunks=len(manifest.chunk_hashes))
            return manifest
        d.addCallback(saved)
        d.addErrback(lambda f: self.log.failure("cutting the snapshot at {height}", f,
                                                height=block.height))
        return d

    @defer.inlineCallbacks
    def load_base(self):
        """At start, before the stored blocks are replayed: if the database
        was installed from a snapshot, start the chain and the proofs at its
        block. Fires with the base height (0: none)."""
        found = yield self._storage.load_snapshot_base()
        if found is None:
            return 0
        base, rows = found
        sets = dict((yield self._storage.load_block_sets()))
        stored = (yield self._storage.load_blocks(base - 1))[0]
        if stored[0] != base:
            raise ValueError(f"the snapshot block {base} is not stored")
        block, certificate = Block.decode(stored[1]), CommitCertificate.decode(stored[2])
        handoffs = [(BlockHeader.decode(header), CommitCertificate.decode(cert), sets[height])
                    for height, header, cert in rows if height in sets]
        below = [after for header, _, after in handoffs if header.height < base]
        self._chain.start_at(block, certificate, below[-1] if below else None)
        self._proofs.start_at(block, handoffs)
        self.log.info("the chain starts at the snapshot of block {height}: blocks below it "
                      "are not held", height=base)
        return base

    # -- ISnapshotSource ---------------------------------------------------------

    def newest_offer(self):
        d = self._storage.snapshot_manifest()
        d.addCallback(self._offer)
        return d

    def _offer(self, stored):
        if stored is None:
            return None
        manifest_bytes, registry_bytes = stored
        height = SnapshotManifest.decode(manifest_bytes).height
        block, certificate = self._chain.block_at(height), self._chain.certificate_at(height)
        if block is None or certificate is None or not block.all_txids:
            return None
        try:
            proof = self._proofs.proof(block, certificate, block.all_txids[-1])
        except ProofUnavailable as e:
            self.log.warn("snapshot at {height} not served: {error}", height=height, error=e)
            return None
        return manifest_bytes, registry_bytes, proof.encode(), block.encode()

    def chunk(self, height, index):
        return self._storage.snapshot_chunk(height, index)

    # -- ISnapshotInstaller --------------------------------------------------------

    def install(self, fetched):
        return self._storage.install_snapshot(
            installed_snapshot(fetched, self._genesis, self._clock.seconds()))
