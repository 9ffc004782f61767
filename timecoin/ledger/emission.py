"""The emission schedule and each block's reward transaction.

New coins are created only by blocks. The schedule is defined in **time**,
not in heights, so every network emits the same amount per year whatever its
block interval (devnet 2 s, testnet 60 s, mainnet 600 s):

* the first era emits ``YEARLY_EMISSION`` (1,000,000 TIME) a year for
  ``ERA_YEARS`` (4) years, each later era half the one before;
* a block's reward is ``YEARLY_EMISSION * block_interval / YEAR_S`` units,
  rounded down, halved (a right shift) once per era elapsed by its height
  (``height * block_interval`` seconds after the genesis).

The whole emission is below ``2 * ERA_YEARS * YEARLY_EMISSION`` = 8 million
TIME, so with the largest genesis (devnet's 10 million, testnet's 10 million)
the supply stays below ``MAX_SUPPLY`` (21 million): :func:`total_emission`
computes the exact figure and the tests check the bound on every network.
Rationale in doc/blocks.md.

A block's reward transaction (``KIND_BLOCK_REWARD``) has no inputs; its
payload is the block height (so each block's is a distinct transaction), and
its outputs pay the reward plus the fees of the block's transactions to the
reward addresses of the active set, in proportion to weight
(:func:`split_by_weight`).
"""

import struct

from timecoin.ledger.networks import COIN, MAX_SUPPLY
from timecoin.ledger.tx import KIND_BLOCK_REWARD, Transaction, TxOut

YEAR_S = 31_557_600  # 365.25 days
YEARLY_EMISSION = 1_000_000 * COIN
ERA_YEARS = 4
ERA_S = ERA_YEARS * YEAR_S
_HEIGHT = struct.Struct("<Q")


def base_reward(network):
    """The first era's reward per block on ``network``, in units."""
    return YEARLY_EMISSION * network.block_interval_s // YEAR_S


def block_reward(network, height):
    """The new coins block ``height`` (>= 1) creates on ``network``."""
    if height < 1:
        return 0
    era = height * network.block_interval_s // ERA_S
    return base_reward(network) >> era if era < 64 else 0


def total_emission(network):
    """Every unit the schedule ever creates on ``network`` (exact)."""
    interval = network.block_interval_s
    total, era, reward = 0, 0, base_reward(network)
    while reward:
        # The heights h >= 1 with era * ERA_S <= h * interval < (era + 1) * ERA_S.
        first = max(1, -(-era * ERA_S // interval))
        last = ((era + 1) * ERA_S - 1) // interval
        total += (last - first + 1) * reward
        era += 1
        reward = base_reward(network) >> era
    return total


def split_by_weight(amount, recipients):
    """``amount`` split over ``recipients`` (``[(key_hash, weight)]``) in
    proportion to weight: ``[(key_hash, units)]`` summing to ``amount``.

    Each gets ``amount * weight // total``; the units left by rounding go one
    each to the largest weights (ties: the smaller key hash). Recipients sharing
    a key hash are paid in one output; zero shares are left out.
    """
    merged = {}
    for key_hash, weight in recipients:
        if weight > 0:
            merged[key_hash] = merged.get(key_hash, 0) + weight
    total = sum(merged.values())
    if amount <= 0 or total == 0:
        return []
    order = sorted(merged, key=lambda k: (-merged[k], k))
    shares = {k: amount * merged[k] // total for k in order}
    left = amount - sum(shares.values())
    for k in order[:left]:
        shares[k] += 1
    return [(k, shares[k]) for k in sorted(shares) if shares[k] > 0]


def reward_transaction(network, height, fees, recipients):
    """Block ``height``'s reward transaction: its reward plus ``fees`` to
    ``recipients`` (``[(reward key_hash, weight)]``, the active set), or None
    if there is nothing to pay."""
    outputs = tuple(TxOut(units, key_hash) for key_hash, units in
                    split_by_weight(block_reward(network, height) + fees, recipients))
    if not outputs:
        return None
    return Transaction((), outputs, network.network_id, KIND_BLOCK_REWARD,
                       _HEIGHT.pack(height))


def check_reward(tx, network, height, fees, recipients):
    """Raise ``ValueError`` unless ``tx`` is exactly block ``height``'s reward."""
    expected = reward_transaction(network, height, fees, recipients)
    if expected is None:
        if tx is not None:
            raise ValueError("the block pays a reward where none is due")
        return
    if tx is None or tx.raw != expected.raw:
        raise ValueError("the block's reward transaction is not the one due")


assert 2 * ERA_YEARS * YEARLY_EMISSION < MAX_SUPPLY
