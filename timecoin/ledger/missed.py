"""Missed service, sans I/O: who the chain's carried commits show absent.

Each block at height ``h >= 2`` carries the commit certificate of block
``h - 1`` (its *last commit*), signed by the set that signed ``h - 1``: the
active set after block ``h - 2``. :class:`MissedService` counts, for every
member of that set, the consecutive blocks whose carried commit lacks its
signature; a signature resets the count, and a masternode that leaves the
signing set leaves the count. Every node applies the same blocks, so every
node holds the same counts.

A masternode absent from the carried commits of :data:`MISSED_SERVICE_BLOCKS`
consecutive blocks is deactivated for missed service by the next block
(:func:`select_missed`), within two guards:

* the active set never shrinks below the network's minimum number of
  masternodes (``min_masternodes``), evidence deactivations of the same
  block counted;
* one block deactivates for missed service less than 1/3 of the active stake.
  With byzantine stake below 1/3, the honest stake ``H`` is at least 2/3 of
  the total, so what remains keeps more than ``H / 2``: the remaining set
  always holds a majority of the honest stake, and a partition cannot make
  one side remove the other in a single block.

Candidates are taken in order (most blocks missed first, then public key);
one that does not fit is skipped.
"""

#: Consecutive blocks whose carried commit lacks a masternode's signature
#: before the next block deactivates it (100 s on devnet, 50 minutes on
#: testnet, 8.3 hours on mainnet).
MISSED_SERVICE_BLOCKS = 50


class MissedService:
    """Consecutive absences from the carried commits (module docstring)."""

    def __init__(self):
        self._missed = {}  # pubkey -> consecutive blocks absent

    def note(self, signing_set, signers):
        """A block carried a commit signed by ``signers`` (pubkeys) of
        ``signing_set`` (``{pubkey: weight}``, the set that signed it)."""
        signers = set(signers)
        self._missed = {pk: 0 if pk in signers else self._missed.get(pk, 0) + 1
                        for pk in signing_set}

    def count(self, pubkey):
        """The consecutive carried commits ``pubkey`` is absent from."""
        return self._missed.get(pubkey, 0)

    def candidates(self, active_set, threshold=MISSED_SERVICE_BLOCKS):
        """``[(pubkey, blocks missed)]`` of the active masternodes absent from
        ``threshold`` or more consecutive carried commits."""
        return [(pk, n) for pk, n in sorted(self._missed.items())
                if n >= threshold and pk in active_set]


def select_missed(active_set, candidates, evidence_deactivated, min_masternodes):
    """The sorted pubkeys a block deactivates for missed service, out of
    ``candidates`` (``[(pubkey, blocks missed)]``), given the active set
    (``{pubkey: weight}``) and the block's evidence deactivations; the guards
    of the module docstring apply."""
    total = sum(active_set.values())
    remaining = len([pk for pk in active_set if pk not in set(evidence_deactivated)])
    chosen, stake = [], 0
    for pubkey, _ in sorted(candidates, key=lambda c: (-c[1], c[0])):
        if pubkey not in active_set or pubkey in evidence_deactivated:
            continue
        weight = active_set[pubkey]
        if remaining - 1 < min_masternodes or 3 * (stake + weight) >= total:
            continue
        chosen.append(pubkey)
        stake += weight
        remaining -= 1
    return tuple(sorted(chosen))
