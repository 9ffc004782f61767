"""Small bounded containers used by the peer network.

Eviction is O(1): ``next(iter(d))`` on a dict whose front was deleted from
scans every deleted slot (until the next resize), which made a full set
quadratic.
"""

from collections import OrderedDict, deque


class BoundedSet:
    """A set that forgets its oldest members beyond ``capacity``."""

    __slots__ = ("_items", "_order", "capacity")

    def __init__(self, capacity):
        self.capacity = capacity
        self._items = set()
        self._order = deque()

    def add(self, item):
        items = self._items
        if item in items:
            return
        items.add(item)
        self._order.append(item)
        if len(items) > self.capacity:
            items.discard(self._order.popleft())

    def update(self, items):
        """Add every member of ``items`` (a batch: set operations in C, no
        Python work per member but for the eviction of the oldest)."""
        fresh = set(items)
        fresh -= self._items
        if not fresh:
            return
        self._items |= fresh
        order = self._order
        order.extend(fresh)
        excess = len(order) - self.capacity
        if excess > 0:
            popleft = order.popleft
            self._items.difference_update([popleft() for _ in range(excess)])

    def __contains__(self, item):
        return item in self._items

    def __len__(self):
        return len(self._items)


class BoundedDict(OrderedDict):
    """A mapping that forgets its oldest entries beyond ``capacity``.

    Lookups are the C ones of :class:`OrderedDict`; only storing is Python.
    """

    def __init__(self, capacity):
        super().__init__()
        self.capacity = capacity

    def __setitem__(self, key, value):
        OrderedDict.__setitem__(self, key, value)
        self.move_to_end(key)
        while len(self) > self.capacity:
            self.popitem(last=False)


def format_address(address):
    """``host:port`` (``[host]:port`` for IPv6) of a Twisted address, or ``?``."""
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is None:
        return "?"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
