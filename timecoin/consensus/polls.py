"""Sans-I/O poll manager: sample the active set, batch queries, tally replies.

One *poll* asks a sample of the **whole active set** (``{validator: stake}``,
this node included) about the same batch of pending txids. With ``n <= k``
active validators the sample is all of them; otherwise ``k`` are drawn by
stake. This node's own current preference is its vote (no message); sampled
validators it is not connected to simply do not answer (no query is sent).
Quorums are counted out of the sample size, so an unreachable validator is a
"no": four masternodes decide with three (3 of 4) and never with two.

A node whose reachable stake (itself plus the connected validators) is below
``alpha`` of the active stake does not poll at all: :meth:`PollManager.start_poll`
returns nothing, ``abort_reason`` says why and ``stats.aborted`` counts it.

A poll ends as soon as its outcome is certain for every txid in it (each has
reached ``alpha``, or can no longer reach a threshold it has not reached given
the replies outstanding), or at its deadline (missing replies are "no" votes
and count against the validator's sampling weight: see
:mod:`timecoin.consensus.sampling`). The tally ``{txid: (yes, sample_size)}``
goes to the :class:`~timecoin.consensus.snowball.SnowballEngine`.

Times are seconds (``reactor.seconds()`` in the node, a simulated clock in
:mod:`timecoin.consensus.simulation`); nothing here schedules, sends or sleeps.
"""

from collections import Counter
from dataclasses import dataclass, field

from zope.interface import implementer

from timecoin.consensus.interfaces import IPollManager
from timecoin.consensus.sampling import weighted_sample

#: Default bound on the txids asked about in one query.
DEFAULT_BATCH_LIMIT = 1024
#: ``abort_reason`` when the reachable stake cannot make a quorum.
ABORT_NO_QUORUM = "insufficient-connected-stake"


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
    sample: frozenset  # every sampled validator, this node included
    waiting: set  # sampled validators a query was sent to and not answered
    deadline: float
    yes: list  # per txid
    contested: bool = False


@dataclass
class PollStats:
    """Counters of one poll manager."""

    started: int = 0
    completed: int = 0
    early_terminated: int = 0
    expired: int = 0
    aborted: int = 0
    replies: int = 0
    missing_replies: int = 0
    votes: int = 0
    #: Polls by the number of votes they counted (sampled validators that
    #: answered, this node's own vote included).
    votes_per_poll: Counter = field(default_factory=Counter)
    ignored: Counter = field(default_factory=Counter)


