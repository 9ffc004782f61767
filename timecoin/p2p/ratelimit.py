"""Token buckets per peer: one per message kind, and one for announced txids.

The message buckets count messages: one ``inv`` of 1,000 txids costs what one
of a single txid costs. The txid budget (:meth:`PeerRateLimits.take_txids`)
counts the txids themselves, at ``inv_txid_rate`` a second with a burst of
twice that; announcements beyond it are dropped (and counted by the relay),
never requested, and cost no more than the decoding of their message, and
the connection stops reading until the budget has refilled for a full
``inv`` (:meth:`~timecoin.p2p.protocol.PeerProtocol.hold_receiving`), so
TCP pushes the rest of a flood back to its sender. It drops rather than
bans: the message bucket of ``inv`` (``rate_limit_tx``, burst 2x) stays the
hard bound a peer is banned beyond.
"""

from timecoin.p2p import messages as m

#: What happens when a bucket is empty: the peer is banned, or the message dropped.
BAN = "ban"
DROP = "drop"


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``; starts full.

    ``action`` is what :class:`PeerRateLimits` reports when it is empty.
    """

    __slots__ = ("rate", "burst", "tokens", "stamp", "action")

    def __init__(self, rate, burst, now, action=BAN):
        self.rate = float(rate)
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = now
        self.action = action

    def take(self, now, cost=1.0):
        """Spend ``cost`` tokens; False (spending nothing) if there are not enough."""
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False


_BLOCK_KINDS = (m.BLOCK_PROPOSAL, m.BLOCK_PREVOTE, m.BLOCK_PRECOMMIT, m.GETBLOCKS, m.BLOCKS,
                m.EVIDENCE, m.BLOCK_TIP, m.SNAPSHOT, m.GET_SNAPSHOT, m.SNAPSHOT_OFFER,
                m.GET_SNAPSHOT_CHUNK, m.SNAPSHOT_CHUNK)
_TX_KINDS = (m.TX, m.INV, m.GETDATA)


def bucket_spec(kind, config):
    """``(rate per second, burst, action)`` for messages of ``kind``."""
    if kind in _TX_KINDS:
        return config.rate_limit_tx, 2 * config.rate_limit_tx, BAN
    if kind in _BLOCK_KINDS:
        return config.rate_limit_blocks, 2 * config.rate_limit_blocks, BAN
    if kind in (m.PING, m.PONG):
        return config.rate_limit_ping, 4 * config.rate_limit_ping, BAN
    if kind in (m.GETADDR, m.ADDR):
        return 1 / 30, 3, DROP
    if kind in (m.HELLO, m.AUTH):
        return 1, 4, BAN
    # Finality and subscription traffic scales with the transaction rate.
    return 2 * config.rate_limit_tx, 4 * config.rate_limit_tx, BAN


class PeerRateLimits:
    """The buckets of one peer, created on first use of each kind."""

    __slots__ = ("_config", "_buckets", "_txids")

    def __init__(self, config):
        self._config = config
        self._buckets = {}
        self._txids = None

    def take_txids(self, now, count):
        """How many of ``count`` announced txids the peer's txid budget allows
        now (the first ones; the rest are to be dropped)."""
        bucket = self._txids
        if bucket is None:
            rate = self._config.inv_txid_rate
            bucket = self._txids = TokenBucket(rate, 2 * rate, now, DROP)
        if bucket.take(now, count):
            return count
        allowed = int(bucket.tokens)
        bucket.tokens -= allowed
        return allowed

    def txid_refill_time(self, count):
        """Seconds until the txid budget holds ``count`` txids again (0 if it does)."""
        bucket = self._txids
        if bucket is None or bucket.tokens >= count:
            return 0.0
        return (count - bucket.tokens) / bucket.rate

    def check(self, kind, now, cost=1.0):
        """None if allowed, else the action to take (:data:`BAN` or :data:`DROP`)."""
        bucket = self._buckets.get(kind)
        if bucket is None:
            rate, burst, action = bucket_spec(kind, self._config)
            bucket = self._buckets[kind] = TokenBucket(rate, burst, now, action)
        # TokenBucket.take, inlined: this runs for every message received.
        if now > bucket.stamp:
            tokens = bucket.tokens + (now - bucket.stamp) * bucket.rate
            bucket.tokens = tokens if tokens < bucket.burst else bucket.burst
            bucket.stamp = now
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return None
        return bucket.action
