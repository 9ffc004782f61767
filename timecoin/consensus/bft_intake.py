"""How the BFT round machine takes in proposals and votes from the network: height
and round filtering, signature checks, equivocation evidence, buffering for the
next height and certificates for validators that are behind."""

from timecoin.consensus.bft_messages import (
    EvidenceFound,
    MessageError,
    Proposal,
    SendCertificate,
)
from timecoin.consensus.bft_params import (
    COMMITTED,
    FUTURE_PER_VALIDATOR,
    MAX_ROUNDS_AHEAD,
)
from timecoin.consensus.certificate import Evidence


class MessageIntake:
    """The receiving half of :class:`~timecoin.consensus.bft.BftMachine` (a base class;
    it uses the machine's state and its ``_evaluate``)."""

    def _receive(self, message, now):
        if self.height is None:
            return []
        if message.height == self.height - 1 or (
                message.height == self.height and self.step == COMMITTED):
            return self._help_behind(message.height, message.validator, now)
        if message.height == self.height + 1:
            self._buffer(message)
            return []
        if message.height != self.height or message.round > self.round + MAX_ROUNDS_AHEAD:
            self.stats.ignored += 1
            return []
        if isinstance(message, Proposal):
            return self._receive_proposal(message, now)
        return self._receive_vote(message, now)

    def _checked(self, message):
        try:
            data = message.sign_bytes(self.network_id)
        except MessageError:
            return False
        if self.verify(message.validator, data, message.signature):
            return True
        self.stats.bad_signatures += 1
        return False

    def _receive_proposal(self, proposal, now):
        if proposal.validator != self.proposer(proposal.round):
            self.stats.ignored += 1
            return []
        earlier = self._proposals.get(proposal.round)
        if earlier == proposal or not self._checked(proposal):
            return []
        if earlier is not None:
            return self._evidence(earlier, proposal) if earlier.block_hash != \
                proposal.block_hash else []
        self._proposals[proposal.round] = proposal
        return self._evaluate(now)

    def _receive_vote(self, vote, now):
        if vote.validator not in self.validators:
            self.stats.ignored += 1
            return []
        if not self._checked(vote):
            return []
        counted, conflict = self._votes.add(vote)
        out = self._evidence(conflict, vote) if conflict is not None else []
        return out + self._evaluate(now) if counted else out

    def _evidence(self, earlier, later):
        slot = (later.validator, later.round, later.msg_type)
        if slot in self._evidence_slots:
            return []
        self._evidence_slots.add(slot)
        self.stats.evidence += 1
        return [EvidenceFound(Evidence.of(earlier, later))]

    def _buffer(self, message):
        if len(self._future) < FUTURE_PER_VALIDATOR * len(self.validators):
            key = (message.validator, message.round, message.msg_type)
            self._future.setdefault(key, message)

    def _help_behind(self, height, validator, now):
        cert = self.last_certificate
        if cert is None or cert.height != height or validator == self.self_id:
            return []
        last = self._cert_sent.get(validator)
        if last is not None and now - last < self.timeouts.rebroadcast:
            return []
        self._cert_sent[validator] = now
        return [SendCertificate(validator, cert)]

