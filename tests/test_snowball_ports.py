"""avalanchego's Snowball unit tests, ported to this engine's conflict sets.

avalanchego's ``RecordPoll(count, choice)`` feeds the count of the sample's
plurality choice; here a poll reports each polled transaction's yes count, so
``RecordPoll(count, blue)`` is ``record_poll({"blue": (count, k)})`` and
``RecordUnsuccessfulPoll()`` is a poll in which every member got no votes.
With ``k = 10``, ``alpha_preference = 0.6`` and ``alpha = 0.8`` the counts are
avalanchego's ``AlphaPreference = 6`` and ``AlphaConfidence = 8``; a conflict
set of two members is binary Snowball, of three n-ary.
"""

import random

from twisted.trial import unittest

from timecoin.consensus.snowball import ACCEPTED, PENDING, REJECTED, SnowballEngine, SnowballParams

K = 10
ALPHA_PREFERENCE, ALPHA_CONFIDENCE = 6, 8


def engine_with(colors, beta):
    params = SnowballParams(k=K, alpha=0.8, alpha_preference=0.6, beta=beta,
                            finality_confidence=beta, max_rounds=100)
    engine = SnowballEngine(params)
    for color in colors:
        engine.add(color, ["coin"])
    return engine


def record(engine, count, choice):
    return engine.record_poll({choice: (count, K)})


def unsuccessful(engine, colors):
    return engine.record_poll({c: (0, K) for c in colors})


def preference(engine, colors):
    """The member this node votes for (or the one accepted)."""
    chosen = [c for c in colors if engine.is_preferred(c)]
    assert len(chosen) == 1, chosen
    return chosen[0]


class BinarySnowballTests(unittest.TestCase):
    colors = ("red", "blue")

    def test_binary_snowball(self):
        # TestBinarySnowball
        engine = engine_with(self.colors, beta=2)
        self.assertEqual(preference(engine, self.colors), "red")
        record(engine, ALPHA_CONFIDENCE, "blue")
        self.assertEqual(preference(engine, self.colors), "blue")
        record(engine, ALPHA_CONFIDENCE, "red")  # a tie in strength keeps blue
        self.assertEqual(preference(engine, self.colors), "blue")
        record(engine, ALPHA_CONFIDENCE, "blue")
        self.assertEqual(engine.status("blue"), PENDING)
        decisions = record(engine, ALPHA_CONFIDENCE, "blue")
        self.assertEqual(decisions, [("blue", True, "finalized"), ("red", False, "conflict")])
        self.assertEqual(preference(engine, self.colors), "blue")

    def test_record_preference_poll_resets_confidence(self):
        # TestBinarySnowballRecordPreferencePoll: alpha_preference but not alpha_confidence.
        engine = engine_with(self.colors, beta=2)
        record(engine, ALPHA_CONFIDENCE, "blue")
        record(engine, ALPHA_PREFERENCE, "red")
        self.assertEqual(preference(engine, self.colors), "blue")
        self.assertEqual(engine.snapshot("blue").confidence, 0)
        self.assertEqual(engine.snapshot("red").confidence, 0)
        record(engine, ALPHA_CONFIDENCE, "blue")
        self.assertEqual(engine.status("blue"), PENDING)
        record(engine, ALPHA_CONFIDENCE, "blue")
        self.assertEqual(engine.status("blue"), ACCEPTED)

    def test_record_unsuccessful_poll(self):
        # TestBinarySnowballRecordUnsuccessfulPoll
        engine = engine_with(self.colors, beta=3)
        record(engine, ALPHA_CONFIDENCE, "blue")
        self.assertEqual(preference(engine, self.colors), "blue")
        unsuccessful(engine, self.colors)
        record(engine, ALPHA_CONFIDENCE, "blue")
        record(engine, ALPHA_CONFIDENCE, "blue")
        self.assertEqual(engine.status("blue"), PENDING)
        record(engine, ALPHA_CONFIDENCE, "blue")
        self.assertEqual(engine.status("blue"), ACCEPTED)
        self.assertEqual(engine.status("red"), REJECTED)

    def test_accept_weird_color(self):
        # TestBinarySnowballAcceptWeirdColor: confidence, not strength, decides.
        engine = engine_with(self.colors, beta=2)
        record(engine, ALPHA_CONFIDENCE, "red")
        unsuccessful(engine, self.colors)
        record(engine, ALPHA_CONFIDENCE, "red")
        unsuccessful(engine, self.colors)
        record(engine, ALPHA_CONFIDENCE, "blue")
        self.assertEqual(preference(engine, self.colors), "red")  # strength 2 : 1
        decisions = record(engine, ALPHA_CONFIDENCE, "blue")  # 2 : 2, blue confident twice
        self.assertEqual(decisions[0], ("blue", True, "finalized"))
        self.assertEqual(engine.status("red"), REJECTED)

    def test_lock_color(self):
        # TestBinarySnowballLockColor: after finalizing, later polls change nothing.
        engine = engine_with(self.colors, beta=1)
        self.assertEqual(record(engine, ALPHA_CONFIDENCE, "red")[0], ("red", True, "finalized"))
        record(engine, ALPHA_CONFIDENCE, "blue")
        self.assertEqual((engine.status("red"), engine.status("blue")), (ACCEPTED, REJECTED))
        self.assertEqual(engine.votes(["red", "blue"]), [True, False])


