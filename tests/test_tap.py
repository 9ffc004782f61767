"""The daemon's process-wide settings (``timecoin/tap.py``)."""

import gc
import os
import threading

from twisted.internet import defer, reactor
from twisted.trial import unittest

from tests.support import make_datadir
from timecoin import tap
from timecoin.node.assembly import NodeOptions, build_node, open_storage, prepare
from timecoin.node.verify import ProcessVerifier
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


class AbandonedStartTests(unittest.TestCase):
    """A start-up failing part way undoes what it started and exits with one line."""

    @defer.inlineCallbacks
    def test_workers_that_cannot_spawn_stop_the_database_thread_too(self):
        datadir = make_datadir(self)
        prepared = prepare(NodeOptions(datadir=datadir, api="tcp:0:interface=127.0.0.1",
                                       p2p="tcp:0:interface=127.0.0.1"))
        storage = open_storage(reactor, prepared)
        self.addCleanup(storage.close_now)
        meta = yield storage.open(prepared.genesis)  # on the writer thread: it runs
        self.assertTrue(any("timecoin-db" in t.name for t in threading.enumerate()))
        node = build_node(reactor, prepared, storage, meta)
        node.verifier = ProcessVerifier(reactor, 2, executable="/nonexistent/python3")
        failed = []

        def record_failure(message):
            failed.append(message)
            raise SystemExit(1)

        self.patch(tap, "fail", record_failure)
        self.patch(tap, "apply_log_level", lambda level: None)
        daemon = tap.DaemonService(node)
        self.assertTrue(os.path.exists(os.path.join(datadir, ".cookie")))
        with self.assertRaises(SystemExit):
            daemon.startService()
        self.assertEqual(len(failed), 1)
        self.assertEqual(failed, ["cannot start the signature workers (/nonexistent/python3): "
                                  "No such file or directory"])
        self.assertFalse(any("timecoin-db" in t.name and t.is_alive()
                             for t in threading.enumerate()))
        self.assertFalse(os.path.exists(os.path.join(datadir, ".cookie")))
        self.assertIsNone(node.getServiceNamed("api").port)
        self.assertFalse(node.running)
