"""Stake-weighted validator sampling and a reputation that adapts it.

:func:`weighted_sample` draws ``k`` distinct validators with probability
proportional to weight (successive sampling without replacement, as when
drawing names from a hat one by one). :class:`Reputation` scales each
validator's weight by a multiplier in ``[floor, 1]``: a timeout lowers it,
and it recovers toward 1 with a half-life measured on an injected clock. A
validator is never excluded: the floor keeps its weight positive. Votes
never change a weight.
"""

import math


def weighted_sample(weights, k, rng, exclude=()):
    """``k`` distinct validator ids drawn by weight from ``{validator_id: weight}``.

    ``exclude`` (e.g. this node's own id) and non-positive weights are never
    drawn. When ``k`` or fewer eligible validators remain, all of them are
    returned (in the mapping's order). Otherwise the Efraimidis-Spirakis method
    is used: each validator gets the key ``log(u) / weight`` with ``u`` uniform
    in (0, 1] from ``rng`` (a ``random.Random``), and the ``k`` largest keys
    win, ordered by key. The result is deterministic for a seeded ``rng`` and
    a mapping iterated in the same order.
    """
    excluded = set(exclude)
    eligible = [(v, w) for v, w in weights.items() if w > 0 and v not in excluded]
    if k <= 0:
        return []
    if len(eligible) <= k:
        return [v for v, _ in eligible]
    keyed = []
    for index, (validator, weight) in enumerate(eligible):
        u = 1.0 - rng.random()  # (0, 1]
        keyed.append((math.log(u) / weight, index, validator))
    keyed.sort(reverse=True)
    return [validator for _, _, validator in keyed[:k]]


class Reputation:
    """Per-validator sampling multipliers that punish timeouts, and nothing else.

    Each validator's multiplier starts at 1; :meth:`record_timeout` multiplies
    it by ``timeout_penalty``, never below ``floor`` (> 0), so a validator that
    does not answer is sampled less but never excluded. Between timeouts the
    deficit ``1 - m`` halves every ``half_life_s`` seconds of ``clock()`` (an
    injected callable, e.g. ``reactor.seconds``), so a validator that answers
    again recovers. How a validator *votes* never changes its weight:
    down-weighting disagreement would let an attacker bias samples toward the
    side it wants (see ``doc/snowball.md``).
    """

    def __init__(self, clock, timeout_penalty=0.5, floor=0.05, half_life_s=300.0):
        if not 0 < floor <= 1:
            raise ValueError("floor must be in (0, 1]")
        if not 0 < timeout_penalty <= 1:
            raise ValueError("timeout_penalty must be in (0, 1]")
        if half_life_s <= 0:
            raise ValueError("half_life_s must be > 0")
        self.clock = clock
        self.timeout_penalty = timeout_penalty
        self.floor = floor
        self.half_life_s = half_life_s
        self.timeouts = 0
        self._state = {}  # validator -> (multiplier, as of time)

    def multiplier(self, validator):
        """The validator's current multiplier in ``[floor, 1]``."""
        state = self._state.get(validator)
        if state is None:
            return 1.0
        value, since = state
        elapsed = max(0.0, self.clock() - since)
        recovered = 1.0 - (1.0 - value) * 0.5 ** (elapsed / self.half_life_s)
        if recovered >= 0.999:
            del self._state[validator]
            return 1.0
        return recovered

    def record_timeout(self, validator):
        """``validator`` did not answer a query in time."""
        self.timeouts += 1
        value = max(self.floor, self.multiplier(validator) * self.timeout_penalty)
        self._state[validator] = (value, self.clock())

    def adjusted(self, weights):
        """``{validator: weight * multiplier}`` for sampling."""
        if not self._state:
            return dict(weights)
        return {v: w * self.multiplier(v) for v, w in weights.items()}

    def penalized(self):
        """``{validator: multiplier}`` of validators currently below 1."""
        return {v: m for v in list(self._state) if (m := self.multiplier(v)) < 1.0}
