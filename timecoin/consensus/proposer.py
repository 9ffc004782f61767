"""The validator set by stake, and proposer selection by rotating priority.

Proposer selection follows the weighted round-robin of CometBFT's proposer
priority: each step every validator's priority grows by its stake, the one with
the highest priority (ties: the smallest id) proposes and loses the total stake.
Over ``total`` steps a validator proposes ``stake`` times, evenly spread. The
priorities are kept centred on zero and their spread bounded by twice the total
stake, so a validator that joins late cannot monopolise proposals; a joining
validator starts at ``-1.125 * total`` so that it cannot propose at once.
Integers throughout: every honest node computes the same proposers.
"""

import functools
import hashlib
import struct
from dataclasses import dataclass

_SET_HASH_TAG = b"timecoin-masternode-set"


@dataclass(frozen=True)
class ValidatorSet:
    """The active validators and their stake: ``stakes`` is a tuple of (id, stake)
    sorted by id, every stake positive. Build one with :meth:`from_stakes`."""

    stakes: tuple

    @classmethod
    def from_stakes(cls, stakes):
        """A set from ``{validator_id: stake}``; zero stakes are left out."""
        items = []
        for validator, stake in stakes.items():
            if not isinstance(validator, bytes) or not validator:
                raise ValueError("validator ids are non-empty bytes")
            if not isinstance(stake, int) or stake < 0:
                raise ValueError("stakes are non-negative integers")
            if stake:
                items.append((validator, stake))
        if not items:
            raise ValueError("a validator set needs stake")
        return cls(tuple(sorted(items)))

    @property
    def total(self):
        """The total stake."""
        return sum(stake for _, stake in self.stakes)

    @functools.cached_property
    def _by_id(self):
        return dict(self.stakes)

    def stake(self, validator):
        """``validator``'s stake (0 if it is not in the set)."""
        return self._by_id.get(validator, 0)

    def __contains__(self, validator):
        return validator in self._by_id

    def __len__(self):
        return len(self.stakes)

    def is_quorum(self, stake):
        """True if ``stake`` is more than 2/3 of the total."""
        return 3 * stake > 2 * self.total

    def is_one_third(self, stake):
        """True if ``stake`` is more than 1/3 of the total (one honest validator among them)."""
        return 3 * stake > self.total

    def encode(self):
        """Canonical encoding: u16 count, then per validator u8 len, id, u64 stake."""
        parts = [struct.pack(">H", len(self.stakes))]
        for validator, stake in self.stakes:
            parts.append(bytes([len(validator)]) + validator + struct.pack(">Q", stake))
        return b"".join(parts)

    def hash(self):
        """The set's hash as a header's ``masternode_set_hash`` commits to it:
        BLAKE2b-256 of ``"timecoin-masternode-set"`` then each 32-byte id (in
        id order) and its stake as a little-endian u64. This is
        ``timecoin.ledger.registry.masternode_set_hash``, the definition,
        restated here because this package imports no ledger (a test holds
        them equal); ids that are not 32 bytes have no set hash."""
        h = hashlib.blake2b(_SET_HASH_TAG, digest_size=32)
        for validator, stake in self.stakes:
            if len(validator) != 32:
                raise ValueError("a set hash needs 32-byte validator ids")
            h.update(validator + struct.pack("<Q", stake))
        return h.digest()


class ProposerPriorities:
    """CometBFT-style proposer priorities over a :class:`ValidatorSet`.

    :meth:`proposer` (with a round) reads without changing anything;
    :meth:`advance` moves to the next height (called once per committed height,
    with the round it committed at, as CometBFT does).
    """

    def __init__(self, validators, priorities=None):
        self.validators = validators
        self.priorities = {v: 0 for v, _ in validators.stakes}
        if priorities:
            self.priorities.update({v: p for v, p in priorities.items() if v in self.priorities})
        self._normalise()

    def copy(self):
        """An independent copy."""
        return ProposerPriorities(self.validators, dict(self.priorities))

    def _normalise(self):
        total = self.validators.total
        values = self.priorities.values()
        spread = max(values) - min(values)
        if spread > 2 * total:
            ratio = -(-spread // (2 * total))  # ceil division
            for v in self.priorities:
                self.priorities[v] = _div_toward_zero(self.priorities[v], ratio)
        average = sum(self.priorities.values()) // len(self.priorities)
        for v in self.priorities:
            self.priorities[v] -= average

    def _step(self):
        total = self.validators.total
        for v, stake in self.validators.stakes:
            self.priorities[v] += stake
        chosen = min(self.priorities, key=lambda v: (-self.priorities[v], v))
        self.priorities[chosen] -= total
        return chosen

    def proposer(self, round_=0):
        """The proposer of ``round_`` at the current height."""
        scratch = self.copy()
        chosen = scratch._step()
        for _ in range(round_):
            scratch._normalise()
            chosen = scratch._step()
        return chosen

    def advance(self, rounds=1):
        """Move to the next height: ``rounds`` steps (1 + the committing round)."""
        for _ in range(rounds):
            self._normalise()
            self._step()

    def with_validators(self, validators):
        """Priorities for a new active set: continuing validators keep theirs,
        joining ones start at -1.125 times the new total."""
        start = -(validators.total + validators.total // 8)
        kept = {v: self.priorities.get(v, start) for v, _ in validators.stakes}
        return ProposerPriorities(validators, kept)


def replay_priorities(sets):
    """The priorities at the height after the last of ``sets``, replayed as a
    BFT machine moves them from the genesis: ``sets`` yields the stakes
    (``{id: stake}``) each height had, the first the genesis set (height 1's)
    and the i-th the set after height i; each committed height advances one
    step with its set, and a changed set enters by :meth:`with_validators`
    before the next height, as ``BftMachine.start_height`` does. None if any
    set is unknown (None or empty)."""
    priorities, previous = None, None
    for stakes in sets:
        if not stakes:
            return None
        if priorities is None:
            previous = stakes
            priorities = ProposerPriorities(ValidatorSet.from_stakes(stakes))
            continue
        priorities.advance()
        if stakes != previous:
            previous = stakes
            following = ValidatorSet.from_stakes(stakes)
            if following != priorities.validators:
                priorities = priorities.with_validators(following)
    return priorities


def _div_toward_zero(value, divisor):
    quotient = abs(value) // divisor
    return quotient if value >= 0 else -quotient
