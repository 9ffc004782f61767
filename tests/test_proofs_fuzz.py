"""Fuzzing the finality-proof decoder and verifier: whatever the bytes, the
only exception is ProofError, and a valid proof damaged anywhere is refused."""

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial import unittest

from tests.test_proofs import changing_chain
from timecoin.proofs.finality import MAGIC, REASONS, FinalityProof, ProofError
from timecoin.proofs.verify import verify_proof

CHAIN, _ = changing_chain()
GENESIS = CHAIN.genesis
PROOF = CHAIN.proof(tx_index=3)
VALID = PROOF.encode()
#: Where the u32 index and u32 size are: the only bytes a change to which may
#: leave a valid proof (a path proves inclusion, not the position).
POSITION = range(len(VALID) - 32 * len(PROOF.path) - 1 - 8, len(VALID) - 32 * len(PROOF.path) - 1)


def outcome(data):
    """The reason ``data`` is refused, or None if it verifies."""
    try:
        verify_proof(data, GENESIS)
    except ProofError as e:
        return e.reason
    return None


class DecoderFuzzTests(unittest.TestCase):
    """Only ProofError, with a known reason, ever leaves the decoder."""

    @given(st.binary(max_size=2048))
    def test_random_bytes(self, data):
        self.assertIn(outcome(data), REASONS)

    @given(st.binary(max_size=512))
    def test_random_bytes_after_the_magic(self, tail):
        self.assertIn(outcome(MAGIC + b"\x01\x02" + tail), REASONS)

    @given(st.integers(0, len(VALID) - 1))
    def test_truncated(self, end):
        self.assertEqual(outcome(VALID[:end]), "truncated")

    @given(st.binary(min_size=1, max_size=64))
    def test_trailing(self, extra):
        self.assertEqual(outcome(VALID + extra), "trailing-bytes")

    @given(st.integers(0, len(VALID) - 1), st.integers(1, 255))
    def test_one_byte_changed(self, position, flip):
        """Every byte of a proof is covered by a check: a change is refused,
        unless it moves the index or size to a position of the same shape."""
        data = bytearray(VALID)
        data[position] ^= flip
        reason = outcome(bytes(data))
        if reason is None:
            self.assertIn(position, POSITION)
            self.assertEqual(FinalityProof.decode(bytes(data)).txid, PROOF.txid)
        else:
            self.assertIn(reason, REASONS)

    @given(st.integers(0, len(VALID)), st.binary(min_size=1, max_size=40))
    def test_bytes_inserted(self, position, inserted):
        data = VALID[:position] + inserted + VALID[position:]
        self.assertIn(outcome(data), REASONS)

    @given(st.lists(st.integers(0, len(VALID) - 1), min_size=1, max_size=8))
    def test_decodes_or_refuses(self, positions):
        """Decoding alone: a proof back, or ProofError; a decoded proof re-encodes
        to the same bytes (one encoding)."""
        data = bytearray(VALID)
        for p in positions:
            data[p] ^= 0x5A
        try:
            proof = FinalityProof.decode(bytes(data))
        except ProofError as e:
            self.assertIn(e.reason, REASONS)
        else:
            self.assertEqual(proof.encode(), bytes(data))

    def test_valid_verifies(self):
        self.assertIsNone(outcome(VALID))
