"""Sans-I/O poll manager: sample validators, batch queries, tally replies.

One *poll* asks each of up to ``k`` sampled validators about the same batch of
pending txids in one query. It finishes when every sampled validator has
replied, or when :meth:`PollManager.on_tick` sees its deadline pass; missing
replies then count as "no" votes and are reported to the
:class:`~timecoin.consensus.sampling.Reputation`. A finished poll is tallied into
``{txid: (yes, sample_size)}`` and fed to the
:class:`~timecoin.consensus.snowball.SnowballEngine`, whose decisions are returned.

Times are seconds (``reactor.seconds()`` in the node, a simulated clock in
:mod:`timecoin.consensus.simulation`); nothing here schedules, sends or sleeps.
"""

from collections import Counter
from dataclasses import dataclass, field

from timecoin.consensus.sampling import weighted_sample
from timecoin.consensus.snowball import PENDING, REASON_CONFLICT, REASON_FINALIZED

#: Default bound on the txids asked about in one query.
DEFAULT_BATCH_LIMIT = 1024


@dataclass(frozen=True)
class Query:
    """One query to send: ask ``validator`` about ``txids`` for poll ``poll_id``."""

    poll_id: int
    validator: object
    txids: tuple


@dataclass
class _Poll:
    poll_id: int
    txids: tuple
    validators: frozenset
    deadline: float
    contested: bool = False
    replies: dict = field(default_factory=dict)


@dataclass
class PollStats:
    """Counters of one poll manager."""

    started: int = 0
    completed: int = 0
    expired: int = 0
    replies: int = 0
    missing_replies: int = 0
    ignored: Counter = field(default_factory=Counter)


