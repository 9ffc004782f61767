"""Interfaces of the finality-proof layer (``timecoin.proofs``)."""

from zope.interface import Interface


class IFinalityProofs(Interface):
    """The hand-offs of a node's chain, and finality proofs built from them."""

    def note_block(block, certificate, active_set):
        """The next committed (or replayed) ``block`` and its certificate;
        ``active_set`` (``{pubkey: weight}``) is the set after it if the block
        changed it, else None."""

    def start_at(block, handoffs):
        """Follow a chain started from a snapshot at ``block``, given the
        hand-offs ``(header, certificate, {pubkey: weight})`` up to it."""

    def handoff_heights():
        """The heights of the blocks that changed the set, with a known set."""

    def missing_sets():
        """The heights of blocks that changed the set whose set is not known."""

    def proof(block, certificate, txid):
        """The ``FinalityProof`` that ``txid`` is in ``block`` (a block noted
        already) committed by ``certificate``; raise ``ProofUnavailable``
        (with a ``reason``) if none can be built."""