class NnarySnowballTests(unittest.TestCase):
    colors = ("red", "blue", "green")

    def test_nnary_snowball(self):
        # TestNnarySnowball
        engine = engine_with(self.colors, beta=2)
        self.assertEqual(preference(engine, self.colors), "red")
        record(engine, ALPHA_CONFIDENCE, "blue")
        self.assertEqual(preference(engine, self.colors), "blue")
        record(engine, ALPHA_CONFIDENCE, "red")
        self.assertEqual(preference(engine, self.colors), "blue")
        record(engine, ALPHA_CONFIDENCE, "blue")
        self.assertEqual(engine.status("blue"), PENDING)
        decisions = record(engine, ALPHA_CONFIDENCE, "blue")
        self.assertEqual(sorted(decisions), [("blue", True, "finalized"),
                                             ("green", False, "conflict"),
                                             ("red", False, "conflict")])

    def test_nnary_confidence_reset(self):
        # TestNnarySnowballConfidenceReset: a preference-only poll for another choice.
        engine = engine_with(self.colors, beta=4)
        for _ in range(3):
            record(engine, ALPHA_CONFIDENCE, "blue")
        self.assertEqual(engine.snapshot("blue").confidence, 3)
        record(engine, ALPHA_PREFERENCE, "green")
        self.assertEqual(engine.snapshot("blue").confidence, 0)
        self.assertEqual(preference(engine, self.colors), "blue")
        for _ in range(3):
            record(engine, ALPHA_CONFIDENCE, "blue")
        self.assertEqual(engine.status("blue"), PENDING)
        record(engine, ALPHA_CONFIDENCE, "blue")
        self.assertEqual(engine.status("blue"), ACCEPTED)

    def test_nnary_different_snowflake_color(self):
        # TestNnarySnowballDifferentSnowflakeColor
        engine = engine_with(self.colors, beta=2)
        record(engine, ALPHA_CONFIDENCE, "blue")
        self.assertEqual(engine.snapshot("blue").confidence, 1)
        record(engine, ALPHA_CONFIDENCE, "red")
        self.assertEqual(engine.snapshot("blue").confidence, 0)
        self.assertEqual(engine.snapshot("red").confidence, 1)
        self.assertEqual(preference(engine, self.colors), "blue")  # tie keeps blue


class GovernanceTests(unittest.TestCase):
    """TestSnowballGovernance: 55 honest red, 35 honest blue, 10 byzantine blue.

    100 engines each poll ``k = 20`` of all 100 (themselves included) with
    avalanchego's test parameters (alpha 15 of 20, beta 20); byzantine nodes
    always vote blue. Every honest node must end on red.
    """

    def test_governance(self):
        rng = random.Random(0)
        params = SnowballParams(k=20, alpha=0.75, alpha_preference=0.75, beta=20,
                                finality_confidence=20, max_rounds=10_000)
        engines = []
        for index in range(100):
            engine = SnowballEngine(params)
            first, second = ("red", "blue") if index < 55 else ("blue", "red")
            engine.add(first, ["coin"])
            engine.add(second, ["coin"])
            engines.append(engine)
        honest = range(90)  # 90..99 are byzantine and always prefer blue

        def vote(voter, color):
            if voter >= 90:
                return color == "blue"
            return engines[voter].is_preferred(color)

        rounds = 0
        while any(engines[i].status("red") == PENDING for i in honest) and rounds < 200_000:
            rounds += 1
            poller = rng.choice([i for i in honest if engines[i].status("red") == PENDING])
            sample = rng.sample(range(100), 20)
            engines[poller].record_poll({c: (sum(vote(v, c) for v in sample), 20)
                                         for c in ("red", "blue")})
        for index in honest:
            self.assertEqual(engines[index].status("red"), ACCEPTED, index)
            self.assertEqual(engines[index].status("blue"), REJECTED, index)
