"""Token buckets per peer and message kind."""

from timecoin.p2p import messages as m

#: What happens when a bucket is empty: the peer is banned, or the message dropped.
BAN = "ban"
DROP = "drop"


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``; starts full."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate, burst, now):
        self.rate = float(rate)
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = now

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
                m.SNAPSHOT)
_TX_KINDS = (m.TX, m.INV, m.GETDATA)


def bucket_spec(kind, config):
    """``(rate per second, burst, action)`` for messages of ``kind``."""
    if kind in _TX_KINDS:
        return config.rate_limit_tx, 2 * config.rate_limit_tx, BAN
    if kind in _BLOCK_KINDS:
        return config.rate_limit_blocks, 2 * config.rate_limit_blocks, BAN
    if kind in (m.PING, m.PONG):
        return 5, 20, BAN
    if kind in (m.GETADDR, m.ADDR):
        return 1 / 30, 3, DROP
    if kind in (m.HELLO, m.AUTH):
        return 1, 4, BAN
    # Finality and subscription traffic scales with the transaction rate.
    return 2 * config.rate_limit_tx, 4 * config.rate_limit_tx, BAN


class PeerRateLimits:
    """The buckets of one peer, created on first use of each kind."""

    def __init__(self, config):
        self._config = config
        self._buckets = {}

    def check(self, kind, now, cost=1.0):
        """None if allowed, else the action to take (:data:`BAN` or :data:`DROP`)."""
        entry = self._buckets.get(kind)
        if entry is None:
            rate, burst, action = bucket_spec(kind, self._config)
            entry = self._buckets[kind] = (TokenBucket(rate, burst, now), action)
        bucket, action = entry
        return None if bucket.take(now, cost) else action
