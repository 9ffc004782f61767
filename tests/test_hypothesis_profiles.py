"""The Hypothesis profiles of the suite, and which one a run loads."""

import os

from hypothesis import settings
from twisted.trial import unittest

from tests import profile_name


class ProfileTests(unittest.TestCase):
    def test_selection(self):
        self.assertEqual(profile_name({}), "dev")
        self.assertEqual(profile_name({"CI": ""}), "dev")
        self.assertEqual(profile_name({"CI": "false"}), "dev")
        self.assertEqual(profile_name({"CI": "true"}), "ci")
        self.assertEqual(profile_name({"CI": "1"}), "ci")
        self.assertEqual(profile_name({"CI": "1", "HYPOTHESIS_PROFILE": "explore"}), "explore")

    def test_ci_profile(self):
        ci = settings.get_profile("ci")
        self.assertTrue(ci.derandomize)
        self.assertIsNone(ci.deadline)
        self.assertIsNone(ci.database)
        self.assertTrue(ci.print_blob)
        self.assertLessEqual(ci.max_examples, 100)

    def test_dev_profile_is_deterministic(self):
        dev = settings.get_profile("dev")
        self.assertTrue(dev.derandomize)
        self.assertIsNone(dev.deadline)

    def test_this_run_loaded_the_selected_profile(self):
        chosen = settings.get_profile(profile_name(os.environ))
        active = settings()
        for name in ("derandomize", "max_examples", "deadline", "print_blob", "database"):
            self.assertEqual(getattr(active, name), getattr(chosen, name), name)
