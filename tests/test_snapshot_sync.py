"""Snapshot sync between nodes on fakes: serving offers and chunks, fetching
from several peers at once with a bound in flight, and the bad peers: an
altered chunk, a lying manifest, a manifest of a set the certified header
does not name, an uncertified header, and a peer that offers a snapshot and
does not serve it. Each bad peer is banned with its reason, and the set is
still fetched from the honest ones."""

import hashlib
from dataclasses import replace

from twisted.internet.task import Clock
from twisted.trial import unittest
from zope.interface import implementer
from zope.interface.verify import verifyObject

from tests.proof_support import SignedChain
from timecoin.finality.snapshot_fetch import SnapshotFetcher
from timecoin.finality.snapshot_messages import (
    GetSnapshot,
    GetSnapshotChunk,
    SnapshotChunkMessage,
    SnapshotOffer,
)
from timecoin.finality.snapshot_server import SnapshotServer
from timecoin.interfaces import (
    IPeerMessaging,
    IPeerPolicing,
    ISnapshotInstaller,
    ISnapshotSource,
)
from timecoin.ledger.muhash import MuHash
from timecoin.ledger.registry import MasternodeRegistry
from timecoin.ledger.snapshot import SnapshotChunk, cut_snapshot
from timecoin.ledger.snapshot_registry import encode_registry
from timecoin.ledger.tx import OutPoint
from timecoin.ledger.utxo import utxo_element
from timecoin.p2p import messages as m
from timecoin.testing.snapshots import FixedSnapshotSource, SnapshotHub

CHUNK_OUTPUTS = 10


def made_up_outputs(count, salt=b""):
    return [(OutPoint(hashlib.blake2b(salt + b"%d" % i, digest_size=32).digest(), i % 3),
             1000 + i, bytes([i % 251]) * 20) for i in range(count)]


class World:
    """A certified chain of 3 blocks whose last names the set hash of
    ``outputs`` (the genesis outputs and 95 more), and its snapshot."""

    def __init__(self, extra=95):
        self.chain = SignedChain(4)
        genesis = self.chain.genesis
        outputs = [(OutPoint(tx.txid, vout), out.amount, out.key_hash)
                   for tx in genesis.txs for vout, out in enumerate(tx.outputs)]
        self.outputs = sorted(outputs + made_up_outputs(extra))
        self.chain.add_block()
        self.chain.add_block()
        self.block, self.certificate = self.chain.add_block(
            utxo_set_hash=self.muhash(self.outputs).digest())
        self.rows = MasternodeRegistry.from_genesis(genesis).rows()
        self.manifest, self.chunks = self.cut(self.outputs)
        self.offer = self.offer_of(self.manifest)

    @staticmethod
    def muhash(outputs):
        muhash = MuHash()
        for outpoint, amount, key_hash in outputs:
            muhash.add(utxo_element(outpoint, amount, key_hash))
        return muhash

    def cut(self, outputs):
        return cut_snapshot(self.chain.genesis.network.network_id, self.block.height,
                            self.block.hash, outputs, CHUNK_OUTPUTS)

    def offer_of(self, manifest, proof=None, block=None):
        proof = proof if proof is not None else self.chain.proof(self.block.height, -1)
        return (manifest.encode(), encode_registry(self.rows), proof.encode(),
                (block or self.block).encode())

    def chunk_map(self, manifest, chunks):
        return {(manifest.height, i): data for i, data in enumerate(chunks)}


@implementer(ISnapshotInstaller)
class RecordingInstaller:
    def __init__(self):
        self.installed = []

    def install(self, fetched):
        self.installed.append(fetched)


