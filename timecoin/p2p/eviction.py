"""Which inbound connection makes room for a new one when every slot is taken.

After Bitcoin Core's ``AttemptToEvictConnection``: the candidates are the
inbound connections; some are protected, each set chosen by a property an
attacker finds hard to fake for many connections at once, and of those left
the youngest connection of the most crowded network group goes.

1. Never: a peer whose authenticated handshake key the host protects
   (a masternode that votes), and connections already closing.
2. A connection that has not completed its handshake is the first choice:
   the one silent longest, from the group with most such connections.
3. Otherwise protected, in turn: ``protect_by_group`` peers of distinct
   network groups (chosen by a hash keyed with a secret of this node, so an
   attacker cannot pick groups that win), ``protect_by_ping`` with the lowest
   ping, ``protect_by_useful`` that most recently sent a new transaction or a
   finality message, then the older half of the rest by connection time.
4. Of the rest, the group with most connections loses its youngest one
   (ties between groups: the group whose youngest connection is youngest).

No candidate left: the new connection is refused instead.

Network groups: an IPv4 address's /16; an IPv6 address's /32 (IPv4-mapped
IPv6 addresses count as IPv4); a loopback address is its own group, so that
connections from 127.0.0.2 and 127.0.0.3 (one /16) are told apart on one
machine.
"""

import hashlib
import ipaddress
import os
from collections import defaultdict
from dataclasses import dataclass


def network_group(ip):
    """The network group of the text address ``ip`` (see the module docstring)."""
    if ip is None:
        return "?"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return str(address)
    prefix = 16 if address.version == 4 else 32
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


@dataclass
class Candidate:
    """What eviction knows of one inbound connection."""

    peer_id: int
    group: str
    connected_at: float
    ready: bool
    ping_ms: float = None
    last_useful: float = None


class Evictor:
    """Chooses the connection to evict (see the module docstring)."""

    def __init__(self, config, secret=None):
        self._config = config
        self._secret = secret if secret is not None else os.urandom(16)

    def _keyed(self, group):
        return hashlib.blake2b(group.encode(), key=self._secret, digest_size=8).digest()

    def select(self, candidates):
        """The ``peer_id`` to evict from ``candidates`` (unprotected ones), or None."""
        config = self._config
        silent = [c for c in candidates if not c.ready]
        if silent:
            return _from_largest_group(silent, oldest=True).peer_id
        left = list(candidates)
        left = _protect(left, _distinct_groups(left, self._keyed), config.protect_by_group)
        left = _protect(left, sorted(
            (c for c in left if c.ping_ms is not None), key=lambda c: c.ping_ms),
            config.protect_by_ping)
        left = _protect(left, sorted(
            (c for c in left if c.last_useful is not None), key=lambda c: -c.last_useful),
            config.protect_by_useful)
        by_age = sorted(left, key=lambda c: c.connected_at)
        left = _protect(left, by_age, len(by_age) // 2)
        if not left:
            return None
        return _from_largest_group(left, oldest=False).peer_id


def _protect(candidates, ranked, count):
    """``candidates`` without the first ``count`` of ``ranked``."""
    protected = {c.peer_id for c in ranked[:count]}
    return [c for c in candidates if c.peer_id not in protected]


def _distinct_groups(candidates, keyed):
    """One candidate per group, the groups ordered by their keyed hash."""
    first = {}
    for c in sorted(candidates, key=lambda c: c.connected_at):
        first.setdefault(c.group, c)
    return [first[g] for g in sorted(first, key=keyed)]


def _from_largest_group(candidates, oldest):
    """The youngest (or oldest) candidate of the group with most candidates."""
    groups = defaultdict(list)
    for c in candidates:
        groups[c.group].append(c)
    biggest = max(groups.values(),
                  key=lambda members: (len(members), max(m.connected_at for m in members)))
    pick = min if oldest else max
    return pick(biggest, key=lambda c: c.connected_at)
