"""Bans by IP address, persisted in the ``bans`` table, growing with repeat offences.

Loopback and private addresses are bannable like any other (a node behind a
local proxy should not misbehave either); ``set_ban(address, remove=True)``
lifts a ban by hand.
"""

import ipaddress
import math

from twisted.logger import Logger


class BanList:
    """The banned addresses: in memory for lookups, written through ``run_db``.

    ``clock`` gives wall-clock time (``seconds()``), because bans outlive the
    process. A ban's row stays after it expires so the next offence of the
    same address is punished longer: ``base * 2 ** (offences - 1)`` seconds,
    at most ``maximum``.
    """

    log = Logger()

    def __init__(self, clock, run_db, base, maximum):
        self._clock = clock
        self._run_db = run_db
        self._base = base
        self._maximum = maximum
        self._entries = {}  # address -> (until, offences, reason)

    def load(self):
        """Read the table; a Deferred firing once the list is usable."""
        def read(conn):
            return conn.execute("SELECT address, until, offences, reason FROM bans").fetchall()

        def loaded(rows):
            damaged = []
            for address, until, offences, reason in rows:
                problem = _row_problem(address, until, offences, reason)
                if problem is None:
                    self._entries[address] = (float(until), offences, reason)
                else:
                    damaged.append(address)
                    self.log.warn("bans table: dropped the row of {address!r}: {problem}",
                                  address=address, problem=problem)
            if not damaged:
                return len(rows)
            return self._run_db(lambda conn: drop(conn, damaged)).addCallback(
                lambda _: len(rows) - len(damaged))

        def drop(conn, addresses):
            conn.executemany("DELETE FROM bans WHERE address IS ?", [(a,) for a in addresses])
            conn.commit()

        return self._run_db(read).addCallback(loaded)

    def is_banned(self, address):
        entry = self._entries.get(address)
        return entry is not None and entry[0] > self._clock.seconds()

    def ban(self, address, reason, seconds=None):
        """Ban ``address``; without ``seconds`` the duration grows with each offence."""
        now = self._clock.seconds()
        _, offences, _ = self._entries.get(address, (0.0, 0, ""))
        offences += 1
        if seconds is None:
            seconds = min(self._maximum, self._base * 2 ** min(offences - 1, 32))
        until = now + seconds
        self._entries[address] = (until, offences, reason)
        self.log.info("banned {address} for {seconds:.0f} s: {reason}", address=address,
                      seconds=seconds, reason=reason)

        def write(conn):
            conn.execute("INSERT OR REPLACE INTO bans (address, until, offences, reason) "
                         "VALUES (?, ?, ?, ?)", (address, until, offences, reason))
            conn.commit()

        return self._run_db(write)

    def unban(self, address):
        self._entries.pop(address, None)

        def write(conn):
            conn.execute("DELETE FROM bans WHERE address = ?", (address,))
            conn.commit()

        return self._run_db(write)

    def clear(self):
        self._entries.clear()

        def write(conn):
            conn.execute("DELETE FROM bans")
            conn.commit()

        return self._run_db(write)

    def active(self):
        """Current bans, as ``listbanned`` returns them."""
        now = self._clock.seconds()
        return [
            {"address": address, "banned_until": until, "time_remaining": until - now,
             "offences": offences, "reason": reason}
            for address, (until, offences, reason) in sorted(self._entries.items())
            if until > now
        ]


def _row_problem(address, until, offences, reason):
    """Why a stored ban cannot be used (written by an older version, or damaged), or None."""
    try:
        if not isinstance(address, str):
            raise ValueError(address)
        ipaddress.ip_address(address)
    except ValueError:
        return "the address is not an IP address"
    if isinstance(until, bool) or not isinstance(until, int | float) or not math.isfinite(until):
        return "its end is not a finite time"
    if isinstance(offences, bool) or not isinstance(offences, int) or offences < 0:
        return "its offence count is not a count"
    if not isinstance(reason, str):
        return "its reason is not text"
    return None
