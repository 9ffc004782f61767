"""Accountability in the block service: evidence kept, relayed and used.

See :mod:`timecoin.finality.blocks` ("Accountability"). :class:`BlockEvidence`
is a base class of :class:`~timecoin.finality.blocks.BlockService`; it uses the
service's ``machine``, ``evidence_pool``, ``_network``, ``_key`` and ``_tag``.
Evidence older than ``DEACTIVATION_BLOCKS`` heights is refused (``expired``):
its offender may have served its deactivation and rejoined already.
"""

from twisted.logger import Logger

from timecoin.consensus.certificate import (
    CertificateError,
    verify_certificate,
    verify_evidence,
)
from timecoin.finality.block_messages import EvidenceMessage
from timecoin.ledger.keys import verify as ed25519_verify
from timecoin.ledger.registry import DEACTIVATION_BLOCKS


class BlockEvidence:
    """Verifying, keeping and relaying equivocation evidence; what justifies
    a block's deactivations here."""

    log = Logger()

    def _take_evidence(self, evidence, source):
        """Verify ``evidence`` (from peer ``source``, or None: this node's
        machine); keep and relay it if it is new. True if it verified."""
        try:
            if evidence.height + DEACTIVATION_BLOCKS <= self.machine.height:
                # It may have served its period already: no second one.
                raise CertificateError("expired")
            verify_evidence(evidence, self.machine.validators, self._tag, ed25519_verify)
        except CertificateError as e:
            self.bad_evidence += 1
            self.log.info("evidence against {pubkey} refused: {reason}",
                          pubkey=evidence.validator.hex(), reason=e.reason)
            return False
        if not self.evidence_pool.add(evidence):
            return True
        self.evidence += 1
        self.log.warn("masternode {pubkey} signed two blocks at height {height}; "
                      "the next block deactivates it", pubkey=evidence.validator.hex(),
                      height=evidence.height)
        if self._network is not None:
            wire = EvidenceMessage(evidence)
            for pubkey, peer_id in list(self._network.masternode_peers().items()):
                if pubkey != self._key.pubkey and peer_id != source:
                    self._network.send(peer_id, wire)
        return True

    def _on_evidence(self, peer_id, message):
        if self.machine is not None and message.evidence not in self.evidence_pool:
            self._take_evidence(message.evidence, peer_id)

    def _justification(self, block):
        """``justified(pubkey)`` for checking ``block``: evidence in the pool,
        or a commit certificate of the block that verified here (more than 2/3
        of the stake checked its deactivations)."""
        if block.hash in self._certified:
            return lambda pubkey: True
        return self.evidence_pool.justifies

    def _note_certificate(self, block, certificate):
        """A certified block for the current height: remember it if its
        certificate verifies against the active set."""
        try:
            verify_certificate(certificate, self.machine.validators, self._tag, ed25519_verify,
                               height=block.height, block_hash=block.hash)
        except CertificateError:
            return
        self._certified.add(block.hash)
