"""The mempool: bounds, fee-rate eviction, rejected cache."""

from twisted.internet.task import Clock
from twisted.trial import unittest

from tests.support import PrivateKey
from timecoin.ledger.mempool import Mempool
from timecoin.ledger.networks import DEVNET
from timecoin.ledger.tx import OutPoint, TxRejected, sign_transfer

KEY = PrivateKey.devnet(0)


def tx(n, amount=1000):
    return sign_transfer(KEY, [OutPoint(n.to_bytes(32, "big"), 0)], [(amount, KEY.key_hash)],
                         DEVNET.network_id)


class MempoolTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()

    def test_add_remove_counters(self):
        pool = Mempool(self.clock)
        a = tx(1)
        self.assertEqual(pool.add(a, 500), [])
        self.assertIn(a.txid, pool)
        self.assertEqual((pool.size, pool.bytes), (1, a.size))
        self.assertEqual(pool.get(a.txid).fee, 500)
        pool.remove(a.txid)
        self.assertEqual((pool.size, pool.bytes), (0, 0))
        self.assertIsNone(pool.remove(a.txid))

    def test_never_added_twice(self):
        pool = Mempool(self.clock)
        a = tx(1)
        pool.add(a, 500)
        self.assertEqual(self.assertRaises(TxRejected, pool.add, a, 900).code, "already-known")
        self.assertEqual(pool.size, 1)

    def test_full_by_count_evicts_lowest_fee_rate(self):
        pool = Mempool(self.clock, max_count=3)
        txs = [tx(i) for i in range(4)]
        for t, fee in zip(txs[:3], (300, 100, 200), strict=True):
            pool.add(t, fee)
        self.assertGreater(pool.min_fee_rate(), 0)
        e = self.assertRaises(TxRejected, pool.add, txs[3], 100)
        self.assertEqual(e.code, "mempool-full")
        self.assertEqual(pool.size, 3)
        self.assertEqual(pool.add(txs[3], 150), [txs[1].txid])
        self.assertNotIn(txs[1].txid, pool)
        self.assertEqual(pool.size, 3)

    def test_only_evictable_entries_are_evicted(self):
        pool = Mempool(self.clock, max_count=3)
        txs = [tx(i) for i in range(5)]
        for t, fee in zip(txs[:3], (100, 200, 300), strict=True):
            pool.add(t, fee)
        deciding = {txs[0].txid}  # the lowest rate is being decided: it stays
        evicted = pool.add(txs[3], 400, evictable=lambda t: t not in deciding)
        self.assertEqual(evicted, [txs[1].txid])
        self.assertIn(txs[0].txid, pool)
        deciding = {t.txid for t in txs[:4]}
        e = self.assertRaises(TxRejected, pool.add, txs[4], 900,
                              evictable=lambda t: t not in deciding)
        self.assertEqual(e.code, "mempool-full")
        self.assertIn("being decided", str(e))
        self.assertEqual(pool.size, 3)
        self.assertEqual(pool.min_fee_rate(), txs[0].size and 100 / txs[0].size)

    def test_dropped_is_remembered_apart_and_expires(self):
        pool = Mempool(self.clock)
        a = tx(1)
        pool.add(a, 500)
        pool.remove(a.txid)
        pool.note_dropped(a.txid, "lock-expired: not polled")
        self.assertEqual(pool.drop_reason(a.txid), "lock-expired: not polled")
        self.assertIsNone(pool.rejection(a.txid))  # not a decision
        pool.add(a, 500)  # it may enter again
        self.assertIsNone(pool.drop_reason(a.txid))
        pool.remove(a.txid)
        self.clock.advance(3601)
        pool.expire_rejections()
        self.assertIsNone(pool.drop_reason(a.txid))

    def test_full_by_bytes_evicts_several(self):
        size = tx(0).size
        pool = Mempool(self.clock, max_bytes=1_000_000, max_count=10)
        pool.max_bytes = size * 3
        for i in range(3):
            pool.add(tx(i), 100 + i)
        big = sign_transfer(KEY, [OutPoint(b"\x09" * 32, 0), OutPoint(b"\x08" * 32, 0)],
                            [(1000, KEY.key_hash)], DEVNET.network_id)
        evicted = pool.add(big, 10_000)
        self.assertEqual(len(evicted), 2)
        self.assertLessEqual(pool.bytes, pool.max_bytes)

    def test_refusal_leaves_pool_unchanged(self):
        pool = Mempool(self.clock, max_count=2)
        pool.add(tx(1), 500)
        pool.add(tx(2), 600)
        before = (pool.size, pool.bytes, pool.min_fee_rate())
        self.assertRaises(TxRejected, pool.add, tx(3), 10)
        self.assertEqual((pool.size, pool.bytes, pool.min_fee_rate()), before)

    def test_rejected_cache_expires_after_an_hour(self):
        pool = Mempool(self.clock)
        pool.reject(b"x" * 32, "bad-signature")
        self.assertEqual(pool.rejection(b"x" * 32), "bad-signature")
        self.clock.advance(3599)
        self.assertEqual(pool.rejection(b"x" * 32), "bad-signature")
        self.clock.advance(2)
        self.assertIsNone(pool.rejection(b"x" * 32))

    def test_rejected_cache_bounded(self):
        pool = Mempool(self.clock, rejected_max=10)
        for i in range(20):
            pool.reject(bytes([i]) * 32, "x")
        self.assertIsNone(pool.rejection(bytes([0]) * 32))
        self.assertEqual(pool.rejection(bytes([19]) * 32), "x")
        self.clock.advance(4000)
        pool.expire_rejections()
        self.assertEqual(len(pool._rejected), 0)

    def test_heap_compacts(self):
        pool = Mempool(self.clock)
        for i in range(300):
            pool.add(tx(i), 500)
        for i in range(300):
            pool.remove(tx(i).txid)
        self.assertLess(len(pool._heap), 100)


class PendingViewsTests(unittest.TestCase):
    """Contenders and pending outputs per address follow the entries."""

    def test_incoming_and_contenders_follow_add_remove_and_eviction(self):
        pool = Mempool(Clock(), max_count=2)
        a, b, c = tx(1, 1000), tx(2, 2000), tx(3, 4000)
        pool.add(a, 500)
        pool.add(b, 600, contender=True)
        self.assertEqual(pool.incoming(KEY.key_hash), 3000)
        self.assertEqual(pool.contenders(), [b.txid])
        self.assertTrue(pool.is_contender(b.txid))
        self.assertFalse(pool.is_contender(a.txid))
        self.assertEqual(pool.add(c, 5000), [a.txid])  # a is evicted
        self.assertEqual(pool.incoming(KEY.key_hash), 6000)
        pool.remove(b.txid)
        self.assertEqual(pool.contenders(), [])
        self.assertEqual(pool.incoming(KEY.key_hash), 4000)
        pool.remove(c.txid)
        self.assertEqual(pool.incoming(KEY.key_hash), 0)
