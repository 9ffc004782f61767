"""The daemon's process-wide settings (``timecoin/tap.py``)."""

import gc

from twisted.trial import unittest

from timecoin.tap import GC_THRESHOLDS, Options, tune_garbage_collector


class GarbageCollectorTests(unittest.TestCase):
    def setUp(self):
        thresholds = gc.get_threshold()
        self.addCleanup(gc.set_threshold, *thresholds)
        self.addCleanup(gc.unfreeze)

    def test_start_up_objects_are_frozen_and_collections_are_rarer(self):
        gc.unfreeze()
        tune_garbage_collector()
        self.assertEqual(gc.get_threshold(), GC_THRESHOLDS)
        self.assertGreater(gc.get_threshold()[0], 700)
        self.assertGreater(gc.get_freeze_count(), 0)


class OptionsTests(unittest.TestCase):
    def test_network_defaults_to_devnet(self):
        options = Options()
        options.parseOptions([])
        self.assertEqual(options["network"], "devnet")
