"""The daemon's process-wide settings (``timecoin/tap.py``)."""

import gc

from twisted.trial import unittest

from timecoin.tap import (
    GC_THRESHOLDS,
    LevelFilter,
    Options,
    apply_log_level,
    tune_garbage_collector,
)


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


class LogLevelTests(unittest.TestCase):
    """twistd's observers see only events at or above the node's level."""

    def test_debug_is_dropped_at_info_and_the_level_can_change(self):
        from twisted.logger import Logger, globalLogPublisher

        seen = []
        globalLogPublisher.addObserver(seen.append)
        self.addCleanup(lambda: [globalLogPublisher.removeObserver(o) for o in list(
            globalLogPublisher._observers) if isinstance(o, LevelFilter)
            and o.wrapped is seen.append])
        try:
            apply_log_level("info")
            log = Logger(namespace="test")
            log.debug("quiet {n}", n=1)
            log.info("loud {n}", n=2)
            apply_log_level("debug")  # replaces the threshold, not a second filter
            log.debug("now heard {n}", n=3)
        finally:
            globalLogPublisher.removeObserver(seen.append)
        self.assertEqual([e["log_format"] for e in seen if e.get("log_namespace") == "test"],
                         ["loud {n}", "now heard {n}"])
