"""Certified blocks' bodies in the block service: which bodies a block is
checked and applied with, and sending a certified block to a validator.

:class:`CertifiedBodies` is a base class of
:class:`~timecoin.finality.blocks.BlockService` and uses its state. A block
reached the host with bodies only once its commit certificate verified here
(``_certified``): a proposal is checked without them, as before.
"""

from timecoin.finality.block_messages import Blocks


class CertifiedBodies:
    """The bodies that came with certified blocks (see the module docstring)."""

    def _send_certificate(self, validator, certificate):
        peer_id = self._network.masternode_peers().get(validator) if self._network else None
        if peer_id is None or self._host.block_at(certificate.height) is None:
            return
        d = self._certified_entry(certificate.height)
        d.addCallback(lambda entry: entry is not None and self._network.send(
            peer_id, Blocks((entry[:1] + (certificate.encode(),) + entry[2:],))))
        d.addErrback(lambda f: self.log.failure("sending a certified block", f))

    def _bodies_of(self, block_hash):
        """The bodies that came with ``block_hash``'s verified certificate, or None."""
        if block_hash not in self._certified or block_hash not in self._bodies:
            return None
        return self._bodies[block_hash][0]

    def _certified_kw(self, block):
        bodies = self._bodies_of(block.hash)
        return {} if bodies is None else {"bodies": bodies}

