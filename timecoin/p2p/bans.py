"""Bans by IP address, persisted in the ``bans`` table, growing with repeat offences.

Loopback and private addresses are bannable like any other (a node behind a
local proxy should not misbehave either); ``set_ban(address, remove=True)``
lifts a ban by hand.
"""

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
            for address, until, offences, reason in rows:
                self._entries[address] = (until, offences, reason)
            return len(rows)

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
