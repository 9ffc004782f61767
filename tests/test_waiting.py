"""The polling helper of the tests, on a task.Clock."""

from twisted.internet import defer, task
from twisted.trial import unittest

from timecoin.testing.waiting import poll, wait_until


class WaitUntilTests(unittest.TestCase):
    def setUp(self):
        self.clock = task.Clock()

    def test_true_at_once_fires_at_once(self):
        d = wait_until(self.clock, lambda: True)
        self.assertIsNone(self.successResultOf(d))

    def test_fires_on_the_first_check_after_the_condition_holds(self):
        state = {"done": False}
        d = wait_until(self.clock, lambda: state["done"], timeout=5, interval=0.5)
        self.clock.advance(0.5)
        self.assertNoResult(d)
        state["done"] = True
        self.clock.advance(0.4)
        self.assertNoResult(d)  # checked only on the clock's timers
        self.clock.advance(0.1)
        self.successResultOf(d)

    def test_fails_after_the_timeout(self):
        d = wait_until(self.clock, lambda: False, timeout=2, interval=0.5)
        self.clock.pump([0.5] * 4)
        self.assertNoResult(d)
        self.clock.advance(0.5)
        failure = self.failureResultOf(d, AssertionError)
        self.assertIn("within 2s", str(failure.value))


class PollTests(unittest.TestCase):
    def setUp(self):
        self.clock = task.Clock()

    def test_fires_with_the_first_accepted_value(self):
        values = iter([[], [], ["peer"], ["other"]])
        d = poll(self.clock, lambda: next(values), interval=1)
        self.clock.pump([1, 1])
        self.assertEqual(self.successResultOf(d), ["peer"])

    def test_fires_with_the_last_value_at_the_timeout(self):
        calls = []
        d = poll(self.clock, lambda: calls.append(1) or len(calls), lambda n: n > 100,
                 timeout=3, interval=1)
        self.clock.pump([1] * 3)
        self.assertNoResult(d)
        self.clock.advance(1)
        self.assertEqual(self.successResultOf(d), 5)

    def test_deferred_probes_are_waited_for(self):
        pending = []

        def probe():
            pending.append(defer.Deferred())
            return pending[-1]

        d = poll(self.clock, probe, lambda v: v == "yes", interval=1)
        pending[0].callback("no")
        self.clock.advance(1)
        self.assertNoResult(d)
        self.assertEqual(len(pending), 2)
        pending[1].callback("yes")
        self.assertEqual(self.successResultOf(d), "yes")
