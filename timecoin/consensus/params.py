"""Snowball parameters: the ``[consensus.avalanche]`` section, validated, and quorum arithmetic.

Quorums are shares of the sample size, as in avalanchego's ``AlphaPreference``
and ``AlphaConfidence`` (there counts out of ``K``, here shares of ``k`` so one
setting serves every network size): a sample of ``n`` validators (``n = k``,
or every active masternode when there are at most ``k``) needs
``max(ceil(share * n), n // 2 + 1)`` yes votes. See ``doc/snowball.md``.
"""

from dataclasses import dataclass
from fractions import Fraction

#: The ``[consensus.avalanche]`` keys read by :meth:`SnowballParams.from_config`.
CONFIG_KEYS = ("sample_size", "alpha", "alpha_preference", "beta", "finality_confidence",
               "max_rounds")
#: ``alpha_preference`` when the configuration does not name it (capped at ``alpha``).
DEFAULT_ALPHA_PREFERENCE = 0.75


def _share(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    # Exact arithmetic: 0.7 * 10 must give 7, not 7.000000000000001.
    share = Fraction(value).limit_denominator(1_000_000)
    if not Fraction(1, 2) < share <= 1:
        raise ValueError(f"{name} must be in (0.5, 1], got {value!r}")
    return share


def _count(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def share_of(share, n):
    """``max(ceil(share * n), n // 2 + 1)``: never below a strict majority; 1 for ``n <= 0``."""
    if n <= 0:
        return 1
    return max(-((-share.numerator * n) // share.denominator), n // 2 + 1)


@dataclass(frozen=True)
class SnowballParams:
    """Validated Snowball parameters (the ``[consensus.avalanche]`` section).

    ``alpha`` (alpha confidence) is the share of a sample that must vote yes
    for a round to raise confidence; ``alpha_preference`` (default 0.75, never
    above ``alpha``) the share that raises preference strength and so may move
    a preference. ``beta`` rounds of confidence decide a contested transaction,
    ``finality_confidence`` an uncontested one; after ``max_rounds`` polls an
    undecided transaction is *stalled* (still pending, polled less often).
    """

    k: int = 20
    alpha: float = 0.75
    beta: int = 15
    finality_confidence: int = 15
    max_rounds: int = 30
    alpha_preference: float | None = None

    def __post_init__(self):
        _count(self.k, "sample_size")
        alpha = _share(self.alpha, "alpha")
        _count(self.beta, "beta")
        _count(self.finality_confidence, "finality_confidence")
        _count(self.max_rounds, "max_rounds")
        if self.max_rounds < max(self.beta, self.finality_confidence):
            raise ValueError("max_rounds must be >= beta and >= finality_confidence")
        if self.alpha_preference is None:
            pref = min(_share(DEFAULT_ALPHA_PREFERENCE, "alpha_preference"), alpha)
        else:
            pref = _share(self.alpha_preference, "alpha_preference")
            if pref > alpha:
                raise ValueError("alpha_preference must not exceed alpha")
        object.__setattr__(self, "alpha_share", alpha)
        object.__setattr__(self, "preference_share", pref)

    @classmethod
    def from_config(cls, section):
        """Build from a ``[consensus.avalanche]`` mapping; missing keys keep defaults."""
        kwargs = {}
        for key in CONFIG_KEYS:
            if key in section:
                kwargs["k" if key == "sample_size" else key] = section[key]
        return cls(**kwargs)

    @staticmethod
    def majority(n):
        """The smallest strict majority of ``n`` votes."""
        return n // 2 + 1

    def quorum(self, n):
        """Yes votes out of a sample of ``n`` that raise confidence (alpha confidence).

        ``max(ceil(alpha * n), n // 2 + 1)``: 1 of 1, 2 of 2, 3 of 3, 3 of 4,
        15 of 20 with alpha 0.75. An empty sample can never succeed: quorum 1.
        """
        return share_of(self.alpha_share, n)

    def preference_quorum(self, n):
        """Yes votes out of ``n`` that raise preference strength (<= :meth:`quorum`)."""
        return share_of(self.preference_share, n)

    def reaches_quorum(self, reachable, total):
        """True if ``reachable`` stake is at least ``alpha`` of ``total`` (a poll may start)."""
        return total > 0 and reachable * self.alpha_share.denominator >= (
            self.alpha_share.numerator * total)

    def exceeds_confidence_share(self, stake, total):
        """True if ``stake`` is more than ``alpha`` of ``total`` (enough to trust a report)."""
        return total > 0 and stake * self.alpha_share.denominator > (
            self.alpha_share.numerator * total)
