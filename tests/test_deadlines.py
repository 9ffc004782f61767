"""The deadline helper shared by waiters and held queries."""

from twisted.internet.task import Clock
from twisted.trial import unittest

from timecoin.finality.deadlines import Deadlines


class DeadlinesTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.expired, self.done = [], set()
        self.deadlines = Deadlines(self.clock, self.expired.append, self.done.__contains__)

    def test_items_expire_in_deadline_order_on_one_timer(self):
        self.deadlines.schedule(5, "late")
        self.deadlines.schedule(1, "early")
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(1)
        self.assertEqual(self.expired, ["early"])
        self.assertEqual(self.deadlines.pending(), 1)
        self.clock.advance(4)
        self.assertEqual(self.expired, ["early", "late"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_done_items_are_skipped(self):
        self.deadlines.schedule(1, "answered")
        self.deadlines.schedule(2, "open")
        self.done.add("answered")
        self.assertEqual(self.deadlines.pending(), 1)
        self.clock.advance(2)
        self.assertEqual(self.expired, ["open"])

    def test_stop_cancels_the_timer(self):
        self.deadlines.schedule(1, "x")
        self.deadlines.stop()
        self.clock.advance(5)
        self.assertEqual(self.expired, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])
