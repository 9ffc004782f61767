"""The sans-I/O consensus cores, as the layers above drive them."""

from zope.interface import Attribute, Interface


class IBftMachine(Interface):
    """One validator's (or observer's) Tendermint-style round machine for block commits.

    Driven by method calls and an injected clock (seconds); every method taking
    ``now`` returns a list of actions from :mod:`timecoin.consensus.bft_messages`
    (``Broadcast``, ``SendCertificate``, ``BuildBlock``, ``ValidateBlock``,
    ``CommitBlock``, ``EvidenceFound``) for the caller to perform. Nothing here
    sends, schedules, stores or checks an Ed25519 signature itself.
    """

    height = Attribute("The height being decided (None before the first start_height).")
    round = Attribute("The current round at this height.")
    step = Attribute("'new-height', 'propose', 'prevote', 'precommit' or 'committed'.")
    validators = Attribute("The ValidatorSet that votes at this height.")

    def start_height(height, now, validators=None, start_at=None, priorities=None):
        """Begin ``height`` (round 0 at ``start_at``, default now); drops the previous
        height's votes. ``validators`` replaces the active set from this height on."""

    def proposer(round_=0):
        """The validator id that proposes ``round_`` at the current height."""

    def on_proposal(proposal, now):
        """A signed Proposal arrived from the network."""

    def on_vote(vote, now):
        """A signed Vote arrived from the network."""

    def on_certificate(certificate, now):
        """A CommitCertificate for the current height arrived (this node was behind)."""

    def on_block_built(height, round_, block_hash, now):
        """The block asked for by a BuildBlock action is ready; this node proposes it."""

    def on_block_validated(height, block_hash, valid, now):
        """Answer to a ValidateBlock action: whether the block may be voted for."""

    def on_tick(now):
        """Fire the timeouts (and re-broadcasts) due at or before ``now``."""

    def next_deadline():
        """When :meth:`on_tick` should next be called, or None."""


class IEvidencePool(Interface):
    """Verified equivocation evidence waiting for a block to deactivate its offenders."""

    def add(evidence):
        """Keep ``evidence`` (verified by the caller); False if the same double
        signing (offender, height, round, type) is kept already."""

    def pending():
        """The kept evidence, oldest first."""

    def offenders(active=None):
        """The offenders' public keys, sorted (only those in ``active`` if given)."""

    def justifies(pubkey):
        """True if kept evidence shows ``pubkey`` double signed."""

    def settled(pubkeys):
        """A block deactivated ``pubkeys``: drop their evidence."""
