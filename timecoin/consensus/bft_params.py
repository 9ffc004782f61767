"""Parameters of the BFT round machine: steps, bounds, timeouts, counters."""

from dataclasses import dataclass

NEW_HEIGHT, PROPOSE, PREVOTE_STEP, PRECOMMIT_STEP, COMMITTED = (
    "new-height", "propose", "prevote", "precommit", "committed")

#: Messages for rounds further ahead than this are dropped (bounds memory).
MAX_ROUNDS_AHEAD = 64
#: Messages kept for the next height, per validator of the current set.
FUTURE_PER_VALIDATOR = 8
#: Own votes of this many latest rounds are re-broadcast.
REBROADCAST_ROUNDS = 4


@dataclass(frozen=True)
class BftTimeouts:
    """Round timeouts in seconds (each ``base + round * delta``), and the period at
    which a node re-broadcasts its own messages of the height (None: never)."""

    propose: float = 3.0
    propose_delta: float = 0.5
    prevote: float = 1.0
    prevote_delta: float = 0.5
    precommit: float = 1.0
    precommit_delta: float = 0.5
    rebroadcast: float = 2.0

    def for_step(self, kind, round_):
        """The timeout of ``kind`` ('propose', 'prevote', 'precommit') in ``round_``."""
        base, delta = {"propose": (self.propose, self.propose_delta),
                       "prevote": (self.prevote, self.prevote_delta),
                       "precommit": (self.precommit, self.precommit_delta)}[kind]
        return base + round_ * delta


@dataclass
class BftStats:
    """Counters of one machine."""

    commits: int = 0
    rounds: int = 0
    bad_signatures: int = 0
    ignored: int = 0
    evidence: int = 0
