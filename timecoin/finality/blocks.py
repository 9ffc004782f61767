"""The block service: one BFT round machine per height, carried over the wire.

:class:`BlockService` drives a :class:`~timecoin.consensus.bft.BftMachine` on
the injected clock (one ``callLater`` at the machine's ``next_deadline``) and
carries its proposals and votes, signed with the node's key, to the masternode
peers (``block_proposal`` with the whole block, ``block_prevote``,
``block_precommit``). The machine checks every signature it is given against
the active set of its height. What blocks contain and whether one is valid is
the node's (``IBlockHost``: ``build_block``, ``check_block``); applying a
committed one too (``commit_block``).

**Following and catching up.** A node outside the active set runs the machine
as an observer; every node also learns its peers' heights (``tip``
messages, and the heights of proposals and votes) and fetches the blocks it
lacks from several peers at once (``getblocks``; :mod:`block_sync`, which
bans peers serving bad ones). Each block that comes back (``blocks``, with
its commit certificate) is fed to the machine with ``on_certificate``: the
machine verifies the certificate (> 2/3 of the active stake, signatures
over the exact sign bytes) and commits only then, and only once
``check_block`` found the block valid here. Nothing is applied without
its certificate. The next height starts one block interval after the commit
(at once while catching up on stored blocks).

Every node answers ``getblocks`` from its chain.

**Accountability.** Evidence of a double signing (``EvidenceFound`` from the
machine, or an ``evidence`` message from a peer) is verified with
``verify_evidence`` against the active set of the height being decided (the
offender must be in it) before it enters the :class:`EvidencePool` and is
relayed once to the masternode peers. The proposer puts the pool's offenders
in its block's ``deactivated`` list and sends the evidence ahead of the
proposal, so that every validator has verified it when it checks the block:
a block is prevoted only if each of its deactivations is justified by
evidence in this node's pool.
"""

from collections import Counter

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from timecoin.consensus.bft import BftMachine, BftTimeouts
from timecoin.consensus.bft_messages import (
    Broadcast,
    BuildBlock,
    CommitBlock,
    EvidenceFound,
    Proposal,
    SendCertificate,
    ValidateBlock,
)
from timecoin.consensus.evidence import EvidencePool
from timecoin.consensus.proposer import ProposerPriorities, ValidatorSet, replay_priorities
from timecoin.finality.block_bodies import CertifiedBodies
from timecoin.finality.block_evidence import BlockEvidence
from timecoin.finality.block_messages import (
    BlockProposalMessage,
    EvidenceMessage,
    vote_message,
)
from timecoin.finality.block_sync import BlockSync
from timecoin.interfaces import IBlockService
from timecoin.ledger.block import Block, BlockError
from timecoin.ledger.checkpoint import CertifiedBodyError, MissingTransactions
from timecoin.ledger.keys import verify as ed25519_verify
from timecoin.ledger.networks import BY_ID, signing_network_id
from timecoin.p2p import messages as m

#: How often blocks waiting for transactions are checked again (seconds).
RECHECK_S = 0.25
#: Proposed blocks kept per height (bounds what a flood of proposals costs).
MAX_BLOCKS_PER_HEIGHT = 16


def network_tag(network_id):
    """The bytes BFT signatures cover on network ``network_id``
    (:func:`~timecoin.ledger.networks.signing_network_id`, which finality
    proofs are verified with)."""
    return signing_network_id(BY_ID[network_id])


