"""The pure parts of ``timecoin bench``: fan-out planning, signing, rate schedule,
percentiles.

Load transactions each spend one small output, pay :data:`LOAD_FEE` and have
one output (to :func:`sink_key`). The small outputs come from *fan-outs*:
transactions splitting one larger output of a development key into up to
:data:`PER_FANOUT` outputs of that key (plus change). When one level of
fan-outs from the available keys is not enough, a second level fans out the
outputs of the first (see :func:`fanout_levels`).
"""

import math
from dataclasses import dataclass

from timecoin.ledger.genesis import DEVNET_FUNDED_KEYS
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.tx import OutPoint, sign_transfer

#: The statuses that mean a transaction was accepted for good: finalized, and
#: finalized then checkpointed by a block.
ACCEPTED = ("finalized", "confirmed")

PER_FANOUT = 400
LOAD_FEE = 10_000
LOAD_AMOUNT = 1_000_000
FANOUT_FEE = 100_000
MAX_TXS = 200_000
#: Development keys below this may be masternodes of a local devnet.
FIRST_KEY = 10


def sink_key():
    """The key every load transaction pays (not funded by any genesis)."""
    return PrivateKey.devnet(DEVNET_FUNDED_KEYS)


def total_txs(rate, seconds, cap=MAX_TXS):
    """Load transactions of a run: ``rate × seconds``, at most ``cap``."""
    return max(0, min(cap, int(round(rate * seconds))))


def due(rate, elapsed, total):
    """How many transactions are due ``elapsed`` seconds into a run at ``rate``."""
    if elapsed <= 0:
        return 0
    return min(total, int(math.floor(rate * elapsed + 1e-9)))


def fanout_levels(count, sources, per_tx=PER_FANOUT):
    """Fan-out transactions per level, first level first, to make ``count``
    outputs from ``sources`` spendable outputs (each first-level tx spends one)."""
    if count <= 0:
        return []
    if sources < 1:
        raise ValueError("no spendable output to fan out")
    levels, need = [], count
    while True:
        txs = -(-need // per_tx)
        levels.insert(0, txs)
        if txs <= sources:
            return levels
        need = txs


def split(total, parts):
    """``total`` items over ``parts`` bins as evenly as possible (larger first)."""
    q, r = divmod(total, parts)
    return [q + (1 if i < r else 0) for i in range(parts)]


@dataclass(frozen=True)
class Coin:
    """A spendable output and the key owning it."""

    key: PrivateKey
    outpoint: OutPoint
    amount: int


def _level_amount(levels_below, per_tx):
    """The amount of each output of a level with ``levels_below`` levels after it."""
    amount = LOAD_AMOUNT
    for _ in range(levels_below):
        amount = amount * per_tx + FANOUT_FEE
    return amount


def build_fanouts(coins, count, network_id, per_tx=PER_FANOUT):
    """Sign the fan-outs making ``count`` load outputs from ``coins``.

    Returns ``(levels, outputs)``: a list of lists of transactions (each level
    spends outputs of the one before) and the ``count`` :class:`Coin`\\ s made.
    Raises ``ValueError`` if the coins do not cover it.
    """
    plan = fanout_levels(count, len(coins), per_tx)
    levels, targets = [], []
    for depth, n_txs in enumerate(plan):
        below = len(plan) - depth - 1
        want = count if below == 0 else plan[depth + 1]
        targets.append((n_txs, want, _level_amount(below, per_tx)))
    current = list(coins)
    for n_txs, want, amount in targets:
        txs, made = [], []
        for coin, n_out in zip(current[:n_txs], split(want, n_txs), strict=True):
            change = coin.amount - n_out * amount - FANOUT_FEE
            if change < 0:
                raise ValueError(f"output {coin.outpoint} holds too little to fan out")
            outputs = [(amount, coin.key.key_hash)] * n_out
            if change > 0:
                outputs.append((change, coin.key.key_hash))
            tx = sign_transfer(coin.key, [coin.outpoint], outputs, network_id)
            txs.append(tx)
            made += [Coin(coin.key, OutPoint(tx.txid, v), amount) for v in range(n_out)]
        levels.append(txs)
        current = made
    return levels, current


def sign_loads(coins, network_id):
    """One signed load transaction per coin: all of it less :data:`LOAD_FEE` to the sink."""
    sink = sink_key().key_hash
    return [sign_transfer(c.key, [c.outpoint], [(c.amount - LOAD_FEE, sink)], network_id)
            for c in coins]


def percentile(values, p):
    """The ``p``-th percentile (0..100) of ``values``, nearest-rank; ``None`` if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarize(values):
    """``{count, mean, p50, p95, p99, max}`` of ``values`` (milliseconds)."""
    if not values:
        return {"count": 0, "mean": None, "p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(values)
    return {"count": len(ordered), "mean": round(sum(ordered) / len(ordered), 2),
            "p50": round(percentile(ordered, 50), 2), "p95": round(percentile(ordered, 95), 2),
            "p99": round(percentile(ordered, 99), 2), "max": round(ordered[-1], 2)}


def parse_metrics(text, names):
    """Values of the un-labelled samples ``names`` in Prometheus text ``text``."""
    found = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(" ")
        if name in names:
            try:
                found[name] = float(rest.split()[0])
            except (ValueError, IndexError):
                pass
    return found


#: The handler CPU metric and the message kinds of the block service.
HANDLER_CPU = "timecoin_p2p_handler_cpu_seconds_total"
BLOCK_KINDS = ("block_proposal", "block_prevote", "block_precommit", "getblocks", "blocks",
               "evidence")


def block_handler_cpu(text):
    """Seconds of reactor CPU the node at the other end of ``text`` (its
    ``/metrics``) spent handling the block service's messages (None if the
    metric is absent)."""
    total, seen = 0.0, False
    prefix = HANDLER_CPU + "{"
    for line in text.splitlines():
        if not line.startswith(prefix):
            continue
        labels, _, value = line[len(prefix):].partition("} ")
        kinds = [part.split("=", 1)[1].strip('"') for part in labels.split(",")
                 if part.startswith("kind=")]
        if kinds and kinds[0] in BLOCK_KINDS:
            try:
                total += float(value.split()[0])
                seen = True
            except (ValueError, IndexError):
                pass
    return total if seen else None
