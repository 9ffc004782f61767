"""Sans-I/O Tendermint round machine: one validator's view of block commits.

Each height runs rounds of propose -> prevote -> precommit (the algorithm of
Buchman, Kwon and Milosevic, "The latest gossip on BFT consensus", as in
CometBFT). The rule numbers in comments are the paper's lines:

* L22/L28 a proposal (with a POL round ``vr`` re-proposing a block that got a
  prevote quorum in round ``vr``) is prevoted if the block is valid and we are
  not locked on another block (or locked at a round <= vr); else nil.
* L36 a prevote quorum for the round's proposed valid block locks it
  (lockedValue/lockedRound), precommits it, and makes it the validValue that
  this node re-proposes when it is the proposer of a later round.
* L44 a nil prevote quorum precommits nil.
* L49 a precommit quorum for a valid block in any round commits it.
* L55 votes from more than 1/3 of the stake in a later round jump to that round.
* Timeouts: propose (no proposal -> prevote nil), prevote (after any prevote
  quorum -> precommit nil), precommit (after any precommit quorum -> next round),
  each ``base + round * delta``.

"Quorum" is more than 2/3 of the height's active stake. Safety holds while less
than 1/3 of the stake is byzantine; liveness once messages arrive in time.
"""

from zope.interface import implementer

from timecoin.consensus.bft_intake import MessageIntake
from timecoin.consensus.bft_messages import (
    NIL,
    PRECOMMIT,
    PREVOTE,
    Broadcast,
    BuildBlock,
    CommitBlock,
    Proposal,
    ValidateBlock,
    Vote,
)
from timecoin.consensus.bft_params import (
    COMMITTED,
    NEW_HEIGHT,
    PRECOMMIT_STEP,
    PREVOTE_STEP,
    PROPOSE,
    REBROADCAST_ROUNDS,
    BftStats,
    BftTimeouts,
)
from timecoin.consensus.bft_votes import HeightVotes
from timecoin.consensus.certificate import (
    CertificateError,
    CommitCertificate,
    verify_certificate,
)
from timecoin.consensus.proposer import ProposerPriorities
from timecoin.interfaces.consensus import IBftMachine

__all__ = ["BftMachine", "BftStats", "BftTimeouts"]