class SnapshotSyncTests(unittest.TestCase):

    def setUp(self):
        self.world = World()
        self.clock = Clock()
        self.hub = SnapshotHub(self.clock)
        self.sources = {}

    def serve(self, node_id, offer, chunks):
        source = self.sources[node_id] = FixedSnapshotSource(offer, chunks)
        endpoint = self.hub.endpoint(node_id)
        SnapshotServer(source, 10 << 20).attach(endpoint)
        return source

    def honest(self, *node_ids):
        for node_id in node_ids:
            self.serve(node_id, self.world.offer,
                       self.world.chunk_map(self.world.manifest, self.world.chunks))

    def fetch(self, max_in_flight=4, seconds=60):
        installer = RecordingInstaller()
        endpoint = self.hub.endpoint(0)
        fetcher = SnapshotFetcher(self.clock, self.world.chain.genesis, installer,
                                  max_in_flight=max_in_flight, per_peer=2)
        fetcher.attach(endpoint)
        fetcher.startService()
        self.addCleanup(fetcher.stopService)
        peak = 0
        for _ in range(int(seconds / 0.01)):
            self.clock.advance(0.01)
            peak = max(peak, len(fetcher._in_flight))
            if fetcher.state in ("done", "failed", "none"):
                break
        return fetcher, installer, endpoint, peak

    def assert_fetched(self, fetcher, installer):
        self.assertEqual(fetcher.state, "done")
        [fetched] = installer.installed
        self.assertEqual(fetched.outputs, self.world.outputs)
        self.assertEqual(fetched.muhash.digest(), self.world.block.header.utxo_set_hash)
        self.assertEqual(self.successResultOf(fetcher.finished), fetched)

    def test_fakes_provide_their_interfaces(self):
        endpoint = self.hub.endpoint(9)
        verifyObject(IPeerMessaging, endpoint)
        verifyObject(IPeerPolicing, endpoint)
        verifyObject(ISnapshotSource, FixedSnapshotSource(None, {}))
        verifyObject(ISnapshotInstaller, RecordingInstaller())

    def test_the_set_is_fetched_from_several_peers_with_a_bound_in_flight(self):
        self.honest(1, 2, 3)
        fetcher, installer, endpoint, peak = self.fetch(max_in_flight=4)
        self.assert_fetched(fetcher, installer)
        self.assertEqual(endpoint.banned, {})
        self.assertLessEqual(peak, 4)
        self.assertGreater(peak, 1)
        chunks = len(self.world.chunks)
        reads = [self.sources[n].reads for n in (1, 2, 3)]
        self.assertEqual(sum(reads), chunks)
        self.assertTrue(all(r > 0 for r in reads), reads)

    def test_an_altered_chunk_bans_its_sender_and_is_fetched_elsewhere(self):
        self.honest(1, 2)
        altered = {}
        for index, data in enumerate(self.world.chunks):  # one output altered in each
            chunk = SnapshotChunk.decode(data)
            (outpoint, amount, key_hash), *rest = chunk.outputs
            altered[(chunk.height, index)] = SnapshotChunk(
                chunk.network_id, chunk.height, chunk.block_hash, index,
                ((outpoint, amount + 1, key_hash), *rest)).encode()
        self.serve(3, self.world.offer, altered)
        fetcher, installer, endpoint, _ = self.fetch()
        self.assert_fetched(fetcher, installer)
        self.assertEqual(list(endpoint.banned), [3])
        self.assertIn("chunk-hash-mismatch", endpoint.banned[3])
        self.assertGreaterEqual(fetcher.chunks_refused, 1)

    def test_a_lying_manifest_is_found_by_the_set_hash_and_its_senders_banned(self):
        # Two peers offer a manifest of another set under the certified header
        # (same height, block and set hash, other chunks): it is tried first
        # (more peers), its chunks match it, and the whole set's MuHash does not.
        forged = sorted(self.world.outputs[:-1] + made_up_outputs(1, b"forged"))
        manifest, chunks = self.world.cut(forged)
        lying = replace(manifest, utxo_set_hash=self.world.manifest.utxo_set_hash)
        for node_id in (4, 5):
            self.serve(node_id, self.world.offer_of(lying), self.world.chunk_map(lying, chunks))
        self.honest(1)
        fetcher, installer, endpoint, _ = self.fetch()
        self.assert_fetched(fetcher, installer)
        self.assertEqual(sorted(endpoint.banned), [4, 5])
        self.assertIn("set-hash-mismatch", endpoint.banned[4])

    def test_a_snapshot_whose_set_hash_is_not_the_certified_headers_is_refused(self):
        other = sorted(self.world.outputs + made_up_outputs(3, b"other"))
        manifest, chunks = self.world.cut(other)
        self.serve(4, self.world.offer_of(manifest), self.world.chunk_map(manifest, chunks))
        self.honest(1)
        fetcher, installer, endpoint, _ = self.fetch()
        self.assert_fetched(fetcher, installer)
        self.assertEqual(list(endpoint.banned), [4])
        self.assertIn("header-mismatch", endpoint.banned[4])
        self.assertEqual(self.sources[4].reads, 0)  # nothing was asked of it

    def test_an_uncertified_header_claiming_a_higher_snapshot_is_refused(self):
        # A block 4 signed by two of the four masternodes: half the stake.
        chain = self.world.chain
        block, _ = chain.add_block(utxo_set_hash=self.world.block.header.utxo_set_hash)
        signers = sorted(chain.in_force)[:2]
        chain.records[-1] = (block, chain.certify(block.header, signers), chain.in_force)
        manifest, chunks = cut_snapshot(chain.genesis.network.network_id, 4, block.hash,
                                        self.world.outputs, CHUNK_OUTPUTS)
        self.serve(4, self.world.offer_of(manifest, chain.proof(4, -1), block),
                   self.world.chunk_map(manifest, chunks))
        self.honest(1)
        fetcher, installer, endpoint, _ = self.fetch()
        self.assert_fetched(fetcher, installer)
        self.assertEqual(installer.installed[0].height, 3)
        self.assertEqual(list(endpoint.banned), [4])
        self.assertIn("snapshot offer refused", endpoint.banned[4])

    def test_a_peer_that_offers_a_snapshot_it_does_not_serve_is_banned(self):
        self.serve(4, self.world.offer, {})
        self.honest(1)
        fetcher, installer, endpoint, _ = self.fetch()
        self.assert_fetched(fetcher, installer)
        self.assertEqual(list(endpoint.banned), [4])
        self.assertIn("does not serve its chunk", endpoint.banned[4])

    def test_with_only_bad_peers_nothing_is_installed(self):
        self.serve(4, self.world.offer, {})
        fetcher, installer, endpoint, _ = self.fetch(seconds=200)
        self.assertEqual(installer.installed, [])
        self.assertEqual(fetcher.state, "none")  # given up: the blocks are replayed
        self.assertIsNone(self.successResultOf(fetcher.finished))
        self.assertEqual(list(endpoint.banned), [4])

    def test_when_no_peer_serves_a_snapshot_the_fetcher_gives_up_at_once(self):
        self.serve(1, None, {})
        self.serve(2, None, {})
        fetcher, installer, endpoint, _ = self.fetch(seconds=5)
        self.assertEqual(fetcher.state, "none")
        self.assertLess(self.clock.seconds(), 2)
        self.assertIsNone(self.successResultOf(fetcher.finished))
        self.assertEqual(installer.installed, [])

    def test_a_chunk_not_asked_of_a_peer_is_ignored(self):
        self.honest(1)
        fetcher, installer, endpoint, _ = self.fetch()
        self.assert_fetched(fetcher, installer)
        before = len(installer.installed)
        fetcher._on_chunk(1, SnapshotChunkMessage(3, 0, self.world.chunks[0]))
        self.assertEqual(len(installer.installed), before)


