"""The pool of verified equivocation evidence waiting for a block, sans I/O.

A piece of :class:`~timecoin.consensus.certificate.Evidence` enters the pool
only once it verified (``verify_evidence``) against the active set of its
height; the pool keeps at most :data:`MAX_PENDING_EVIDENCE` pieces, one per
(offender, height, round, message type), and drops the oldest first. The
proposer of a block takes the pool's :meth:`EvidencePool.offenders` into the
block's ``deactivated`` list; a validator prevotes a block only if every
evidence deactivation in it is :meth:`EvidencePool.justifies`-ed here. Once a
block deactivated an offender, :meth:`EvidencePool.settled` removes its
evidence.
"""

from zope.interface import implementer

from timecoin.interfaces import IEvidencePool

#: Pieces of evidence kept (a flood of valid evidence is bounded by the set's
#: size anyway: each piece needs an active masternode's two signatures).
MAX_PENDING_EVIDENCE = 64


def evidence_key(evidence):
    """What identifies one double signing: (offender, height, round, type)."""
    first = evidence.first
    return (first.validator, first.height, first.round, first.msg_type)


@implementer(IEvidencePool)
class EvidencePool:
    """Verified evidence not yet in a block (see the module docstring)."""

    def __init__(self, limit=MAX_PENDING_EVIDENCE):
        self.limit = limit
        self._pending = {}  # evidence_key -> Evidence, oldest first

    def add(self, evidence):
        key = evidence_key(evidence)
        if key in self._pending:
            return False
        while len(self._pending) >= self.limit:
            self._pending.pop(next(iter(self._pending)))
        self._pending[key] = evidence
        return True

    def __contains__(self, evidence):
        return evidence_key(evidence) in self._pending

    def __len__(self):
        return len(self._pending)

    def pending(self):
        return list(self._pending.values())

    def offenders(self, active=None):
        found = sorted({e.validator for e in self._pending.values()})
        return [pk for pk in found if active is None or pk in active]

    def justifies(self, pubkey):
        return any(e.validator == pubkey for e in self._pending.values())

    def settled(self, pubkeys):
        gone = set(pubkeys)
        self._pending = {k: e for k, e in self._pending.items() if e.validator not in gone}
