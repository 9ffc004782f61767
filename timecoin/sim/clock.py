"""One simulated clock for every node: a ``task.Clock`` with an event heap.

``task.Clock`` sorts its whole list of calls on every ``callLater`` and runs
every due call at the *end* time of an ``advance``. The simulator schedules
one call per message in flight, so :class:`SimClock` keeps a heap instead, and
``advance`` steps through events in time order, setting the time to each
event's own time before running it (a message sent with 30 ms of latency is
received 30 ms later, whatever the step). Calls due at the same time run in
the order they were scheduled.

Frames in flight do not need what a ``DelayedCall`` offers (they are never
cancelled, reset or delayed): :meth:`SimClock.call_at` pushes a bare
``(function, args)`` event on the same heap, in the same order, without
building one.
"""

import heapq
import itertools

from twisted.internet.base import DelayedCall
from twisted.internet.task import Clock


class SimClock(Clock):
    """A ``task.Clock`` (``IReactorTime``) with heap scheduling and event stepping."""

    def __init__(self, start=0.0):  # noqa: D107 - task.Clock's list of calls is not used
        self.rightNow = float(start)
        self._heap = []  # (time, seq, DelayedCall or None, function, args)
        self._seq = itertools.count()
        self.events_run = 0

    @property
    def calls(self):
        """The pending calls, soonest first (``task.Clock`` compatible)."""
        return sorted((dc for at, _, dc, _f, _a in self._heap
                       if dc is not None and self._live(dc) and at == dc.time),
                      key=lambda dc: dc.getTime())

    @staticmethod
    def _live(dc):
        return not (dc.cancelled or dc.called)

    def _push(self, dc):
        heapq.heappush(self._heap, (dc.time, next(self._seq), dc, None, None))

    def _cancelled(self, dc):
        # Left in the heap; skipped when it comes up.
        pass

    def callLater(self, delay, callable, *args, **kw):
        dc = DelayedCall(self.rightNow + delay, callable, args, kw, self._cancelled,
                         self._push, self.seconds)
        self._push(dc)
        return dc

    def call_at(self, at, function, *args):
        """Run ``function(*args)`` at simulated time ``at`` (not before now);
        nothing is returned: the call cannot be cancelled."""
        heapq.heappush(self._heap, (max(at, self.rightNow), next(self._seq), None, function,
                                    args))

    def getDelayedCalls(self):
        return self.calls

    def next_event_time(self):
        """The time of the next pending call, or None."""
        heap = self._heap
        while heap:
            at, _, dc, _f, _a = heap[0]
            if dc is None:
                return at
            if not self._live(dc) or at != dc.time:
                heapq.heappop(heap)
                continue
            if dc.delayed_time:
                heapq.heappop(heap)
                dc.activate_delay()
                self._push(dc)
                continue
            return at
        return None

    def step(self):
        """Run every call due at the next event time; False if nothing is pending."""
        at = self.next_event_time()
        if at is None:
            return False
        self.rightNow = max(self.rightNow, at)
        heap = self._heap
        while heap and heap[0][0] <= at:
            when, _, dc, function, args = heapq.heappop(heap)
            if dc is None:
                self.events_run += 1
                function(*args)
                continue
            if not self._live(dc) or when != dc.time:
                continue
            if dc.delayed_time:
                dc.activate_delay()
                self._push(dc)
                continue
            dc.called = 1
            self.events_run += 1
            dc.func(*dc.args, **dc.kw)
        return True

    def advance(self, amount):
        """Run the calls due within ``amount`` seconds, each at its own time."""
        self.run_until(self.rightNow + amount)

    def run_until(self, deadline, predicate=None):
        """Step until ``deadline`` (simulated seconds), or until ``predicate()``
        is true after a step; True if the predicate held (or none was given)."""
        while True:
            if predicate is not None and predicate():
                return True
            at = self.next_event_time()
            if at is None or at > deadline:
                self.rightNow = max(self.rightNow, deadline)
                return predicate is None or bool(predicate())
            self.step()