@implementer(IPollManager)
class PollManager:
    """Runs Snowball polls for one node over the stake-weighted active set.

    ``engine`` is a :class:`~timecoin.consensus.snowball.SnowballEngine`, ``reputation``
    a :class:`~timecoin.consensus.sampling.Reputation` (timeouts only), ``rng`` a
    ``random.Random``. ``validators`` is the active set ``{id: stake}`` (it may
    include ``self_id``) and ``connected`` the ids this node can reach now
    (default: all of them). At most ``max_polls`` polls are in flight; each
    asks about at most ``batch_limit`` txids.
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
        connected=None,
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
        #: Why the last attempt to poll started nothing (None if it could poll).
        self.abort_reason = None
        self._validators = {}
        self._connected = None
        self.set_validators(validators or {}, connected)
        self._polls = {}  # poll_id -> _Poll, oldest first
        self._next_id = 1

    def set_validators(self, weights, connected=None):
        """Replace the active set ``{validator_id: stake}`` and, if given, the connected ids."""
        self._validators = {v: w for v, w in weights.items() if w > 0}
        if connected is not None:
            self.set_connected(connected)

    def set_connected(self, connected):
        """The validator ids this node can reach now (this node is always reachable)."""
        self._connected = frozenset(connected)

    def _reachable(self, validator):
        return validator == self.self_id or self._connected is None or (
            validator in self._connected)

    def reachable_stake(self):
        """``(reachable, total)`` active stake: this node plus the connected validators."""
        total = sum(self._validators.values())
        reach = sum(w for v, w in self._validators.items() if self._reachable(v))
        return reach, total

    def has_quorum(self):
        """True if the reachable stake is at least ``alpha`` of the active stake."""
        return self.engine.params.reaches_quorum(*self.reachable_stake())

    def trusted_report(self, reporters):
        """True if ``reporters`` hold more than ``alpha`` of the active stake."""
        stake = sum(self._validators.get(v, 0) for v in set(reporters))
        return self.engine.params.exceeds_confidence_share(stake, sum(self._validators.values()))

    def report_finalized(self, txid, outpoints, reporters):
        """Catch-up: ``reporters`` say ``txid`` is finalized; return the engine's decisions.

        Applied directly only when they hold more than ``alpha`` of the active
        stake and ``txid`` conflicts with nothing pending; otherwise ``txid`` is
        just polled as usual (see :meth:`SnowballEngine.report_finalized`).
        """
        return self.engine.report_finalized(txid, outpoints, self.trusted_report(reporters))

    @property
    def polls_in_flight(self):
        """Number of polls started and not yet finished."""
        return len(self._polls)

    def can_start(self):
        """True if :meth:`start_poll` may start a poll now (something pending, room, quorum).

        With something to poll and room for it but too little reachable stake,
        it sets ``abort_reason`` and counts the aborted attempt.
        """
        if len(self._polls) >= self.max_polls or not len(self.engine):
            return False
        reach, total = self.reachable_stake()
        if not self.engine.params.reaches_quorum(reach, total):
            self.abort_reason = f"{ABORT_NO_QUORUM}: {reach:g} of {total:g} active stake reachable"
            self.stats.aborted += 1
            return False
        self.abort_reason = None
        return True

    def start_poll(self, now):
        """Start a poll if possible; return the :class:`Query` list to send (maybe empty)."""
        if not self.can_start():
            return []
        is_contested = self.engine.is_contested
        # Contested sets learn from each round's outcome: fewer, fresher polls.
        busy = sum(1 for p in self._polls.values() if p.contested) >= self.max_contested_polls
        txids = tuple(self.engine.in_flight(self.batch_limit, contested=not busy))
        if not txids:
            return []
        weights = self.reputation.adjusted(self._validators)
        sample = weighted_sample(weights, self.engine.params.k, self.rng)
        yes = [0] * len(txids)
        if self.self_id in sample:
            yes = [int(v) for v in self.engine.votes(txids)]
        asked = [v for v in sample if v != self.self_id and self._reachable(v)]
        poll = _Poll(self._next_id, txids, frozenset(sample), set(asked),
                     now + self.query_timeout_s, yes, contested=any(map(is_contested, txids)))
        self._next_id += 1
        self._polls[poll.poll_id] = poll
        self.stats.started += 1
        # A poll with nobody to ask (only this node sampled) ends at its deadline.
        return [Query(poll.poll_id, validator, txids) for validator in asked]

    def on_reply(self, poll_id, validator, votes):
        """A validator answered: ``votes`` are bools aligned with the query's txids.

        Returns the decisions made if this reply ended the poll. Replies to
        unknown or finished polls, from validators not asked, duplicates and
        malformed vote lists are ignored and counted in ``stats.ignored``.
        """
        poll = self._polls.get(poll_id)
        reason = None
        if poll is None:
            reason = "unknown-poll"
        elif validator not in poll.sample or validator == self.self_id:
            reason = "not-sampled"
        elif validator not in poll.waiting:
            reason = "duplicate"
        elif not isinstance(votes, (list, tuple)) or len(votes) != len(poll.txids):
            reason = "bad-length"
        elif not set(map(type, votes)) <= {bool}:  # bool has no subclasses
            reason = "bad-vote"
        if reason is not None:
            self.stats.ignored[reason] += 1
            return []
        self.stats.replies += 1
        poll.waiting.discard(validator)
        tally = poll.yes
        for index, vote in enumerate(votes):
            tally[index] += vote
        if not poll.waiting:
            return self._end(poll, early=False)
        if self._certain(poll):
            return self._end(poll, early=True)
        return []

    def on_tick(self, now):
        """Expire polls whose deadline is at or before ``now``; return their decisions."""
        decisions = []
        for poll in [p for p in self._polls.values() if p.deadline <= now]:
            self.stats.expired += 1
            for validator in sorted(poll.waiting, key=repr):
                self.stats.missing_replies += 1
                self.reputation.record_timeout(validator)
            decisions.extend(self._end(poll, early=None))
        return decisions

    def next_deadline(self):
        """The earliest deadline of a poll in flight, or None: when to call :meth:`on_tick`."""
        return min((p.deadline for p in self._polls.values()), default=None)

    def cancel(self, txid):
        """Cancel ``txid`` in the engine if it was never polled; True if it was forgotten."""
        return self.engine.cancel(txid)

    def can_forget(self, txid):
        return self.engine.can_forget(txid)

    def _certain(self, poll):
        """True if no outstanding reply can change any txid's outcome."""
        size = len(poll.sample)
        params = self.engine.params
        confidence, preference = params.quorum(size), params.preference_quorum(size)
        outstanding = len(poll.waiting)
        for yes in poll.yes:
            if yes >= confidence:
                continue
            best = yes + outstanding
            if best < preference or (yes >= preference and best < confidence):
                continue
            return False
        return True

    def _end(self, poll, early):
        del self._polls[poll.poll_id]
        if early is not None:
            self.stats.completed += 1
            self.stats.early_terminated += bool(early and poll.waiting)
        self.stats.votes += len(poll.sample) - len(poll.waiting)
        self.stats.votes_per_poll[len(poll.sample) - len(poll.waiting)] += 1
        size = len(poll.sample)
        results = {txid: (yes, size) for txid, yes in zip(poll.txids, poll.yes, strict=True)}
        return self.engine.record_poll(results)