class PollManager:
    """Runs Snowball polls for one node over a set of weighted validators.

    ``engine`` is a :class:`~timecoin.consensus.snowball.SnowballEngine`, ``reputation``
    a :class:`~timecoin.consensus.sampling.Reputation`, ``rng`` a ``random.Random``.
    ``self_id`` is never sampled. At most ``max_polls`` polls are in flight;
    each asks about at most ``batch_limit`` txids.
    """

    def __init__(
        self,
        engine,
        reputation,
        rng,
        self_id,
        query_timeout_ms=2000,
        max_polls=2,
        batch_limit=DEFAULT_BATCH_LIMIT,
        validators=None,
        max_contested_polls=1,
    ):
        if query_timeout_ms <= 0 or max_polls < 1 or batch_limit < 1:
            raise ValueError("query_timeout_ms, max_polls and batch_limit must be positive")
        self.engine = engine
        self.reputation = reputation
        self.rng = rng
        self.self_id = self_id
        self.query_timeout_s = query_timeout_ms / 1000.0
        self.max_polls = max_polls
        self.batch_limit = batch_limit
        #: Polls in flight that may carry contested transactions (the others
        #: carry only uncontested ones): a conflict set is polled in sequence,
        #: each round seeing the preferences the previous one produced.
        self.max_contested_polls = min(max_contested_polls, max_polls)
        self.stats = PollStats()
        self._validators = dict(validators or {})
        self._polls = {}  # poll_id -> _Poll, oldest first
        self._next_id = 1
        self._last_votes = {}  # txid -> {validator: last vote}, for contrary-vote penalties

    def set_validators(self, weights):
        """Replace the active validators: ``{validator_id: stake weight}``."""
        self._validators = dict(weights)

    @property
    def polls_in_flight(self):
        """Number of polls started and not yet finished."""
        return len(self._polls)

    def can_start(self):
        """True if :meth:`start_poll` would start a poll now."""
        return (
            len(self._polls) < self.max_polls
            and len(self.engine) > 0
            and any(v != self.self_id and w > 0 for v, w in self._validators.items())
        )

    def start_poll(self, now):
        """Start a poll if possible; return the :class:`Query` list to send (maybe empty)."""
        if len(self._polls) >= self.max_polls:
            return []
        txids = self.engine.in_flight(self.batch_limit)
        is_contested = self.engine.is_contested
        busy = sum(1 for p in self._polls.values() if p.contested)
        if busy >= self.max_contested_polls:
            # Contested sets learn from each round's outcome: fewer, fresher polls.
            txids = [t for t in txids if not is_contested(t)]
        txids = tuple(txids)
        if not txids:
            return []
        weights = self.reputation.adjusted(self._validators)
        sample = weighted_sample(weights, self.engine.params.k, self.rng, exclude=(self.self_id,))
        if not sample:
            return []
        poll = _Poll(self._next_id, txids, frozenset(sample), now + self.query_timeout_s,
                     contested=any(map(is_contested, txids)))
        self._next_id += 1
        self._polls[poll.poll_id] = poll
        self.stats.started += 1
        return [Query(poll.poll_id, validator, txids) for validator in sample]

    def on_reply(self, poll_id, validator, votes):
        """A validator answered: ``votes`` are bools aligned with the query's txids.

        Returns the decisions made if this reply completed the poll. Replies to
        unknown or finished polls, from validators not sampled, duplicates and
        malformed vote lists are ignored and counted in ``stats.ignored``.
        """
        poll = self._polls.get(poll_id)
        reason = None
        if poll is None:
            reason = "unknown-poll"
        elif validator not in poll.validators:
            reason = "not-sampled"
        elif validator in poll.replies:
            reason = "duplicate"
        elif not isinstance(votes, (list, tuple)) or len(votes) != len(poll.txids):
            reason = "bad-length"
        elif not set(map(type, votes)) <= {bool}:  # bool has no subclasses
            reason = "bad-vote"
        if reason is not None:
            self.stats.ignored[reason] += 1
            return []
        self.stats.replies += 1
        poll.replies[validator] = votes
        if len(poll.replies) < len(poll.validators):
            return []
        del self._polls[poll_id]
        self.stats.completed += 1
        return self._finish(poll)

    def on_tick(self, now):
        """Expire polls whose deadline is at or before ``now``; return their decisions."""
        decisions = []
        for poll in [p for p in self._polls.values() if p.deadline <= now]:
            del self._polls[poll.poll_id]
            self.stats.expired += 1
            for validator in sorted(poll.validators - poll.replies.keys(), key=repr):
                self.stats.missing_replies += 1
                self.reputation.record_timeout(validator)
            decisions.extend(self._finish(poll))
        return decisions

    def next_deadline(self):
        """The earliest deadline of a poll in flight, or None: when to call :meth:`on_tick`."""
        return min((p.deadline for p in self._polls.values()), default=None)

    def cancel(self, txid):
        """Cancel ``txid`` in the engine and forget its votes; True if it was pending."""
        self._last_votes.pop(txid, None)
        return self.engine.cancel(txid)

    def _finish(self, poll):
        size = len(poll.validators)
        quorum = self.engine.params.quorum(size)
        replies = poll.replies.items()
        unanimous = len(poll.replies)
        results = {}
        dissenters = set()
        for index, txid in enumerate(poll.txids):
            yes = 0
            last = self._last_votes.setdefault(txid, {})
            for validator, votes in replies:
                vote = votes[index]
                yes += vote
                last[validator] = vote
            results[txid] = (yes, size)
            # A successful round on an uncontested transaction: the validators
            # that voted no dissent (none did if every reply said yes).
            if quorum <= yes < unanimous and self.engine.status(txid) == PENDING and not (
                self.engine.is_contested(txid)
            ):
                dissenters.update(v for v, votes in poll.replies.items() if not votes[index])
        for validator in sorted(dissenters, key=repr):
            self.reputation.record_dissent(validator)
        decisions = self.engine.record_poll(results)
        for txid, accepted, reason in decisions:
            last = self._last_votes.pop(txid, {})
            if reason in (REASON_FINALIZED, REASON_CONFLICT):
                for validator, vote in last.items():
                    if vote != accepted:
                        self.reputation.record_contrary(validator)
        for txid in poll.txids:
            if txid in self._last_votes and self.engine.status(txid) != PENDING:
                del self._last_votes[txid]
        return decisions