@implementer(IBftMachine)
class BftMachine(MessageIntake):
    """One node's round machine (see the module docstring for the rules).

    ``self_id`` is this node's validator id (None, or an id outside the set: it
    only observes). ``signer(message_bytes) -> signature`` signs for ``self_id``;
    ``verify(validator_id, message_bytes, signature) -> bool`` checks others.
    """

    def __init__(self, network_id, validators, self_id, signer, verify, timeouts=None,
                 priorities=None):
        self.network_id = network_id
        self.validators = validators
        self.self_id = self_id
        self.signer = signer
        self.verify = verify
        self.timeouts = timeouts or BftTimeouts()
        self.priorities = priorities or ProposerPriorities(validators)
        self.stats = BftStats()
        self.height = None
        self.round = 0
        self.step = NEW_HEIGHT
        self.last_certificate = None
        self._future = {}
        self._cert_sent = {}
        self._reset(None)

    def _reset(self, start_at):
        self.locked_value, self.locked_round = None, -1
        self.valid_value, self.valid_round = None, -1
        self.round = 0
        self.step = NEW_HEIGHT
        self._start_at = start_at
        self._votes = HeightVotes(self.height, self.validators)
        self._proposals = {}
        self._validity = {}
        self._requested = set()
        self._timers = []  # (deadline, kind, round)
        self._scheduled = set()  # (kind, round) timeouts already scheduled once
        self._locked_rounds = set()  # rounds where L36 ran
        self._built = set()
        self._evidence_slots = set()
        self._next_rebroadcast = None

    # --- driving ---------------------------------------------------------------------

    def start_height(self, height, now, validators=None, start_at=None, priorities=None):
        """Begin ``height``; see :class:`~timecoin.interfaces.consensus.IBftMachine`."""
        if self.height is not None and priorities is None:
            self.priorities.advance()
        if priorities is not None:
            self.priorities = priorities
        if validators is not None and validators != self.validators:
            self.validators = validators
            if priorities is None:
                self.priorities = self.priorities.with_validators(validators)
        self.height = height
        self._reset(now if start_at is None else max(now, start_at))
        out = self._evaluate(now)
        buffered, self._future = self._future, {}
        for message in buffered.values():
            if message.height == height:
                out += self._receive(message, now)
        return out

    def proposer(self, round_=0):
        """The validator that proposes ``round_`` at the current height."""
        return self.priorities.proposer(round_)

    def is_validator(self):
        """True if this node votes at the current height."""
        return self.self_id is not None and self.self_id in self.validators

    def on_proposal(self, proposal, now):
        """A signed :class:`Proposal` arrived."""
        return self._receive(proposal, now)

    def on_vote(self, vote, now):
        """A signed :class:`Vote` arrived."""
        return self._receive(vote, now)

    def on_certificate(self, certificate, now):
        """A :class:`CommitCertificate` for this height: count its precommits."""
        if self.height is None or certificate.height != self.height or self.step == COMMITTED:
            return []
        try:
            verify_certificate(certificate, self.validators, self.network_id, self.verify,
                               height=self.height)
        except CertificateError:
            self.stats.bad_signatures += 1
            return []
        for validator, signature in certificate.signatures:
            vote = Vote(PRECOMMIT, certificate.height, certificate.round,
                        certificate.block_hash, validator, signature)
            self._votes.add(vote)
        return self._evaluate(now)

    def on_block_built(self, height, round_, block_hash, now):
        """The block for our proposal at (height, round) is ready."""
        if (height, round_) != (self.height, self.round) or self.step != PROPOSE:
            return []
        if round_ in self._proposals or not self._is_proposer(round_):
            return []
        self._validity[block_hash] = True
        return self._propose(block_hash, -1) + self._evaluate(now)

    def on_block_validated(self, height, block_hash, valid, now):
        """The caller's verdict on a block asked for by :class:`ValidateBlock`."""
        if height != self.height or block_hash not in self._requested:
            return []
        self._validity[block_hash] = bool(valid)
        return self._evaluate(now)

    def on_tick(self, now):
        """Fire due timeouts and re-broadcasts."""
        out = []
        if self.step == NEW_HEIGHT and self.height is not None and now >= self._start_at:
            out += self._start_round(0, now)
        due = sorted(t for t in self._timers if t[0] <= now)
        self._timers = [t for t in self._timers if t[0] > now]
        for _, kind, round_ in due:
            if round_ != self.round or self.step == COMMITTED:
                continue
            if kind == "propose" and self.step == PROPOSE:
                out += self._cast(PREVOTE, NIL)
                self.step = PREVOTE_STEP
            elif kind == "prevote" and self.step == PREVOTE_STEP:
                out += self._cast(PRECOMMIT, NIL)
                self.step = PRECOMMIT_STEP
            elif kind == "precommit":
                out += self._start_round(round_ + 1, now)
        if self._next_rebroadcast is not None and now >= self._next_rebroadcast:
            out += self._rebroadcast()
            self._next_rebroadcast = now + self.timeouts.rebroadcast
        return out + self._evaluate(now)

    def next_deadline(self):
        """The earliest time :meth:`on_tick` has work to do, or None."""
        times = [t[0] for t in self._timers]
        if self.step == NEW_HEIGHT and self.height is not None:
            times.append(self._start_at)
        if self._next_rebroadcast is not None and self.step != COMMITTED:
            times.append(self._next_rebroadcast)
        return min(times, default=None)

    # --- the rules -------------------------------------------------------------------

    def _evaluate(self, now):
        out = []
        if self.height is None or self.step == COMMITTED:
            return out
        progress = True
        while progress and self.step != COMMITTED:
            progress = False
            decided = self._try_commit(out)
            if decided:
                break
            if self.step == NEW_HEIGHT:
                break
            for rule in (self._try_skip, self._try_prevote, self._try_lock,
                         self._try_precommit_nil):
                if rule(out, now):
                    progress = True
                    break
            self._schedule_quorum_timeouts(now)
        return out

    def _try_commit(self, out):  # L49
        for round_ in self._votes.rounds_with_votes():
            block_hash = self._votes.majority(round_, PRECOMMIT)
            if block_hash is None or block_hash == NIL:
                continue
            valid = self._need_validity(block_hash, out)
            if not valid:
                continue
            votes = self._votes.votes_for(round_, PRECOMMIT, block_hash)
            cert = CommitCertificate.from_votes(votes)
            self.last_certificate = cert
            self.step = COMMITTED
            self.stats.commits += 1
            self.stats.rounds += self.round + 1
            self._timers = []
            out.append(CommitBlock(self.height, block_hash, cert))
            return True
        return False

    def _try_skip(self, out, now):  # L55
        later = [r for r in self._votes.rounds_with_votes()
                 if r > self.round and self.validators.is_one_third(self._votes.round_power(r))]
        if not later:
            return False
        out += self._start_round(max(later), now)
        return True

    def _try_prevote(self, out, now):  # L22, L28
        proposal = self._proposals.get(self.round)
        if self.step != PROPOSE or proposal is None:
            return False
        block_hash, pol = proposal.block_hash, proposal.pol_round
        valid = self._need_validity(block_hash, out)
        if pol >= 0 and not self._votes.has_quorum_for(pol, PREVOTE, block_hash):
            return False  # wait for the POL prevotes (or the propose timeout)
        if valid is None:
            return False
        free = self.locked_round == -1 if pol < 0 else self.locked_round <= pol
        vote = block_hash if valid and (free or self.locked_value == block_hash) else NIL
        out += self._cast(PREVOTE, vote)
        self.step = PREVOTE_STEP
        return True

    def _try_lock(self, out, now):  # L36
        proposal = self._proposals.get(self.round)
        if self.step not in (PREVOTE_STEP, PRECOMMIT_STEP) or proposal is None:
            return False
        if self.round in self._locked_rounds:
            return False
        block_hash = proposal.block_hash
        if not self._votes.has_quorum_for(self.round, PREVOTE, block_hash):
            return False
        if not self._need_validity(block_hash, out):
            return False
        self._locked_rounds.add(self.round)
        if self.step == PREVOTE_STEP:
            self.locked_value, self.locked_round = block_hash, self.round
            out += self._cast(PRECOMMIT, block_hash)
            self.step = PRECOMMIT_STEP
        self.valid_value, self.valid_round = block_hash, self.round
        return True

    def _try_precommit_nil(self, out, now):  # L44
        if self.step != PREVOTE_STEP or not self._votes.has_quorum_for(self.round, PREVOTE, NIL):
            return False
        out += self._cast(PRECOMMIT, NIL)
        self.step = PRECOMMIT_STEP
        return True

    def _schedule_quorum_timeouts(self, now):  # L34, L47
        if self.step == PREVOTE_STEP and self._votes.has_quorum_any(self.round, PREVOTE):
            self._schedule("prevote", now)
        if self.step in (PREVOTE_STEP, PRECOMMIT_STEP, PROPOSE) and \
                self._votes.has_quorum_any(self.round, PRECOMMIT):
            self._schedule("precommit", now)

    def _schedule(self, kind, now):
        key = (kind, self.round)
        if key not in self._scheduled:
            self._scheduled.add(key)
            self._timers.append((now + self.timeouts.for_step(kind, self.round), kind,
                                 self.round))

    def _need_validity(self, block_hash, out):
        valid = self._validity.get(block_hash)
        if valid is None and block_hash not in self._requested:
            self._requested.add(block_hash)
            out.append(ValidateBlock(self.height, block_hash))
        return valid

    # --- acting ----------------------------------------------------------------------

    def _is_proposer(self, round_):
        return self.is_validator() and self.proposer(round_) == self.self_id

    def _start_round(self, round_, now):
        self.round = round_
        self.step = PROPOSE
        self._timers = [t for t in self._timers if t[2] >= round_]
        self._schedule("propose", now)
        if self.is_validator() and self._next_rebroadcast is None and self.timeouts.rebroadcast:
            self._next_rebroadcast = now + self.timeouts.rebroadcast
        if not self._is_proposer(round_) or round_ in self._proposals:
            return []
        if self.valid_value is not None:
            return self._propose(self.valid_value, self.valid_round)
        if round_ in self._built:
            return []
        self._built.add(round_)
        return [BuildBlock(self.height, round_)]

    def _propose(self, block_hash, pol_round):
        proposal = Proposal(self.height, self.round, block_hash, pol_round, self.self_id)
        proposal = self._signed(proposal)
        self._proposals[self.round] = proposal
        return [Broadcast(proposal)]

    def _cast(self, msg_type, block_hash):
        if not self.is_validator():
            return []
        vote = self._signed(Vote(msg_type, self.height, self.round, block_hash, self.self_id))
        self._votes.add(vote)
        return [Broadcast(vote)]

    def _signed(self, message):
        signature = self.signer(message.sign_bytes(self.network_id))
        return type(message)(**{**message.__dict__, "signature": signature})

    def _rebroadcast(self):
        out = []
        proposal = self._proposals.get(self.round)
        if proposal is not None and proposal.validator == self.self_id:
            out.append(Broadcast(proposal))
        for vote in self._votes.own_votes(self.self_id):
            if vote.round > self.round - REBROADCAST_ROUNDS:
                out.append(Broadcast(vote))
        if self.valid_round >= 0:  # relay the POL that lets others accept a re-proposal
            for vote in self._votes.votes_for(self.valid_round, PREVOTE, self.valid_value):
                if vote.validator != self.self_id or vote.round <= self.round - REBROADCAST_ROUNDS:
                    out.append(Broadcast(vote))
        return out
