"""The UTXO state machine: transitions, locks and expiry, pinning and the LRU bound."""

from twisted.internet.task import Clock
from twisted.trial import unittest

from tests.support import FEE, PrivateKey, devnet_funding, transfer
from timecoin.ledger.muhash import MuHash
from timecoin.ledger.tx import TxRejected
from timecoin.ledger.utxo import UtxoSet, UtxoStatus, utxo_element


class UtxoSetTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.state = UtxoSet(self.clock, cache_entries=10, lock_timeout=30)
        self.key, self.op, self.amount = devnet_funding(0)
        self.state.load([(self.op, self.amount, self.key.key_hash)])
        self.dest = PrivateKey.devnet(5)

    def spend(self, fee=FEE):
        return transfer(self.key, [self.op], [(1000, self.dest.key_hash)], fee=fee,
                        total=self.amount)

    def status(self, op=None):
        return self.state.get(op or self.op).status

    def test_full_life_of_an_output(self):
        tx = self.spend()
        self.assertEqual(self.state.check_inputs(tx), self.amount)
        self.state.lock(tx)
        self.assertEqual(self.status(), UtxoStatus.LOCKED)
        self.assertEqual(self.state.lock_holder(self.op), tx.txid)
        self.state.mark_pending(tx.txid)
        self.assertEqual(self.status(), UtxoStatus.SPENT_PENDING)
        self.state.finalize(tx, seq=7)
        self.assertEqual(self.status(), UtxoStatus.SPENT_FINALIZED)
        self.state.confirm([self.op])
        self.assertEqual(self.status(), UtxoStatus.CONFIRMED)
        self.state.applied(7)
        self.assertIsNone(self.state.get(self.op))
        self.assertEqual(self.status(tx.outpoints()[0]), UtxoStatus.UNSPENT)

    def test_unwind_undoes_a_finalization_child_first(self):
        before = (self.state.set_hash(), self.state.count, self.state.total_amount)
        parent = self.spend()
        self.state.lock(parent)
        self.state.finalize(parent, seq=1)
        self.state.applied(1)  # storage has it: the spent input left memory
        self.assertIsNone(self.state.get(self.op))
        out = parent.outpoints()[1]
        change = parent.outputs[1].amount
        child = transfer(self.key, [out], [(500, self.dest.key_hash)], total=change)
        self.state.lock(child)
        self.state.finalize(child, seq=2)
        with self.assertRaises(ValueError):
            self.state.unwind(parent, [(self.amount, self.key.key_hash)])  # child first
        self.state.unwind(child, [(change, self.key.key_hash)])
        self.assertEqual(self.status(out), UtxoStatus.UNSPENT)
        self.state.unwind(parent, [(self.amount, self.key.key_hash)])
        self.assertEqual((self.state.set_hash(), self.state.count, self.state.total_amount),
                         before)
        self.assertEqual(self.status(), UtxoStatus.UNSPENT)
        self.assertIsNone(self.state.get(out))
        self.assertIsNone(self.state.summary_at(2))
        # Spendable again, by a rival.
        rival = self.spend(fee=FEE + 1)
        self.assertEqual(self.state.check_inputs(rival), self.amount)

    def test_double_spend_refused_while_locked_and_after(self):
        first, second = self.spend(), self.spend(fee=FEE + 1)
        self.state.lock(first)
        e = self.assertRaises(TxRejected, self.state.check_inputs, second)
        self.assertEqual(e.code, "input-locked")
        self.state.finalize(first, 1)
        e = self.assertRaises(TxRejected, self.state.check_inputs, second)
        self.assertEqual(e.code, "input-spent")

    def test_release_rolls_back(self):
        tx = self.spend()
        self.state.lock(tx)
        self.state.mark_pending(tx.txid)
        self.assertTrue(self.state.release(tx.txid))
        self.assertEqual(self.status(), UtxoStatus.UNSPENT)
        self.assertFalse(self.state.release(tx.txid))
        self.assertRaises(ValueError, self.state.finalize, tx, 1)

    def test_lock_expiry_through_the_clock(self):
        tx = self.spend()
        self.state.lock(tx)
        self.assertEqual(self.state.next_expiry(), 30)
        self.clock.advance(29.9)
        self.assertEqual(self.state.expire_locks(), [])
        self.clock.advance(0.2)
        self.assertEqual(self.state.expire_locks(), [tx.txid])
        self.assertEqual(self.status(), UtxoStatus.UNSPENT)
        self.assertIsNone(self.state.next_expiry())

    def test_stale_expiry_of_a_relocked_output_is_ignored(self):
        tx = self.spend()
        self.state.lock(tx)
        self.state.release(tx.txid)
        self.clock.advance(10)
        other = self.spend(fee=FEE + 5)
        self.state.lock(other)
        self.clock.advance(25)  # first lock's expiry passes, second's has not
        self.assertEqual(self.state.expire_locks(), [])
        self.assertEqual(self.status(), UtxoStatus.LOCKED)

    def test_lock_is_atomic(self):
        key2, op2, amount2 = devnet_funding(2)
        self.state.load([(op2, amount2, key2.key_hash)])
        blocker = transfer(key2, [op2], [(1000, self.dest.key_hash)], total=amount2)
        self.state.lock(blocker)
        both = transfer(self.key, [self.op, op2], [(1000, self.dest.key_hash)],
                        total=self.amount + amount2)
        self.assertRaises(ValueError, self.state.lock, both)
        self.assertEqual(self.status(), UtxoStatus.UNSPENT)

    def test_wrong_key_and_missing(self):
        thief = transfer(self.dest, [self.op], [(1000, self.dest.key_hash)])
        self.assertEqual(self.assertRaises(TxRejected, self.state.check_inputs, thief).code,
                         "pubkey-mismatch")
        _, op9, _ = devnet_funding(9)
        ghost = transfer(self.key, [op9], [(1000, self.dest.key_hash)])
        self.assertEqual(self.assertRaises(TxRejected, self.state.check_inputs, ghost).code,
                         "missing-input")
        self.assertEqual(self.state.missing([op9, self.op]), [op9])

    def test_set_hash_count_and_total_follow_finality(self):
        before = (self.state.count, self.state.total_amount)
        tx = self.spend()
        self.state.lock(tx)
        self.state.finalize(tx, 1)
        self.assertEqual(self.state.count, before[0] - 1 + len(tx.outputs))
        self.assertEqual(self.state.total_amount, before[1] - FEE)
        scratch = MuHash()
        for op, out in zip(tx.outpoints(), tx.outputs, strict=True):
            scratch.add(utxo_element(op, out.amount, out.key_hash))
        # The state started from an empty hash with one loaded output; loading
        # does not change the hash, so only the finalized change is in it.
        scratch.remove(utxo_element(self.op, self.amount, self.key.key_hash))
        self.assertEqual(self.state.set_hash(), scratch.hexdigest())

    def test_pinned_outputs_survive_the_lru_bound(self):
        tx = self.spend()
        self.state.lock(tx)
        self.state.finalize(tx, 3)
        rows = [(devnet_funding(i)[1], 1, b"\0" * 20) for i in range(10, 40)]
        self.state.load(rows)
        self.state.trim()
        self.assertLessEqual(len(self.state), 10)
        self.assertEqual(self.status(), UtxoStatus.SPENT_FINALIZED)
        self.assertIsNotNone(self.state.get(tx.outpoints()[0]))
        # A stale row from storage cannot resurrect the spent output.
        self.state.load([(self.op, self.amount, self.key.key_hash)])
        self.assertEqual(self.status(), UtxoStatus.SPENT_FINALIZED)

    def test_overlay_merges_storage_and_memory(self):
        tx = self.spend()
        self.state.lock(tx)
        stored = [(self.op, self.amount)]
        rows = self.state.overlay(self.key.key_hash, stored)
        self.assertEqual(rows, [(self.op, self.amount, UtxoStatus.LOCKED)])
        self.state.finalize(tx, 1)
        self.assertEqual([r[2] for r in self.state.overlay(self.key.key_hash, stored)],
                         [UtxoStatus.UNSPENT])  # the change output only
        self.assertEqual(self.state.overlay(self.dest.key_hash, [])[0][1], 1000)
