"""UTXO snapshot chunks: the rebuilt MuHash is the node's set hash, and every
bad chunk or manifest is refused with its own reason (fuzzed decoders too)."""

import dataclasses
import hashlib

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import task
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from timecoin.interfaces import ISnapshotAssembly
from timecoin.ledger.block import BlockHeader
from timecoin.ledger.genesis import make_genesis
from timecoin.ledger.networks import DEVNET, TESTNET
from timecoin.ledger.snapshot import (
    CHUNK_MAGIC,
    MAX_CHUNK_SIZE,
    REASONS,
    SnapshotAssembly,
    SnapshotChunk,
    SnapshotError,
    SnapshotManifest,
    chunk_hash,
    cut_snapshot,
)
from timecoin.ledger.tx import OutPoint
from timecoin.ledger.utxo import UtxoSet


def node_set():
    """A node's UTXO set after devnet's genesis (4 masternodes): 104 outputs."""
    utxos = UtxoSet(task.Clock())
    for seq, tx in enumerate(make_genesis(DEVNET, 4).txs):
        utxos.finalize(tx, seq)
    outputs = sorted((e.outpoint, e.amount, e.key_hash) for e in utxos.iter_entries())
    return utxos, outputs


def header_for(set_hash, height=7):
    return BlockHeader(DEVNET.network_id, height, bytes(32), 0, 0, bytes(32), bytes(32),
                       set_hash, bytes(32), 0)


class SnapshotTestCase(unittest.TestCase):
    """A snapshot of the genesis set at block 7, in chunks of 16 outputs."""

    def setUp(self):
        self.utxos, self.outputs = node_set()
        self.header = header_for(bytes.fromhex(self.utxos.set_hash()))
        self.manifest, self.chunks = cut_snapshot(DEVNET.network_id, 7, self.header.hash,
                                                  self.outputs, chunk_outputs=16)

    def refuses(self, reason, call, *args):
        with self.assertRaises(SnapshotError) as caught:
            call(*args)
        self.assertEqual(caught.exception.reason, reason, str(caught.exception))
        self.assertIn(reason, REASONS)
        return caught.exception

    def assembly(self, manifest=None):
        return SnapshotAssembly(manifest or self.manifest, self.header)


class RoundTripTests(SnapshotTestCase):
    """Cut, decode and rebuild."""

    def test_rebuilt_hash_is_the_nodes(self):
        self.assertEqual(len(self.outputs), 104)
        self.assertEqual(len(self.chunks), 7)  # 6 x 16 + 8
        assembly = self.assembly()
        verifyObject(ISnapshotAssembly, assembly)
        rebuilt = []
        for index in reversed(range(len(self.chunks))):  # any order
            rebuilt[:0] = assembly.add(index, self.chunks[index])
        self.assertEqual(assembly.finish().hex(), self.utxos.set_hash())
        self.assertEqual(list(rebuilt), self.outputs)

    def test_encodings_round_trip(self):
        self.assertEqual(SnapshotManifest.decode(self.manifest.encode()), self.manifest)
        for data in self.chunks:
            self.assertEqual(SnapshotChunk.decode(data).encode(), data)

    def test_empty_set(self):
        manifest, chunks = cut_snapshot(DEVNET.network_id, 1, bytes(32), [])
        self.assertEqual(chunks, [])
        self.assertEqual(SnapshotManifest.decode(manifest.encode()), manifest)
        self.assertEqual(SnapshotAssembly(manifest).finish().hex(),
                         UtxoSet(task.Clock()).set_hash())

    def test_cut_needs_sorted_outputs(self):
        with self.assertRaises(ValueError):
            cut_snapshot(DEVNET.network_id, 7, bytes(32), list(reversed(self.outputs)))


