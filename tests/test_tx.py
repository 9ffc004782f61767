"""Transaction encoding, decoding and stateless checks."""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.networks import DEVNET, MAX_SUPPLY, TESTNET
from timecoin.ledger.tx import (
    KIND_GENESIS,
    MAX_INPUTS,
    MAX_TX_SIZE,
    OutPoint,
    Transaction,
    TxIn,
    TxOut,
    TxRejected,
    check_stateless,
    decode_hex,
    decode_tx,
    sign_transfer,
)

KEY = PrivateKey.devnet(0)
OTHER = PrivateKey.devnet(1)

outpoints = st.builds(OutPoint, st.binary(min_size=32, max_size=32),
                      st.integers(0, 2**32 - 1))
txouts = st.builds(TxOut, st.integers(0, 2**64 - 1), st.binary(min_size=20, max_size=20))
txins = st.builds(TxIn, outpoints, st.binary(min_size=32, max_size=32),
                  st.binary(min_size=64, max_size=64))
transactions = st.builds(
    Transaction, st.lists(txins, max_size=5).map(tuple), st.lists(txouts, max_size=5).map(tuple),
    st.integers(0, 255), st.integers(0, 255), st.binary(max_size=50), st.integers(0, 255),
)


def simple(fee=1000, **kw):
    op = OutPoint(b"\1" * 32, 0)
    return sign_transfer(KEY, [op], [(10_000, OTHER.key_hash)], DEVNET.network_id, **kw)


class EncodingTests(unittest.TestCase):
    @settings(max_examples=200, deadline=None)
    @given(transactions)
    def test_round_trip(self, tx):
        again = decode_tx(tx.raw)
        self.assertEqual(again, tx)
        self.assertEqual(again.txid, tx.txid)
        self.assertEqual(again.raw, tx.raw)

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=400))
    def test_garbage_only_raises_tx_rejected(self, data):
        try:
            decode_tx(data)
        except TxRejected as e:
            self.assertIn(e.code, ("malformed", "too-large"))

    def test_truncated_and_trailing(self):
        raw = simple().raw
        for n in range(len(raw)):
            self.assertRaises(TxRejected, decode_tx, raw[:n])
        e = self.assertRaises(TxRejected, decode_tx, raw + b"\0")
        self.assertIn("trailing", e.message)

    def test_counts_are_bounded_before_reading(self):
        raw = bytes([1, 0, 2]) + (MAX_INPUTS + 1).to_bytes(4, "little")
        e = self.assertRaises(TxRejected, decode_tx, raw)
        self.assertIn("limit", e.message)

    def test_oversized(self):
        e = self.assertRaises(TxRejected, decode_tx, bytes(MAX_TX_SIZE + 1))
        self.assertEqual(e.code, "too-large")

    def test_hex(self):
        tx = simple()
        self.assertEqual(decode_hex(tx.hex()), tx)
        self.assertEqual(self.assertRaises(TxRejected, decode_hex, "zz").code, "malformed")
        self.assertEqual(self.assertRaises(TxRejected, decode_hex, 5).code, "malformed")

    def test_txid_changes_with_any_field(self):
        a = simple()
        b = sign_transfer(KEY, [OutPoint(b"\1" * 32, 0)], [(10_001, OTHER.key_hash)],
                          DEVNET.network_id)
        self.assertNotEqual(a.txid, b.txid)


class StatelessCheckTests(unittest.TestCase):
    def test_valid(self):
        check_stateless(simple(), DEVNET.network_id)

    def test_signature_covers_network_and_outputs(self):
        tx = simple()
        forged = Transaction(tx.inputs, (TxOut(99_999, OTHER.key_hash),), tx.network_id)
        self.assertEqual(self.assertRaises(TxRejected, check_stateless, forged,
                                           DEVNET.network_id).code, "bad-signature")
        moved = Transaction(tx.inputs, tx.outputs, TESTNET.network_id)
        self.assertEqual(self.assertRaises(TxRejected, check_stateless, moved,
                                           TESTNET.network_id).code, "bad-signature")

    def test_wrong_network(self):
        tx = simple()
        self.assertEqual(self.assertRaises(TxRejected, check_stateless, tx,
                                           TESTNET.network_id).code, "wrong-network")

    def test_genesis_kind_refused(self):
        tx = Transaction((), (TxOut(1, OTHER.key_hash),), DEVNET.network_id, KIND_GENESIS)
        self.assertEqual(self.assertRaises(TxRejected, check_stateless, tx,
                                           DEVNET.network_id).code, "unsupported-kind")

    def test_supply_bounds(self):
        op = OutPoint(b"\1" * 32, 0)
        over = sign_transfer(KEY, [op], [(MAX_SUPPLY + 1, OTHER.key_hash)], DEVNET.network_id)
        self.assertEqual(self.assertRaises(TxRejected, check_stateless, over,
                                           DEVNET.network_id).code, "amount-too-large")
        two = sign_transfer(KEY, [op], [(MAX_SUPPLY, OTHER.key_hash)] * 2, DEVNET.network_id)
        self.assertEqual(self.assertRaises(TxRejected, check_stateless, two,
                                           DEVNET.network_id).code, "outputs-overflow")
