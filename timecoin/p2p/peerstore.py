"""Known peer addresses, persisted in the ``peers`` table."""

from timecoin.p2p.messages import PeerAddress


def split_host_port(text):
    """``(host, port)`` of ``HOST:PORT`` or ``[V6HOST]:PORT``; ValueError if malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    number = int(port)
    if not 0 < number < 65536:
        raise ValueError(f"port out of range in {text!r}")
    return host, number


def join_host_port(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class PeerStore:
    """Addresses heard of (seeds, addr messages, peers' listening ports).

    Bounded to ``capacity`` entries: the least recently seen are forgotten.
    """

    def __init__(self, clock, run_db, capacity):
        self._clock = clock
        self._run_db = run_db
        self._capacity = capacity
        self._last_seen = {}

    def load(self):
        def read(conn):
            return conn.execute(
                "SELECT address, last_seen FROM peers ORDER BY last_seen DESC LIMIT ?",
                (self._capacity,)).fetchall()

        def loaded(rows):
            self._last_seen.update(rows)
            return len(rows)

        return self._run_db(read).addCallback(loaded)

    def __len__(self):
        return len(self._last_seen)

    def __contains__(self, address):
        return address in self._last_seen

    def add(self, entries):
        """Record ``(address, last_seen)`` pairs (one database write)."""
        entries = [(a, t) for a, t in entries if t >= self._last_seen.get(a, -1)]
        if not entries:
            return None
        for address, seen in entries:
            self._last_seen[address] = seen
        evicted = []
        if len(self._last_seen) > self._capacity:
            ordered = sorted(self._last_seen, key=self._last_seen.get)
            evicted = ordered[:len(self._last_seen) - self._capacity]
            for address in evicted:
                del self._last_seen[address]

        def write(conn):
            conn.executemany(
                "INSERT INTO peers (address, last_seen) VALUES (?, ?) ON CONFLICT(address) "
                "DO UPDATE SET last_seen = MAX(last_seen, excluded.last_seen)", entries)
            conn.executemany("DELETE FROM peers WHERE address = ?", [(a,) for a in evicted])
            conn.commit()

        return self._run_db(write)

    def connected(self, address):
        """A handshake with ``address`` succeeded."""
        now = self._clock.seconds()
        self._last_seen[address] = now

        def write(conn):
            conn.execute(
                "INSERT INTO peers (address, last_seen, last_success, failures) "
                "VALUES (?, ?, ?, 0) ON CONFLICT(address) DO UPDATE SET "
                "last_seen = excluded.last_seen, last_success = excluded.last_success, "
                "failures = 0", (address, now, now))
            conn.commit()

        return self._run_db(write)

    def failed(self, address):
        """A connection attempt to ``address`` failed."""
        def write(conn):
            conn.execute("UPDATE peers SET failures = failures + 1 WHERE address = ?",
                         (address,))
            conn.commit()

        return self._run_db(write)

    def sample(self, limit, exclude=()):
        """Up to ``limit`` addresses, most recently seen first, as addr entries."""
        out = []
        for address in sorted(self._last_seen, key=self._last_seen.get, reverse=True):
            if address in exclude:
                continue
            try:
                host, port = split_host_port(address)
            except ValueError:
                continue
            out.append(PeerAddress(host, port, int(self._last_seen[address])))
            if len(out) >= limit:
                break
        return out
