"""The block sync scheduler alone: seeded runs with honest, slow, lying and
disappearing peers, and its rules one by one."""

import random

from twisted.trial import unittest

from timecoin.finality.block_fetcher import BlockFetcher, FetchError

HONEST, SLOW, SHORT, BAD, FLAKY = "honest", "slow", "short", "bad", "flaky"


class Swarm:
    """A chain of ``top`` heights and peers of each behaviour, replies delayed
    on a simulated clock; the node takes blocks in order and rejects bad ones.

    * honest: answers every request in full after 0.05-1 s;
    * slow: answers after 3-12 s (often past the timeout);
    * short: claims the tip, answers only up to a height well below it;
    * bad: answers in full, but its entries are bad (found so by the node);
    * flaky: honest, but disappears and comes back now and then.
    """

    def __init__(self, seed, top=1500, behaviours=(HONEST, HONEST, SLOW, SHORT, BAD, FLAKY)):
        self.rng = random.Random(seed)
        self.top = top
        self.fetcher = BlockFetcher(batch=self.rng.choice([4, 8, 16]),
                                    window=self.rng.choice([16, 32, 64]),
                                    per_peer=self.rng.choice([16, 32]))
        self.behaviour = dict(enumerate(behaviours, 1))
        self.present = set(self.behaviour)
        self.now = 0.0
        self.pending = []  # (due, seq, peer, entries)
        self.seq = 0
        self.committed = []
        self.liars_caught = set()
        self.sent = 0
        for peer in self.present:
            self.fetcher.note_tip(peer, top, claimed=True)

    def entries(self, peer, start, count):
        kind = self.behaviour[peer]
        last = min(start + count - 1, self.top)
        if kind == SHORT:
            last = min(last, self.top // 3)
        return [(h, (peer, kind == BAD)) for h in range(start, last + 1)]

    def step(self):
        self.now += self.rng.uniform(0.01, 0.5)
        f = self.fetcher
        for peer, start, count in f.requests(self.now):
            self.sent += 1
            self.assertions_on_request(peer, start, count)
            kind = self.behaviour[peer]
            delay = self.rng.uniform(3, 12) if kind == SLOW else self.rng.uniform(0.05, 1.0)
            if kind == FLAKY and self.rng.random() < 0.2:
                continue  # lost with the connection
            self.seq += 1
            self.pending.append((self.now + delay, self.seq, peer,
                                 self.entries(peer, start, count)))
        self.pending.sort()
        while self.pending and self.pending[0][0] <= self.now:
            _, _, peer, entries = self.pending.pop(0)
            if peer not in self.present or peer in f.banned:
                continue
            first = entries[0][0] if entries else None
            if not f.expects(peer, first):
                continue
            try:
                f.on_reply(peer, entries, self.now)
            except FetchError:
                f.ban(peer)
                self.liars_caught.add(peer)
        while True:
            height = f.height + 1
            got = f.take(height)
            if got is None:
                break
            supplier, (origin, bad) = got
            assert supplier == origin
            if bad:
                self.liars_caught.add(f.reject(height))
                continue
            self.committed.append(height)
            f.set_height(height)
        f.on_tick(self.now)
        flaky = [p for p, k in self.behaviour.items() if k == FLAKY]
        for peer in flaky:
            if peer in self.present and self.rng.random() < 0.02:
                self.present.discard(peer)
                f.remove_peer(peer)
            elif peer not in self.present and self.rng.random() < 0.1:
                self.present.add(peer)
                f.note_tip(peer, self.top, claimed=True)

    def assertions_on_request(self, peer, start, count):
        f = self.fetcher
        assert peer in self.present and peer not in f.banned, (peer, f.banned)
        assert f.height < start and start + count - 1 <= f.height + f.window
        assert 1 <= count <= f.batch
        assert f.in_flight() + f.held() <= f.window

    def run(self, steps):
        for _ in range(steps):
            self.step()
            if len(self.committed) == self.top:
                break
        return self


class SeededRuns(unittest.TestCase):
    def test_every_height_is_taken_once_in_order_and_liars_are_banned(self):
        for seed in range(30):
            swarm = Swarm(seed).run(20000)
            self.assertEqual(swarm.committed, list(range(1, swarm.top + 1)), seed)
            f = swarm.fetcher
            liars = {p for p, k in swarm.behaviour.items() if k in (SHORT, BAD)}
            # Both liars were asked (each gets ranges while it is the least
            # loaded), so both were caught; no honest, slow or flaky peer was.
            self.assertEqual(f.banned, liars, seed)
            self.assertEqual(swarm.liars_caught, liars, seed)
            self.assertEqual(f.held(), 0)

    def test_only_slow_and_honest_peers_still_finish(self):
        for seed in range(10):
            swarm = Swarm(seed, top=200, behaviours=(SLOW, SLOW, HONEST)).run(6000)
            self.assertEqual(swarm.committed, list(range(1, 201)), seed)
            self.assertEqual(swarm.fetcher.banned, set())
            self.assertGreater(swarm.fetcher.timeouts, 0)

    def test_with_every_honest_peer_gone_nothing_is_lost_until_one_returns(self):
        swarm = Swarm(3, top=100, behaviours=(HONEST, HONEST)).run(10)
        done = list(swarm.committed)
        for peer in (1, 2):
            swarm.present.discard(peer)
            swarm.fetcher.remove_peer(peer)
        swarm.run(200)
        self.assertEqual(swarm.committed[:len(done)], done)
        self.assertEqual(swarm.committed, list(range(1, len(swarm.committed) + 1)))
        swarm.present.add(1)
        swarm.fetcher.note_tip(1, 100, claimed=True)
        swarm.run(3000)
        self.assertEqual(swarm.committed, list(range(1, 101)))


class Rules(unittest.TestCase):
    def test_requests_are_cut_into_batches_within_the_window_and_per_peer_bound(self):
        f = BlockFetcher(height=10, batch=4, window=12, per_peer=8)
        f.note_tip("a", 100, claimed=True)
        f.note_tip("b", 100, claimed=True)
        self.assertEqual(f.requests(0.0), [("a", 11, 4), ("b", 15, 4), ("a", 19, 4)])
        self.assertEqual(f.requests(0.0), [])  # the window is full
        self.assertEqual(f.in_flight(), 12)

    def test_a_request_is_cut_to_the_peers_tip(self):
        f = BlockFetcher(batch=16)
        f.note_tip("a", 5, claimed=True)
        self.assertEqual(f.requests(0.0), [("a", 1, 5)])

    def test_a_reply_short_of_the_claimed_tip_is_refused(self):
        f = BlockFetcher(batch=4)
        f.note_tip("old", 8, claimed=True)
        self.assertEqual(f.requests(0.0), [("old", 1, 4), ("old", 5, 4)])
        f.on_reply("old", [(1, "x"), (2, "x"), (3, "x"), (4, "x")], 0.1)
        with self.assertRaisesRegex(FetchError, "claimed tip 8"):
            f.on_reply("old", [(5, "x")], 0.2)

    def test_a_reply_cut_at_its_byte_bound_is_not_short(self):
        f = BlockFetcher(batch=4)
        f.note_tip("big", 4, claimed=True)
        self.assertEqual(f.requests(0.0), [("big", 1, 4)])
        f.on_reply("big", [(1, "x"), (2, "x")], 0.1, cut=True)
        self.assertEqual(f.best_height(), 4)  # its claim stands
        self.assertEqual(f.requests(0.2), [("big", 3, 2)])  # the rest, asked again
        # Cut with nothing in it: nothing served, owed.
        with self.assertRaisesRegex(FetchError, "claimed tip 4"):
            f.on_reply("big", [], 0.3, cut=True)

    def test_an_empty_reply_to_a_claimed_range_is_refused(self):
        f = BlockFetcher(batch=4)
        f.note_tip("old", 4, claimed=True)
        f.requests(0.0)
        self.assertTrue(f.expects("old", None))
        with self.assertRaises(FetchError):
            f.on_reply("old", [], 0.1)

    def test_a_short_reply_after_a_hint_only_lowers_the_tip(self):
        f = BlockFetcher(batch=4)
        f.note_tip("a", 4)  # heard from a vote, not claimed
        f.requests(0.0)
        f.on_reply("a", [(1, "x"), (2, "x")], 0.1)
        self.assertEqual(f.best_height(), 2)
        self.assertEqual(f.take(1), ("a", "x"))

    def test_wrong_heights_and_too_many_are_refused(self):
        f = BlockFetcher(batch=2)
        f.note_tip("a", 10, claimed=True)
        f.requests(0.0)
        with self.assertRaisesRegex(FetchError, "do not run"):
            f.on_reply("a", [(1, "x"), (3, "x")], 0.1)
        f.ban("a")
        f.note_tip("b", 10, claimed=True)
        f.note_tip("a", 10, claimed=True)  # banned: not scheduled again
        self.assertEqual([p for p, _, _ in f.requests(0.2)], ["b"] * 5)
        with self.assertRaisesRegex(FetchError, "3 blocks"):
            f.on_reply("b", [(1, "x"), (2, "x"), (3, "x")], 0.3)

    def test_a_timed_out_range_goes_to_another_peer_and_a_slow_peer_rests(self):
        f = BlockFetcher(batch=4, window=4, timeout=5.0, slow_after=2, rest=30.0)
        f.note_tip("slow", 4, claimed=True)
        self.assertEqual(f.requests(0.0), [("slow", 1, 4)])
        f.note_tip("fast", 4, claimed=True)
        self.assertEqual(f.requests(1.0), [])
        self.assertEqual(f.next_deadline(), 5.0)
        f.on_tick(5.0)
        self.assertEqual(f.requests(5.0), [("fast", 1, 4)])
        # The slow one timing out twice in a row is left out for a while.
        g = BlockFetcher(batch=4, window=4, timeout=5.0, slow_after=2, rest=30.0)
        g.note_tip("slow", 8, claimed=True)
        g.requests(0.0)
        g.on_tick(5.0)
        self.assertEqual(g.banned, set())
        self.assertEqual(g.requests(5.0), [("slow", 1, 4)])
        g.on_tick(10.0)
        self.assertEqual(g.requests(10.0), [])
        self.assertEqual(g.requests(40.0), [("slow", 1, 4)])
        self.assertEqual(g.banned, set())

    def test_take_hands_heights_over_in_order_only(self):
        f = BlockFetcher(batch=2)
        f.note_tip("a", 4, claimed=True)
        f.requests(0.0)
        f.on_reply("a", [(3, "c"), (4, "d")], 0.1)  # the second request first
        self.assertIsNone(f.take(3))
        self.assertIsNone(f.take(1))  # its request was freed: asked again
        self.assertEqual(f.requests(0.2), [("a", 1, 2)])
        f.on_reply("a", [(1, "a"), (2, "b")], 0.3)
        for height, entry in enumerate("abcd", 1):
            self.assertEqual(f.take(height), ("a", entry))
            f.set_height(height)
        self.assertEqual(f.held(), 0)

    def test_a_rejected_height_bans_its_supplier_and_is_fetched_again(self):
        f = BlockFetcher(batch=2)
        f.note_tip("liar", 4, claimed=True)
        f.note_tip("honest", 4, claimed=True)
        self.assertEqual(f.requests(0.0), [("honest", 1, 2), ("liar", 3, 2)])
        f.on_reply("liar", [(3, "bad"), (4, "bad")], 0.1)
        f.on_reply("honest", [(1, "a"), (2, "b")], 0.1)
        self.assertEqual(f.supplier(3), "liar")
        self.assertEqual(f.reject(3), "liar")
        self.assertEqual(f.banned, {"liar"})
        self.assertIsNone(f.supplier(4))  # everything it supplied is dropped
        self.assertEqual(f.requests(0.2), [("honest", 3, 2)])

    def test_a_peer_gone_frees_its_ranges_but_keeps_what_it_gave(self):
        f = BlockFetcher(batch=2)
        f.note_tip("a", 4, claimed=True)
        f.requests(0.0)
        f.on_reply("a", [(1, "x"), (2, "y")], 0.1)
        f.remove_peer("a")
        self.assertEqual(f.in_flight(), 0)
        self.assertEqual(f.take(1), ("a", "x"))
        f.note_tip("b", 4, claimed=True)
        self.assertEqual(f.requests(0.2), [("b", 3, 2)])

    def test_bad_bounds_are_refused(self):
        with self.assertRaises(ValueError):
            BlockFetcher(batch=0)
        with self.assertRaises(ValueError):
            BlockFetcher(batch=16, window=8)
