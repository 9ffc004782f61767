"""Small bounded containers used by the peer network."""


class BoundedSet:
    """A set that forgets its oldest members beyond ``capacity``."""

    __slots__ = ("_items", "capacity")

    def __init__(self, capacity):
        self.capacity = capacity
        self._items = {}

    def add(self, item):
        items = self._items
        if item in items:
            return
        items[item] = None
        if len(items) > self.capacity:
            del items[next(iter(items))]

    def __contains__(self, item):
        return item in self._items

    def __len__(self):
        return len(self._items)


class BoundedDict:
    """A mapping that forgets its oldest entries beyond ``capacity``."""

    __slots__ = ("_items", "capacity")

    def __init__(self, capacity):
        self.capacity = capacity
        self._items = {}

    def __setitem__(self, key, value):
        items = self._items
        items.pop(key, None)
        items[key] = value
        while len(items) > self.capacity:
            del items[next(iter(items))]

    def get(self, key, default=None):
        return self._items.get(key, default)

    def pop(self, key, default=None):
        return self._items.pop(key, default)

    def __contains__(self, key):
        return key in self._items

    def __len__(self):
        return len(self._items)

    def items(self):
        return list(self._items.items())


def format_address(address):
    """``host:port`` (``[host]:port`` for IPv6) of a Twisted address, or ``?``."""
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is None:
        return "?"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
