"""The votes of one height, tallied by stake per (round, type, block).

A validator that signs votes for several blocks in one (round, type) has each
counted towards its block (up to :data:`MAX_BLOCKS_PER_SLOT` blocks), as CometBFT
does for a block a peer claims a majority for: otherwise nodes that heard different
halves of an equivocation could never agree on a quorum. This keeps safety (two
quorums still share an honest validator, who signs one block per slot) and only
helps liveness. A conflicting vote is also returned with the earlier one, for
evidence. Signatures are checked by the caller before votes come here.
"""

from collections import defaultdict

from timecoin.consensus.bft_messages import PRECOMMIT, PREVOTE

#: Blocks counted per validator and (round, type); further equivocations are dropped.
MAX_BLOCKS_PER_SLOT = 4


class HeightVotes:
    """Prevotes and precommits of one height over a
    :class:`~timecoin.consensus.proposer.ValidatorSet`."""

    def __init__(self, height, validators):
        self.height = height
        self.validators = validators
        self._votes = defaultdict(dict)  # (round, type) -> {validator: {hash: Vote}}
        self._power = defaultdict(lambda: defaultdict(int))  # (round, type) -> {hash: stake}
        self._any = defaultdict(int)  # (round, type) -> stake
        self._round_voters = defaultdict(set)  # round -> validators with any vote

    def add(self, vote):
        """Count ``vote``; return (counted, its signer's earlier vote for another block or None)."""
        if vote.height != self.height or vote.msg_type not in (PREVOTE, PRECOMMIT):
            return False, None
        stake = self.validators.stake(vote.validator)
        if not stake:
            return False, None
        key = (vote.round, vote.msg_type)
        mine = self._votes[key].setdefault(vote.validator, {})
        if vote.block_hash in mine or len(mine) >= MAX_BLOCKS_PER_SLOT:
            return False, None
        earlier = next(iter(mine.values()), None)
        mine[vote.block_hash] = vote
        self._power[key][vote.block_hash] += stake
        if earlier is None:
            self._any[key] += stake
            self._round_voters[vote.round].add(vote.validator)
        return True, earlier

    def power(self, round_, msg_type, block_hash):
        """Stake that voted ``block_hash`` (NIL for nil) in (round, type)."""
        return self._power[(round_, msg_type)].get(block_hash, 0)

    def any_power(self, round_, msg_type):
        """Stake that voted anything in (round, type)."""
        return self._any[(round_, msg_type)]

    def has_quorum_any(self, round_, msg_type):
        """More than 2/3 of the stake voted something (blocks or nil) in (round, type)."""
        return self.validators.is_quorum(self._any[(round_, msg_type)])

    def majority(self, round_, msg_type):
        """The block hash (maybe NIL) with more than 2/3 of the stake in (round, type), or None."""
        for block_hash, stake in self._power[(round_, msg_type)].items():
            if self.validators.is_quorum(stake):
                return block_hash
        return None

    def has_quorum_for(self, round_, msg_type, block_hash):
        """More than 2/3 of the stake voted ``block_hash`` in (round, type)."""
        return self.validators.is_quorum(self.power(round_, msg_type, block_hash))

    def votes_for(self, round_, msg_type, block_hash):
        """The votes for ``block_hash`` in (round, type), sorted by validator."""
        votes = self._votes[(round_, msg_type)].values()
        found = (mine[block_hash] for mine in votes if block_hash in mine)
        return sorted(found, key=lambda v: v.validator)

    def own_votes(self, validator):
        """``validator``'s votes at this height (to re-broadcast), oldest round first."""
        found = [vote for votes in self._votes.values()
                 for vote in votes.get(validator, {}).values()]
        return sorted(found, key=lambda v: (v.round, v.msg_type))

    def round_power(self, round_):
        """Stake of the distinct validators that voted anything in ``round_``."""
        return sum(self.validators.stake(v) for v in self._round_voters[round_])

    def rounds_with_votes(self):
        """The rounds in which some vote was counted."""
        return sorted(self._round_voters)

    def __len__(self):
        return sum(len(mine) for votes in self._votes.values() for mine in votes.values())