class ChunkRefusalTests(SnapshotTestCase):
    """A chunk that is not the manifest's, or not a chunk."""

    def altered_chunk(self, index=2, amount_delta=1):
        chunk = SnapshotChunk.decode(self.chunks[index])
        outputs = list(chunk.outputs)
        outpoint, amount, key_hash = outputs[3]
        outputs[3] = (outpoint, amount + amount_delta, key_hash)
        return dataclasses.replace(chunk, outputs=tuple(outputs)).encode()

    def test_one_altered_output_against_the_manifest(self):
        assembly = self.assembly()
        error = self.refuses("chunk-hash-mismatch", assembly.add, 2, self.altered_chunk())
        self.assertEqual(error.index, 2)
        self.assertEqual(assembly.missing(), list(range(7)))  # nothing kept
        assembly.add(2, self.chunks[2])  # fetched again from an honest peer

    def test_one_altered_output_with_a_manifest_to_match(self):
        """A peer serving a manifest of its own altered set: the set hash finds it."""
        chunks = list(self.chunks)
        chunks[2] = self.altered_chunk()
        lying = dataclasses.replace(self.manifest,
                                    chunk_hashes=tuple(chunk_hash(c) for c in chunks))
        assembly = self.assembly(lying)
        for index, data in enumerate(chunks):
            assembly.add(index, data)
        self.refuses("set-hash-mismatch", assembly.finish)

    def test_manifest_of_another_block(self):
        other = header_for(self.header.utxo_set_hash, height=8)
        self.refuses("header-mismatch", SnapshotAssembly, self.manifest, other)
        forged = dataclasses.replace(self.manifest, utxo_set_hash=bytes(32))
        self.refuses("header-mismatch", SnapshotAssembly, forged, self.header)

    def test_chunk_of_another_snapshot_or_place(self):
        chunk = SnapshotChunk.decode(self.chunks[1])
        for changed, reason in ((dict(height=8), "wrong-snapshot"),
                                (dict(index=2), "wrong-snapshot"),
                                (dict(network_id=TESTNET.network_id), "wrong-network"),
                                (dict(outputs=chunk.outputs[:-1]), "chunk-size")):
            data = dataclasses.replace(chunk, **changed).encode()
            hashes = list(self.manifest.chunk_hashes)
            hashes[1] = chunk_hash(data)  # the manifest vouches for it: checks still apply
            manifest = dataclasses.replace(self.manifest, chunk_hashes=tuple(hashes))
            self.refuses(reason, self.assembly(manifest).add, 1, data)

    def test_index_duplicate_missing_and_order(self):
        assembly = self.assembly()
        self.refuses("chunk-index", assembly.add, 7, self.chunks[0])
        assembly.add(0, self.chunks[0])
        self.refuses("duplicate-chunk", assembly.add, 0, self.chunks[0])
        self.refuses("missing-chunks", assembly.finish)
        # A manifest whose chunks 0 and 1 are swapped (renumbered): each chunk
        # is sorted and vouched for, but the set is not in order across them.
        first, second = (SnapshotChunk.decode(c) for c in self.chunks[:2])
        swapped = [dataclasses.replace(second, index=0).encode(),
                   dataclasses.replace(first, index=1).encode()] + self.chunks[2:]
        manifest = dataclasses.replace(self.manifest,
                                       chunk_hashes=tuple(chunk_hash(c) for c in swapped))
        assembly = self.assembly(manifest)
        for index, data in enumerate(swapped):
            assembly.add(index, data)
        self.assertEqual(self.refuses("chunk-order", assembly.finish).index, 1)

    def test_bad_outputs(self):
        chunk = SnapshotChunk.decode(self.chunks[0])
        outputs = list(chunk.outputs)
        zero = dataclasses.replace(chunk, outputs=((outputs[0][0], 0, outputs[0][2]),)
                                   + chunk.outputs[1:])
        self.refuses("bad-amount", SnapshotChunk.decode, zero.encode())
        unsorted = dataclasses.replace(chunk, outputs=(outputs[1], outputs[0]) +
                                       chunk.outputs[2:])
        self.refuses("unsorted-outputs", SnapshotChunk.decode, unsorted.encode())
        twice = dataclasses.replace(chunk, outputs=(outputs[0], outputs[0]))
        self.refuses("unsorted-outputs", SnapshotChunk.decode, twice.encode())

    def test_bytes_that_are_not_one_chunk(self):
        data = self.chunks[0]
        for end in range(0, len(data), 7):
            self.refuses("truncated", SnapshotChunk.decode, data[:end])
        self.refuses("trailing-bytes", SnapshotChunk.decode, data + b"\x00")
        self.refuses("oversized", SnapshotChunk.decode, data + bytes(MAX_CHUNK_SIZE))
        self.refuses("not-a-chunk", SnapshotChunk.decode, b"x" * 100)
        self.refuses("not-a-chunk", SnapshotChunk.decode, self.manifest.encode())
        version = bytearray(data)
        version[len(CHUNK_MAGIC)] = 9
        self.refuses("unsupported-version", SnapshotChunk.decode, bytes(version))
        over = bytearray(data)
        count_at = len(CHUNK_MAGIC) + 2 + 8 + 32 + 4
        over[count_at:count_at + 4] = (10**6).to_bytes(4, "little")
        self.refuses("over-limit", SnapshotChunk.decode, bytes(over))

    def test_bad_manifests(self):
        data = self.manifest.encode()
        self.refuses("truncated", SnapshotManifest.decode, data[:-1])
        self.refuses("trailing-bytes", SnapshotManifest.decode, data + b"\x00")
        self.refuses("not-a-manifest", SnapshotManifest.decode, self.chunks[0])
        short = dataclasses.replace(self.manifest, chunk_hashes=self.manifest.chunk_hashes[:-1])
        self.refuses("bad-manifest", SnapshotManifest.decode, short.encode())
        zero = dataclasses.replace(self.manifest, chunk_outputs=0)
        self.refuses("bad-manifest", SnapshotManifest.decode, zero.encode())


VALID_CHUNK = cut_snapshot(DEVNET.network_id, 3, bytes(32), sorted(
    (OutPoint(hashlib.blake2b(bytes([i]), digest_size=32).digest(), i), 1000 + i, bytes(20))
    for i in range(5)), chunk_outputs=8)


class FuzzTests(unittest.TestCase):
    """Only SnapshotError leaves the decoders."""

    def outcome(self, decode, data):
        try:
            decode(data)
        except SnapshotError as e:
            self.assertIn(e.reason, REASONS)

    @given(st.binary(max_size=1024))
    def test_random_bytes(self, data):
        self.outcome(SnapshotChunk.decode, data)
        self.outcome(SnapshotManifest.decode, data)
        self.outcome(SnapshotChunk.decode, CHUNK_MAGIC + data)

    @given(st.integers(0, 400), st.integers(1, 255), st.binary(max_size=16))
    def test_damaged(self, position, flip, inserted):
        manifest, chunks = VALID_CHUNK
        for data in (chunks[0], manifest.encode()):
            damaged = bytearray(data)
            damaged[position % len(data)] ^= flip
            for candidate in (bytes(damaged), data[:position % len(data)],
                              data[:position] + inserted + data[position:]):
                self.outcome(SnapshotChunk.decode, candidate)
                self.outcome(SnapshotManifest.decode, candidate)
