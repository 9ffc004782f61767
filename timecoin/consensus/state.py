"""Records and counters of the Snowball engine (:mod:`timecoin.consensus.snowball`)."""

from collections import Counter
from dataclasses import dataclass, field


class FinalStatusError(AssertionError):
    """A decided transaction was about to receive the opposite decision (a bug)."""


@dataclass
class _Tx:
    txid: object
    outpoints: tuple
    strength: int = 0
    confidence: int = 0
    rounds: int = 0
    contested: bool = False
    voted: bool = False
    stalled: bool = False
    backoff: int = 1
    next_tick: int = 0


@dataclass(frozen=True)
class TxSnapshot:
    """A pending transaction's counters, for RPC, metrics and tests."""

    txid: object
    preferred: bool
    contested: bool
    strength: int
    confidence: int
    rounds: int
    stalled: bool = False
    reason: str | None = None


@dataclass(frozen=True)
class ConflictSetRecord:
    """The durable state of one conflict set this node voted on.

    ``members`` is a tuple of ``(txid, outpoints)`` in arrival order and
    ``preferred`` the member this node voted for. Persisted before the votes
    leave, fed back to :meth:`~timecoin.consensus.snowball.SnowballEngine.restore`.
    """

    outpoint: object
    members: tuple
    preferred: object


@dataclass
class EngineStats:
    """Counters of one engine since it was made."""

    polls: int = 0
    successful_rounds: int = 0
    failed_rounds: int = 0
    ambiguous_rounds: int = 0
    preference_flips: int = 0
    accepted: int = 0
    stalled: int = 0
    reports_applied: int = 0
    reports_deferred: int = 0
    rejected: Counter = field(default_factory=Counter)
    rounds_to_accept: Counter = field(default_factory=Counter)