class SnapshotServerTests(unittest.TestCase):

    def test_an_offer_above_the_frame_limit_is_answered_empty(self):
        world = World()
        clock = Clock()
        hub = SnapshotHub(clock)
        server_end, client = hub.endpoint(1), hub.endpoint(2)
        limit = len(m.encode_message(SnapshotOffer(*world.offer)))  # no room for the overhead
        SnapshotServer(FixedSnapshotSource(world.offer, {}), limit).attach(server_end)
        got = []
        client.register_handler(m.SNAPSHOT_OFFER, lambda peer, message: got.append(message))
        client.send(1, GetSnapshot())
        clock.pump([0.01] * 10)
        self.assertEqual(got, [SnapshotOffer()])

    def test_no_snapshot_is_answered_empty_and_a_missing_chunk_with_no_bytes(self):
        clock = Clock()
        hub = SnapshotHub(clock)
        server_end, client = hub.endpoint(1), hub.endpoint(2)
        SnapshotServer(FixedSnapshotSource(None, {}), 10 << 20).attach(server_end)
        got = []
        client.register_handler(m.SNAPSHOT_OFFER, lambda peer, message: got.append(message))
        client.register_handler(m.SNAPSHOT_CHUNK, lambda peer, message: got.append(message))
        client.send(1, GetSnapshot())
        client.send(1, GetSnapshotChunk(5, 2))
        clock.pump([0.01] * 10)
        self.assertEqual(got, [SnapshotOffer(), SnapshotChunkMessage(5, 2, b"")])
        self.assertTrue(SnapshotOffer().empty)
