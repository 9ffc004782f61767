"""MuHash3072: order independence, removal, serialization."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from timecoin.ledger.muhash import PRIME, MuHash, _mulmod


class MuHashTests(unittest.TestCase):
    def test_empty_sets_agree(self):
        self.assertEqual(MuHash().hexdigest(), MuHash().hexdigest())

    def test_add_then_remove_is_empty(self):
        h = MuHash()
        h.add(b"a")
        h.add(b"b")
        h.remove(b"a")
        h.remove(b"b")
        self.assertEqual(h.hexdigest(), MuHash().hexdigest())

    def test_differs_from_xor_like_collisions(self):
        # {a, a} is not {b, b}, and {a} is not {}: multiset sums in XOR would cancel.
        one, two = MuHash(), MuHash()
        one.add(b"a")
        one.add(b"a")
        two.add(b"b")
        two.add(b"b")
        self.assertNotEqual(one.hexdigest(), two.hexdigest())
        self.assertNotEqual(one.hexdigest(), MuHash().hexdigest())

    @settings(max_examples=50, deadline=None)
    @given(st.lists(st.binary(max_size=40), max_size=30), st.randoms())
    def test_order_independent(self, items, rnd):
        a, b = MuHash(), MuHash()
        for x in items:
            a.add(x)
        shuffled = list(items)
        rnd.shuffle(shuffled)
        for x in shuffled:
            b.add(x)
        self.assertEqual(a.hexdigest(), b.hexdigest())

    def test_serialize_round_trip(self):
        h = MuHash()
        for i in range(10):
            h.add(bytes([i]))
        h.remove(b"\3")
        again = MuHash.deserialize(h.serialize())
        self.assertEqual(again.hexdigest(), h.hexdigest())
        again.add(b"x")
        h.add(b"x")
        self.assertEqual(again.hexdigest(), h.hexdigest())
        self.assertRaises(ValueError, MuHash.deserialize, b"short")

    def test_combine(self):
        rnd = random.Random(1)
        items = [rnd.randbytes(8) for _ in range(20)]
        whole, left, right = MuHash(), MuHash(), MuHash()
        for i, x in enumerate(items):
            whole.add(x)
            (left if i % 2 else right).add(x)
        left.combine(right)
        self.assertEqual(left.hexdigest(), whole.hexdigest())


class ReductionTests(unittest.TestCase):
    @settings(max_examples=300, deadline=None)
    @given(st.integers(0, PRIME - 1), st.integers(0, PRIME - 1))
    def test_folded_reduction_equals_modulo(self, a, b):
        self.assertEqual(_mulmod(a, b), a * b % PRIME)

    def test_edges(self):
        for a, b in ((PRIME - 1, PRIME - 1), (0, PRIME - 1), (1, 1), (2**3071, 2**3071)):
            self.assertEqual(_mulmod(a, b), a * b % PRIME)