@implementer(IBlockService)
class BlockService(BlockEvidence, CertifiedBodies, BlockSync, Service):
    """Runs the BFT rounds of this node (see the module docstring).

    ``host`` provides ``IBlockHost``; ``key`` is the node's signing key (its
    ``pubkey`` votes if it is in the active set, and that set has at least
    ``min_validators`` masternodes: the network's minimum); ``interval`` the
    network's block interval; the network given to :meth:`attach` an
    ``IPeerMessaging``.
    """

    log = Logger()

    def __init__(self, clock, host, network_id, interval, key, timeouts=None,
                 sync_interval=None, min_validators=1):
        self._clock = clock
        self._host = host
        self._tag = network_tag(network_id)
        self.interval = float(interval)
        self._key = key
        self._timeouts = timeouts or BftTimeouts()
        self.sync_interval = float(sync_interval or max(interval, 1.0))
        self.min_validators = min_validators
        self._loading = None
        self._network = None
        self.machine = None
        self._timer = None
        self._sync_timer = None
        self._recheck = None
        self._blocks = {}  # block hash -> Block, of the current and next height
        self._awaiting = {}  # block hash -> height: valid once its transactions are here
        self._height_started = None
        self._last_commit = None
        self._commits = []
        self.evidence_pool = EvidencePool()
        self._init_sync()
        self._certified = set()  # hashes of blocks whose certificate verified here
        self._bodies = {}  # block hash -> (raw bodies, peer id) that came with its certificate
        self._refused = set()  # hashes of blocks found invalid here (without bodies)
        self.lying_peers = 0  # certified blocks refused for their bodies
        # Statistics (``statistics``).
        self.rounds = Counter()  # rounds a height took -> heights
        self.commit_seconds = Counter()  # seconds from a height's start to its commit
        self.missed_proposals = 0
        self.bad_blocks = 0
        self.synced = 0
        self.evidence = 0
        self.bad_evidence = 0

    # -- wiring and life -------------------------------------------------------

    def attach(self, network):
        self._network = network
        network.register_handler(m.BLOCK_PROPOSAL, self._on_proposal)
        network.register_handler(m.BLOCK_PREVOTE, self._on_vote)
        network.register_handler(m.BLOCK_PRECOMMIT, self._on_vote)
        network.register_handler(m.GETBLOCKS, self._on_getblocks)
        network.register_handler(m.BLOCKS, self._on_blocks)
        network.register_handler(m.BLOCK_TIP, self._on_tip)
        network.register_handler(m.EVIDENCE, self._on_evidence)

    def startService(self):
        super().startService()
        d = self._loading = self._host.load()
        d.addCallback(self._begin)
        d.addErrback(self._load_failed)

    def _load_failed(self, failure):
        self._loading = None
        if self.running:  # (stopped meanwhile: the storage closed under it)
            self.log.failure("replaying stored blocks; no blocks are committed", failure)

    def _begin(self, _):
        """The stored chain is replayed: start the next height."""
        self._loading = None
        if not self.running:
            return
        validators = ValidatorSet.from_stakes(self._host.validators())
        priorities = self._replay_priorities(validators)
        self.machine = BftMachine(self._tag, validators, None, self._key.sign,
                                  ed25519_verify, self._timeouts, priorities)
        now = self._clock.seconds()
        self._height_started = now
        self._last_commit = now
        self._enrol(validators)
        self._height_started = now + self.interval
        self._run(self.machine.start_height(self._host.height() + 1, now,
                                            start_at=now + self.interval))
        self._schedule_sync()

    def _replay_priorities(self, current):
        """Proposer priorities replayed from the genesis with the set each
        height had (:func:`~timecoin.consensus.proposer.replay_priorities`;
        doc/bft.md, "The block service"). If some height's set is not known
        here (blocks stored before schema version 5), with ``current``
        throughout, and it says so."""
        height = self._host.height()
        priorities = replay_priorities(self._host.validators_at(h) for h in range(height + 1))
        if priorities is None:
            self.log.warn("the active set of some heights up to {height} is not known here: "
                          "proposer priorities are replayed with the current set",
                          height=height)
            priorities = ProposerPriorities(current)
            for _ in range(height):
                priorities.advance()
        elif priorities.validators != current:
            priorities = priorities.with_validators(current)
        return priorities

    def _enrol(self, validators):
        """Vote only with a large enough active set (``min_validators``): below
        it, this node observes and commits nothing."""
        enough = len(validators) >= self.min_validators
        self.machine.self_id = self._key.pubkey if enough else None

    def stopService(self):
        super().stopService()
        for call in (self._timer, self._sync_timer, self._recheck):
            if call is not None and call.active():
                call.cancel()
        self._timer = self._sync_timer = self._recheck = None
        self._stop_sync()
        commits, self._commits = self._commits, []
        return defer.DeferredList(commits) if commits else None

    @property
    def height(self):
        """The height being decided (the best block's + 1), or None before start."""
        return self.machine.height if self.machine is not None else None

    def is_validator(self):
        return self.machine is not None and self.machine.is_validator()

    # -- the machine's actions -------------------------------------------------

    def _run(self, actions):
        queue = list(actions)
        while queue:
            action = queue.pop(0)
            queue.extend(self._act(action))
        self._reschedule()

    def _act(self, action):
        now = self._clock.seconds()
        if isinstance(action, Broadcast):
            self._broadcast(action.message)
        elif isinstance(action, BuildBlock):
            offenders = self.evidence_pool.offenders(self.machine.validators)
            block = self._host.build_block(action.round, self._key.pubkey, now, offenders)
            self._blocks[block.hash] = block
            return self.machine.on_block_built(action.height, action.round, block.hash, now)
        elif isinstance(action, ValidateBlock):
            return self._validate(action.height, action.block_hash)
        elif isinstance(action, CommitBlock):
            return self._commit(self._blocks[action.block_hash], action.certificate)
        elif isinstance(action, SendCertificate):
            self._send_certificate(action.validator, action.certificate)
        elif isinstance(action, EvidenceFound):
            self._take_evidence(action.evidence, None)
        return []

    def _broadcast(self, message):
        if self._network is None:
            return
        if isinstance(message, Proposal):
            block = self._blocks.get(message.block_hash)
            if block is None:
                return
            wire = BlockProposalMessage(message, block.encode())
            deactivated = set(block.header.deactivated)
            # The evidence goes first: a validator checks the block against it.
            ahead = [EvidenceMessage(e) for e in self.evidence_pool.pending()
                     if e.validator in deactivated]
        else:
            wire, ahead = vote_message(message), []
        for pubkey, peer_id in list(self._network.masternode_peers().items()):
            if pubkey != self._key.pubkey:
                for evidence in ahead:
                    self._network.send(peer_id, evidence)
                self._network.send(peer_id, wire)

    def _validate(self, height, block_hash):
        block = self._blocks.get(block_hash)
        if block is None or height != self.machine.height:
            self._awaiting[block_hash] = height  # its proposal may still come
            return []
        now = self._clock.seconds()
        try:
            self._host.check_block(block, self.machine.proposer, now,
                                   self._justification(block), **self._certified_kw(block))
        except MissingTransactions as e:
            # Not refused: they come through finality (relay, polls, catch-up),
            # and the block is checked again; meanwhile the propose timeout
            # makes this node prevote nil.
            if block_hash not in self._awaiting:
                self.log.info("block {hash} at height {height} waits for {n} transactions "
                              "not finalized here", hash=block_hash.hex(), height=height,
                              n=len(e.txids))
            self._awaiting[block_hash] = height
            self._schedule_recheck()
            return []
        except CertifiedBodyError as e:
            self.lying_peers += 1
            self._awaiting.pop(block_hash, None)
            self._refused.add(block_hash)  # checked again if other bodies come
            _, peer_id = self._bodies.pop(block_hash)
            self.log.warn("certified block {hash} at height {height} came with invalid "
                          "bodies from peer {peer}: {error}; not applied",
                          hash=block_hash.hex(), height=height, peer=peer_id, error=e)
            if block_hash in self._fed:
                self._refused_block(block_hash, height, e)
            elif peer_id is not None:
                self._ban(peer_id, f"certified block {height} came with invalid bodies: {e}")
            return []
        except BlockError as e:
            self.bad_blocks += 1
            self._refused.add(block_hash)
            self._awaiting.pop(block_hash, None)
            self.log.warn("block {hash} at height {height} is invalid here: {error}",
                          hash=block_hash.hex(), height=height, error=e)
            self._refused_block(block_hash, height, e)
            return self.machine.on_block_validated(height, block_hash, False, now)
        self._awaiting.pop(block_hash, None)
        return self.machine.on_block_validated(height, block_hash, True, now)

    def _schedule_recheck(self):
        if self._recheck is None or not self._recheck.active():
            self._recheck = self._clock.callLater(RECHECK_S, self._recheck_waiting)

    def _recheck_waiting(self):
        self._recheck = None
        if not self.running:
            return
        out = []
        for block_hash, height in list(self._awaiting.items()):
            if height != self.machine.height:
                del self._awaiting[block_hash]
            elif block_hash in self._blocks:
                out += self._validate(height, block_hash)
        self._run(out)
        if any(h in self._blocks for h in self._awaiting):
            self._schedule_recheck()

    def _commit(self, block, certificate):
        now = self._clock.seconds()
        d = self._host.commit_block(block, certificate, **self._certified_kw(block))
        self.evidence_pool.settled(block.header.deactivated)
        self._certified.clear()
        self._bodies.clear()
        self._refused.clear()
        self._commits.append(d)
        d.addErrback(lambda f: self.log.failure("storing block {height}", f,
                                                height=block.height))
        d.addBoth(lambda _: self._commits.remove(d) if d in self._commits else None)
        self.rounds[certificate.round + 1] += 1
        self.missed_proposals += certificate.round
        self.commit_seconds[round(now - self._height_started, 3)] += 1
        self._last_commit = now
        self.log.debug("block {height} committed ({hash}, round {round})",
                       height=block.height, hash=block.hash.hex(), round=certificate.round)
        height = block.height + 1
        self._blocks = {h: b for h, b in self._blocks.items() if b.height >= height}
        self._awaiting = {}
        start_at = now if self._synced_to(block.height) else now + self.interval
        self._height_started = start_at
        validators = ValidatorSet.from_stakes(self._host.validators())
        self._enrol(validators)
        out = self.machine.start_height(height, now, validators=validators, start_at=start_at)
        self._fetch()
        return out + self._feed()

    def _reschedule(self):
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if not self.running or self.machine is None:
            return
        deadline = self.machine.next_deadline()
        if deadline is not None:
            delay = max(0.0, deadline - self._clock.seconds())
            self._timer = self._clock.callLater(delay, self._tick)

    def _tick(self):
        self._timer = None
        self._run(self.machine.on_tick(self._clock.seconds()))

    # -- messages from peers ---------------------------------------------------

    def _on_proposal(self, peer_id, message):
        if self.machine is None:
            return
        proposal = message.proposal
        self._note_height(peer_id, proposal.height)
        if proposal.height not in (self.machine.height, self.machine.height + 1):
            self._run(self.machine.on_proposal(proposal, self._clock.seconds()))
            return
        try:
            block = Block.decode(message.block_bytes)
        except BlockError:
            return
        if block.hash != proposal.block_hash or block.height != proposal.height:
            return
        same_height = [b for b in self._blocks.values() if b.height == block.height]
        if block.hash not in self._blocks and len(same_height) >= MAX_BLOCKS_PER_HEIGHT:
            return
        self._blocks.setdefault(block.hash, block)
        out = self.machine.on_proposal(proposal, self._clock.seconds())
        if block.hash in self._awaiting:
            out += self._validate(self._awaiting[block.hash], block.hash)
        self._run(out)

    def _on_vote(self, peer_id, message):
        if self.machine is None:
            return
        self._note_height(peer_id, message.vote.height)
        self._run(self.machine.on_vote(message.vote, self._clock.seconds()))

    # -- statistics --------------------------------------------------------------

    def statistics(self):
        return [
            ("timecoin_block_rounds", "histogram", "Rounds each committed height took",
             dict(self.rounds)),
            ("timecoin_block_commit_seconds", "histogram",
             "Seconds from a height's start to its commit", dict(self.commit_seconds)),
            ("timecoin_block_missed_proposals", "counter",
             "Rounds whose proposal was not committed (a round after them committed)",
             self.missed_proposals),
            ("timecoin_block_invalid", "counter", "Proposed blocks found invalid here",
             self.bad_blocks),
            ("timecoin_block_evidence", "counter",
             "Double signatures seen (two blocks signed by one masternode in one round)",
             self.evidence),
            ("timecoin_block_evidence_refused", "counter",
             "Evidence refused (bad signatures, or its offender is not in the active set)",
             self.bad_evidence),
        ]
