"""Items that expire at deadlines, with one timer for all of them.

Shared by the node's ``waitfortransaction`` waiters and the Snowball queries
held by the finality components: each schedules items with a timeout; an item
already done (answered, woken) when its deadline comes is skipped. Time comes
from the injected clock (an ``IReactorTime``: the reactor or a ``task.Clock``).
"""

import heapq
import itertools

from zope.interface import implementer

from timecoin.interfaces import IDeadlines


@implementer(IDeadlines)
class Deadlines:
    """A heap of ``(deadline, n, item)`` and one timer on ``clock``.

    ``expire(item)`` is called once for each item whose deadline passed while
    ``is_done(item)`` was false.
    """

    def __init__(self, clock, expire, is_done):
        self._clock = clock
        self._expire_item = expire
        self._is_done = is_done
        self._heap = []
        self._order = itertools.count()
        self._timer = None

    def schedule(self, timeout, item):
        deadline = self._clock.seconds() + timeout
        heapq.heappush(self._heap, (deadline, next(self._order), item))
        if self._timer is None or self._timer.getTime() > deadline:
            self._arm(deadline)

    def pending(self):
        is_done = self._is_done
        return sum(1 for _, _, item in self._heap if not is_done(item))

    def _arm(self, deadline):
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = self._clock.callLater(max(0.0, deadline - self._clock.seconds()),
                                            self._expire)

    def _expire(self):
        self._timer = None
        now = self._clock.seconds()
        heap, is_done = self._heap, self._is_done
        while heap and (heap[0][0] <= now or is_done(heap[0][2])):
            _, _, item = heapq.heappop(heap)
            if not is_done(item):
                self._expire_item(item)
        if heap:
            self._arm(heap[0][0])

    def stop(self):
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
