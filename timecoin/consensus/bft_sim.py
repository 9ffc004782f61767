"""Seeded simulations of the BFT round machine: N validators on a simulated clock
over a lossy, delaying, partitionable network, some of them faulty.

Faults (``Scenario.faults``: validator index -> kind):

* ``crashed`` never runs; ``silent`` runs but sends nothing;
* ``equivocating`` runs two machines with one key, each talking to half of the
  peers, so it double-proposes and double-votes (evidence is expected);
* ``lying`` proposes blocks no honest node accepts and votes for them;
* ``split`` is the coordinated split-brain attack: every ``split`` validator runs
  one machine per side of the honest validators (the ``partition`` groups, else
  two seeded halves), and each machine talks only to that side and to the fellow
  attackers' machines of the same side. Each side sees a consistent, honest-looking
  coalition, so the attackers double-sign for whatever each side decides: with
  more than 1/3 of the stake, both sides can reach quorums and commit different
  blocks at one height.

Before ``gst`` messages are lost with probability ``loss`` and the ``partition``
groups cannot reach each other; from ``gst`` on every message arrives within
``max_delay`` (partial synchrony). Signatures are keyed hashes checked by the
verifier (a byzantine node can sign only for itself).

Block sync stands in for the node layer's: a node that hears a message of a
height more than one above its own asks the sender for its stored certificates
from its own height on (up to :data:`SYNC_BATCH`), and applies them in order
with ``on_certificate``. (The machine itself only helps peers one height behind.)

``python -m timecoin.consensus.bft_sim --seed S --heights H`` runs one default
scenario; :mod:`timecoin.consensus.bft_sweep` the byzantine sweep of doc/bft.md.
"""

import argparse
import hashlib
import heapq
import random
import sys
from dataclasses import dataclass, field

from timecoin.consensus.bft import BftMachine, BftTimeouts
from timecoin.consensus.bft_messages import (
    NIL,
    Broadcast,
    BuildBlock,
    CommitBlock,
    EvidenceFound,
    SendCertificate,
    ValidateBlock,
    Vote,
)
from timecoin.consensus.certificate import verify_certificate, verify_evidence
from timecoin.consensus.proposer import ValidatorSet

NETWORK_ID = b"bft-sim"
#: Certificates one block-sync answer carries at most.
SYNC_BATCH = 32
#: Seconds before a node that got no sync answer asks again.
SYNC_RETRY = 1.0
SIM_TIMEOUTS = BftTimeouts(propose=1.0, propose_delta=0.25, prevote=0.5, prevote_delta=0.25,
                           precommit=0.5, precommit_delta=0.25, rebroadcast=1.0)


def _key(validator):
    return hashlib.sha256(b"sim-key" + validator).digest()


def sim_sign(validator):
    """A signer for ``validator`` (keyed hash; stands in for Ed25519)."""
    key = _key(validator)
    return lambda data: hashlib.sha256(key + data).digest()


def sim_verify(validator, data, signature):
    """Checks a :func:`sim_sign` signature."""
    return hashlib.sha256(_key(validator) + data).digest() == signature


@dataclass
class Scenario:
    """One simulation's parameters."""

    stakes: tuple = (1, 1, 1, 1)
    faults: dict = field(default_factory=dict)
    heights: int = 50
    seed: int = 0
    loss: float = 0.0
    min_delay: float = 0.005
    max_delay: float = 0.1
    gst: float = 0.0
    partition: tuple = ()  # groups of validator indexes, separated until gst
    time_limit: float = 10_000.0
    block_interval: float = 0.05
    block_sync: bool = True  # model the node layer's block sync (see the module doc)


@dataclass
class Outcome:
    """What a simulation observed."""

    safe: bool
    heights_committed: int
    sim_time: float
    conflicting_heights: list
    evidence: int
    messages: int
    max_rounds: int


class _Instance:
    """One machine of a node, the peers it sends to, the side of the honest
    validators it belongs to (None: all), and its store of certificates."""

    def __init__(self, node, machine, peers, side=None):
        self.node, self.machine, self.peers, self.side = node, machine, peers, side
        self.certificates = {}  # height -> CommitCertificate (the node's block store)
        self.sync_after = 0.0  # no new sync request before this time


