"""Seeded simulations of the BFT round machine: N validators on a simulated clock
over a lossy, delaying, partitionable network, some of them faulty.

Faults (``Scenario.faults``: validator index -> kind):

* ``crashed`` never runs; ``silent`` runs but sends nothing;
* ``equivocating`` runs two machines with one key, each talking to half of the
  peers, so it double-proposes and double-votes (evidence is expected);
* ``lying`` proposes blocks no honest node accepts and votes for them.

Before ``gst`` messages are lost with probability ``loss`` and the ``partition``
groups cannot reach each other; from ``gst`` on every message arrives within
``max_delay`` (partial synchrony). Signatures are keyed hashes checked by the
verifier (a byzantine node can sign only for itself).

``python -m timecoin.consensus.bft_sim --sweep`` runs the byzantine sweep of
doc/bft.md; ``--seed S --heights H`` one default scenario.
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
    def __init__(self, node, machine, peers):
        self.node, self.machine, self.peers = node, machine, peers


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
        everyone = list(range(len(self.ids)))
        for i, validator in enumerate(self.ids):
            kind = scenario.faults.get(i, "honest")
            if kind == "crashed":
                self.instances[i] = []
                continue
            others = [j for j in everyone if j != i]
            groups = [others]
            if kind == "equivocating":
                groups = self._halves(i, others)
            self.instances[i] = [
                _Instance(i, BftMachine(NETWORK_ID, self.validators, validator,
                                        sim_sign(validator), sim_verify, SIM_TIMEOUTS), g)
                for g in groups]
            if kind in ("honest", "silent"):
                self.honest_height[i] = 0

    def _halves(self, node, others):
        # Split-brain along the partition if there is one (the strongest attack), else
        # a seeded random half; fellow faulty nodes hear from both instances.
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

    def _send(self, src, dst, event):
        if self.kind(src) == "silent" or not self._reachable(src, dst):
            return
        self.messages += 1
        delay = self.rng.uniform(self.sc.min_delay, self.sc.max_delay)
        self._push(self.now + delay, "deliver", dst, event)

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
        for inst in self.instances[node]:
            machine, now = inst.machine, self.now
            if kind == "tick":
                self._ticks.discard((node, now))
                self._handle(inst, machine.on_tick(now))
            elif kind == "deliver":
                payload = event[2]
                if isinstance(payload, tuple):  # a certificate, sent to this node alone
                    self._handle(inst, machine.on_certificate(payload[1], now))
                elif isinstance(payload, Vote):
                    self._handle(inst, machine.on_vote(payload, now))
                else:
                    self._handle(inst, machine.on_proposal(payload, now))
            elif kind == "validated" and inst is event[4]:
                self._handle(inst, machine.on_block_validated(event[2], event[3],
                                                              event[3] in self.valid_blocks, now))

    def _handle(self, inst, actions):
        node, machine = inst.node, inst.machine
        honest = self.kind(node) in ("honest", "silent")
        for action in actions:
            if isinstance(action, Broadcast):
                message = self._distort(inst, action.message)
                for peer in inst.peers:
                    self._send(node, peer, message)
                if self.kind(node) == "equivocating" and inst is self.instances[node][-1]:
                    flipped = self._flipped(message)  # the other half hears a rival vote
                    for peer in self.instances[node][0].peers:
                        if flipped is not None and peer not in inst.peers:
                            self._send(node, peer, flipped)
            elif isinstance(action, SendCertificate):
                peer = self.ids.index(action.validator)
                if peer in inst.peers:
                    self._send(node, peer, ("cert", action.certificate))
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


def sweep(seeds=3, heights=30, out=sys.stdout):
    """The byzantine sweep: 10 equal-stake validators, 0..5 byzantine, each fault kind,
    honest nodes split in two halves until GST. Prints a table; returns its rows."""
    rows = []
    print("| byzantine stake | fault | safe runs | live runs | conflicting heights | "
          "evidence |", file=out)
    print("|---|---|---|---|---|---|", file=out)
    for faulty in range(0, 6):
        for fault in ("equivocating", "silent", "lying"):
            safe = live = conflicts = evidence = 0
            for seed in range(seeds):
                honest = list(range(faulty, 10))
                halves = (tuple(honest[::2]), tuple(honest[1::2]))
                scenario = Scenario(stakes=(1,) * 10, heights=heights, seed=seed,
                                    faults={i: fault for i in range(faulty)},
                                    partition=halves, gst=20.0, loss=0.05,
                                    time_limit=400.0)
                result = run_scenario(scenario)
                safe += result.safe
                live += result.heights_committed >= heights
                conflicts += len(result.conflicting_heights)
                evidence += result.evidence
            row = (faulty, fault, safe, live, conflicts, evidence)
            rows.append(row)
            print(f"| {faulty}/10 | {fault} | {safe}/{seeds} | {live}/{seeds} | {conflicts} | "
                  f"{evidence} |", file=out, flush=True)
    return rows


def main(argv=None):
    """Command line: ``--sweep`` or one scenario."""
    parser = argparse.ArgumentParser(prog="python -m timecoin.consensus.bft_sim")
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--heights", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.sweep:
        sweep(args.seeds, args.heights)
        return 0
    print(run_scenario(Scenario(heights=args.heights, seed=args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