class BftSimulation:
    """Runs one :class:`Scenario` (see the module docstring)."""

    def __init__(self, scenario):
        self.sc = scenario
        self.rng = random.Random(scenario.seed)
        self.ids = [b"val%03d" % i for i in range(len(scenario.stakes))]
        stakes = dict(zip(self.ids, scenario.stakes, strict=True))
        self.validators = ValidatorSet.from_stakes(stakes)
        self.queue, self.seq, self.now = [], 0, 0.0
        self.valid_blocks = set()
        self.commits = {}  # height -> {hash}
        self.honest_height = {}  # node -> committed height
        self.evidence = 0
        self.messages = 0
        self.max_rounds = 0
        self.instances = {}  # node index -> [_Instance]
        self._ticks = set()
        self.sides = self._sides()  # honest node -> its side, for ``split`` attackers
        everyone = list(range(len(self.ids)))
        for i, validator in enumerate(self.ids):
            kind = scenario.faults.get(i, "honest")
            if kind == "crashed":
                self.instances[i] = []
                continue
            others = [j for j in everyone if j != i]
            groups, sides = [others], [self.sides.get(i)]
            if kind == "equivocating":
                groups, sides = self._halves(i, others), [None, None]
            elif kind == "split":
                groups, sides = self._split_peers(others), [0, 1]
            self.instances[i] = [
                _Instance(i, BftMachine(NETWORK_ID, self.validators, validator,
                                        sim_sign(validator), sim_verify, SIM_TIMEOUTS), g, side)
                for g, side in zip(groups, sides, strict=True)]
            if kind in ("honest", "silent"):
                self.honest_height[i] = 0

    def _sides(self):
        # The two sides a ``split`` coalition plays against: the partition's first
        # group and the rest, else a seeded random half of the honest nodes.
        honest = [i for i in range(len(self.ids)) if self.kind(i) != "split"]
        if self.sc.partition:
            first = set(self.sc.partition[0])
        else:
            shuffled = honest[:]
            random.Random(self.sc.seed).shuffle(shuffled)
            first = set(shuffled[:len(shuffled) // 2])
        return {i: 0 if i in first else 1 for i in honest}

    def _split_peers(self, others):
        attackers = [j for j in others if self.kind(j) == "split"]
        return [[j for j in others if self.sides.get(j) == side] + attackers
                for side in (0, 1)]

    def _halves(self, node, others):
        # Split-brain along the partition if there is one, else a seeded random half;
        # fellow faulty nodes hear from both instances.
        if self.sc.partition:
            first = [j for j in others if j in self.sc.partition[0]]
            second = [j for j in others if j not in self.sc.partition[0]]
            rest = [j for j in others if not any(j in g for g in self.sc.partition)]
            return [first + rest, [j for j in second if j not in rest] + rest]
        shuffled = others[:]
        random.Random(self.sc.seed * 1000 + node).shuffle(shuffled)
        half = len(shuffled) // 2
        return [shuffled[:half], shuffled[half:]]

    def kind(self, node):
        """The fault kind of validator ``node``."""
        return self.sc.faults.get(node, "honest")

    def _push(self, at, *event):
        self.seq += 1
        heapq.heappush(self.queue, (at, self.seq, event))

    def _reachable(self, a, b):
        if self.now >= self.sc.gst:
            return True
        side_a = [k for k, group in enumerate(self.sc.partition) if a in group]
        side_b = [k for k, group in enumerate(self.sc.partition) if b in group]
        if side_a and side_b and side_a != side_b:
            return False
        return self.rng.random() >= self.sc.loss

    def _send(self, src, dst, event, side=None):
        if self.kind(src) == "silent" or not self._reachable(src, dst):
            return
        self.messages += 1
        delay = self.rng.uniform(self.sc.min_delay, self.sc.max_delay)
        self._push(self.now + delay, "deliver", dst, event, src, side)

    def _receivers(self, node, side):
        # A ``split`` attacker hears each side on that side's machine only.
        return [inst for inst in self.instances[node]
                if side is None or inst.side is None or inst.side == side
                or self.kind(node) != "split"]

    def run(self):
        """Run until every live honest node commits ``heights`` or time runs out."""
        for insts in self.instances.values():
            for inst in insts:
                self._handle(inst, inst.machine.start_height(1, 0.0))
        target = self.sc.heights
        while self.queue:
            at, _, event = heapq.heappop(self.queue)
            if at > self.sc.time_limit:
                break
            self.now = at
            self._dispatch(event)
            if self.honest_height and min(self.honest_height.values()) >= target:
                break
        conflicting = sorted(h for h, hashes in self.commits.items() if len(hashes) > 1)
        done = min(self.honest_height.values(), default=0)
        return Outcome(not conflicting, done, self.now, conflicting, self.evidence,
                       self.messages, self.max_rounds)

    def _dispatch(self, event):
        kind, node = event[0], event[1]
        if kind == "deliver":
            payload, src, side = event[2], event[3], event[4]
            for inst in self._receivers(node, side):
                self._deliver(inst, payload, src, side)
            return
        if kind == "sync-request":
            self._answer_sync(node, event[2], event[3])
            return
        for inst in self.instances[node]:
            machine, now = inst.machine, self.now
            if kind == "tick":
                self._ticks.discard((node, now))
                self._handle(inst, machine.on_tick(now))
            elif kind == "sync-reply" and inst is event[2]:
                for cert in event[3]:
                    if cert.height == machine.height:
                        self._handle(inst, machine.on_certificate(cert, now))
                inst.sync_after = now
            elif kind == "validated" and inst is event[4]:
                self._handle(inst, machine.on_block_validated(event[2], event[3],
                                                              event[3] in self.valid_blocks, now))

    def _deliver(self, inst, payload, src, side):
        machine, now = inst.machine, self.now
        if isinstance(payload, tuple):  # a certificate, sent to this node alone
            self._handle(inst, machine.on_certificate(payload[1], now))
            return
        if self.sc.block_sync and payload.height > machine.height + 1 \
                and now >= inst.sync_after:
            self._request_sync(inst, src, side)
        if isinstance(payload, Vote):
            self._handle(inst, machine.on_vote(payload, now))
        else:
            self._handle(inst, machine.on_proposal(payload, now))

    def _request_sync(self, inst, src, side):
        # Block sync: ask the node that is ahead for its certificates from our height.
        inst.sync_after = self.now + SYNC_RETRY
        if self.kind(inst.node) == "silent" or not self._reachable(inst.node, src):
            return
        delay = self.rng.uniform(self.sc.min_delay, self.sc.max_delay)
        self._push(self.now + delay, "sync-request", src, inst, side)

    def _answer_sync(self, node, requester, side):
        sources = self._receivers(node, side if side is not None else requester.side)
        if not sources or self.kind(node) == "silent" \
                or not self._reachable(node, requester.node):
            return
        store, start = sources[0].certificates, requester.machine.height
        certs = [store[h] for h in range(start, start + SYNC_BATCH) if h in store]
        if certs:
            self.messages += 1
            delay = self.rng.uniform(self.sc.min_delay, self.sc.max_delay)
            self._push(self.now + delay, "sync-reply", requester.node, requester, certs)

    def _handle(self, inst, actions):
        node, machine = inst.node, inst.machine
        honest = self.kind(node) in ("honest", "silent")
        for action in actions:
            if isinstance(action, Broadcast):
                message = self._distort(inst, action.message)
                for peer in inst.peers:
                    self._send(node, peer, message, inst.side)
                if self.kind(node) == "equivocating" and inst is self.instances[node][-1]:
                    flipped = self._flipped(message)  # the other half hears a rival vote
                    for peer in self.instances[node][0].peers:
                        if flipped is not None and peer not in inst.peers:
                            self._send(node, peer, flipped)
            elif isinstance(action, SendCertificate):
                peer = self.ids.index(action.validator)
                if peer in inst.peers:
                    self._send(node, peer, ("cert", action.certificate), inst.side)
            elif isinstance(action, BuildBlock):
                tag = b"%d:%d:%d:%d" % (action.height, action.round, node, id(inst) % 7919)
                block = hashlib.sha256(b"block" + tag).digest()
                if self.kind(node) != "lying":
                    self.valid_blocks.add(block)
                self._handle(inst, machine.on_block_built(action.height, action.round, block,
                                                          self.now))
            elif isinstance(action, ValidateBlock):
                if honest:
                    delay = self.rng.uniform(0.0, self.sc.max_delay / 2)
                    self._push(self.now + delay, "validated", node, action.height,
                               action.block_hash, inst)
                else:  # byzantine nodes accept anything, at once
                    self._handle(inst, machine.on_block_validated(
                        action.height, action.block_hash, True, self.now))
            elif isinstance(action, CommitBlock):
                self._commit(inst, action, honest)
            elif isinstance(action, EvidenceFound):
                if honest:
                    verify_evidence(action.evidence, self.validators, NETWORK_ID, sim_verify)
                    self.evidence += 1
        deadline = machine.next_deadline()
        if deadline is not None and (node, deadline) not in self._ticks:
            self._ticks.add((node, deadline))
            self._push(deadline, "tick", node)

    def _distort(self, inst, message):
        if self.kind(inst.node) != "lying" or not isinstance(message, Vote):
            return message
        if message.block_hash == NIL or message.block_hash in self.valid_blocks:
            return _resigned(message, hashlib.sha256(b"lie%d" % message.height).digest())
        return message

    def _flipped(self, message):
        if not isinstance(message, Vote):
            return None
        rival = hashlib.sha256(b"rival%d" % message.height).digest()
        return _resigned(message, NIL if message.block_hash != NIL else rival)

    def _commit(self, inst, action, honest):
        machine = inst.machine
        inst.certificates[action.height] = action.certificate
        if honest:
            verify_certificate(action.certificate, self.validators, NETWORK_ID, sim_verify,
                               height=action.height, block_hash=action.block_hash)
            self.commits.setdefault(action.height, set()).add(action.block_hash)
            self.honest_height[inst.node] = action.height
            self.max_rounds = max(self.max_rounds, action.certificate.round + 1)
        start_at = self.now + self.sc.block_interval
        self._handle(inst, machine.start_height(action.height + 1, self.now, start_at=start_at))


def _resigned(vote, block_hash):
    fake = Vote(vote.msg_type, vote.height, vote.round, block_hash, vote.validator)
    signature = sim_sign(vote.validator)(fake.sign_bytes(NETWORK_ID))
    return Vote(fake.msg_type, fake.height, fake.round, block_hash, fake.validator, signature)


def run_scenario(scenario):
    """Run one scenario; return its :class:`Outcome`."""
    return BftSimulation(scenario).run()


def main(argv=None):
    """Command line: one default scenario."""
    parser = argparse.ArgumentParser(prog="python -m timecoin.consensus.bft_sim")
    parser.add_argument("--heights", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(run_scenario(Scenario(heights=args.heights, seed=args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
