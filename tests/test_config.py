"""Configuration: presets, the TOML file, validation with one clear line."""

import os

from twisted.trial import unittest

from tests.support import make_datadir
from timecoin.node.assembly import p2p_config
from timecoin.node.config import ConfigError, load_file, parse_peer, preset, resolve
from timecoin.p2p.config import P2PConfig


class PresetTests(unittest.TestCase):
    def test_testnet_is_the_specification_table(self):
        p = preset("testnet")
        self.assertEqual(p["consensus.avalanche"], {
            "sample_size": 20, "finality_confidence": 15, "beta": 15, "alpha": 0.75,
            "alpha_preference": 0.75, "query_timeout_ms": 2000, "max_rounds": 30})
        self.assertEqual(p["storage"], {"cache_size_mb": 256, "flush_interval_ms": 1000})
        self.assertEqual((p["network"]["max_peers"], p["network"]["rate_limit_tx"],
                          p["network"]["rate_limit_blocks"], p["network"]["max_message_size"]),
                         (50, 1000, 100, 10485760))

    def test_mainnet(self):
        p = preset("mainnet")
        self.assertEqual(p["consensus.avalanche"], {
            "sample_size": 50, "finality_confidence": 20, "beta": 20, "alpha": 0.75,
            "alpha_preference": 0.75, "query_timeout_ms": 3000, "max_rounds": 50})
        self.assertEqual(p["storage"], {"cache_size_mb": 512, "flush_interval_ms": 2000})
        self.assertEqual((p["network"]["max_peers"], p["network"]["rate_limit_tx"],
                          p["network"]["rate_limit_blocks"]), (100, 5000, 500))

    def test_unknown_network(self):
        self.assertRaises(ValueError, preset, "moonnet")


class FileTests(unittest.TestCase):
    def setUp(self):
        self.dir = make_datadir(self)

    def write(self, text, name="timecoin.toml"):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def error(self, text):
        e = self.assertRaises(ConfigError, load_file, self.write(text))
        self.assertNotIn("\n", str(e))
        return str(e)

    def test_file_overrides_preset_and_options_override_file(self):
        self.write("[consensus.avalanche]\nsample_size = 7\n[storage]\nflush_interval_ms = 50\n")
        values = resolve("testnet", datadir=self.dir,
                         overrides={("storage", "flush_interval_ms"): 70})
        self.assertEqual(values["consensus.avalanche"]["sample_size"], 7)
        self.assertEqual(values["storage"]["flush_interval_ms"], 70)
        self.assertEqual(values["consensus.avalanche"]["beta"], 15)

    def test_api_credentials(self):
        values = load_file(self.write('[api]\nrpcuser = "u"\nrpcpassword = "p"\n'))
        self.assertEqual(values["api"], {"rpcuser": "u", "rpcpassword": "p"})

    def test_alpha_preference_may_not_exceed_alpha(self):
        self.write("[consensus.avalanche]\nalpha = 0.8\nalpha_preference = 0.9\n")
        e = self.assertRaises(ConfigError, resolve, "testnet", datadir=self.dir)
        self.assertIn("alpha_preference must not exceed", str(e))

    def test_errors_name_the_key(self):
        self.assertIn("not valid TOML", self.error("[storage\n"))
        self.assertIn("unknown config key 'bogus'", self.error("[storage]\nbogus = 1\n"))
        self.assertIn("unknown config section [wallet]", self.error("[wallet]\nx = 1\n"))
        self.assertIn("unknown config section [consensus.snowman]",
                      self.error("[consensus.snowman]\nx = 1\n"))
        self.assertIn("unknown config key 'top'", self.error("top = 1\n"))
        self.assertIn("consensus.avalanche.alpha",
                      self.error("[consensus.avalanche]\nalpha = 0.5\n"))
        self.assertIn("storage.cache_size_mb", self.error('[storage]\ncache_size_mb = "big"\n'))
        self.assertIn("network.max_peers", self.error("[network]\nmax_peers = -1\n"))
        self.assertIn("consensus.avalanche.sample_size",
                      self.error("[consensus.avalanche]\nsample_size = true\n"))
        self.assertIn("node.log_level", self.error('[node]\nlog_level = "loud"\n'))
        self.assertIn("validation.signature_workers must be an integer from 0 to 64",
                      self.error("[validation]\nsignature_workers = 65\n"))

    def test_signature_workers(self):
        self.assertEqual(resolve("devnet")["validation"]["signature_workers"], 2)
        values = load_file(self.write("[validation]\nsignature_workers = 0\n"))
        self.assertEqual(values["validation"], {"signature_workers": 0})

    def test_numbers_are_finite_and_in_range(self):
        self.assertIn("state.lock_timeout_s", self.error("[state]\nlock_timeout_s = inf\n"))
        self.assertIn("state.lock_timeout_s", self.error("[state]\nlock_timeout_s = nan\n"))
        self.assertIn("network.rate_limit_tx", self.error("[network]\nrate_limit_tx = 1e17\n"))
        self.assertIn("network.rate_limit_tx must be an integer from 1 to 1000000",
                      self.error("[network]\nrate_limit_tx = 100000000000000000\n"))
        self.assertIn("mempool.max_count", self.error("[mempool]\nmax_count = 1000000000000\n"))
        self.assertEqual(load_file(self.write("[state]\nlock_timeout_s = 2.5\n"))["state"],
                         {"lock_timeout_s": 2.5})

    def test_file_that_is_not_utf8(self):
        path = os.path.join(self.dir, "timecoin.toml")
        with open(path, "wb") as f:
            f.write(b"[storage]\n# caf\xe9\n")
        e = self.assertRaises(ConfigError, load_file, path)
        self.assertIn("is not UTF-8 text", str(e))
        self.assertNotIn("\n", str(e))

    def test_peer_addresses(self):
        self.assertEqual(parse_peer("127.0.0.1:9"), ("127.0.0.1", 9))
        self.assertEqual(parse_peer("[::1]:24000"), ("::1", 24000))
        for bad in ("nohost", "127.0.0.1:99999", ":80", "host:", "host:0", "a b:1", "h:x"):
            e = self.assertRaises(ConfigError, parse_peer, bad)
            self.assertIn(repr(bad), str(e))
        self.assertIn("peer 'nohost'", self.error('[node]\npeers = ["nohost"]\n'))
        e = self.assertRaises(ConfigError, resolve, "devnet",
                              overrides={("node", "peers"): ["127.0.0.1:99999"]})
        self.assertIn("from 1 to 65535", str(e))

    def test_missing_file(self):
        e = self.assertRaises(ConfigError, load_file, os.path.join(self.dir, "none.toml"))
        self.assertIn("does not exist", str(e))


class PeerLimitKeysTests(unittest.TestCase):
    """The peer limits of ``[network]`` reach the peer network's P2PConfig."""

    KEYS = {  # config key: (P2PConfig field, a valid value, values refused)
        "max_send_buffer_bytes": ("max_send_buffer", 2**20, (0, 1000, 2**31, 1.5)),
        "send_stall_timeout_s": ("send_stall_timeout", 5, (0, 7200, float("inf"), "5")),
        "max_total_send_buffer_bytes": ("max_total_send_buffer", 2**24, (1000, 2**40)),
        "max_in_flight": ("max_in_flight", 1000, (0, 10**8)),
        "max_in_flight_per_peer": ("max_in_flight_per_peer", 100, (1, 10**7, True)),
        "peer_state_budget": ("peer_state_budget", 50_000, (10, 10**9)),
        "max_inbound_per_group": ("max_inbound_per_group", 4, (0, 10**6)),
    }

    def test_defaults_are_the_peer_networks(self):
        config = p2p_config(preset("testnet"))
        for key, (field, _, _) in self.KEYS.items():
            self.assertEqual(getattr(config, field), getattr(P2PConfig(), field), key)

    def test_values_reach_the_peer_network_and_are_checked(self):
        overrides = {("network", key): good for key, (_, good, _) in self.KEYS.items()}
        config = p2p_config(resolve("devnet", overrides=overrides))
        for key, (field, good, bad_values) in self.KEYS.items():
            self.assertEqual(getattr(config, field), good, key)
            for bad in bad_values:
                with self.assertRaises(ConfigError) as caught:
                    resolve("devnet", overrides={("network", key): bad})
                self.assertIn(f"network.{key}", str(caught.exception))

    def test_the_specifications_keys_are_unchanged(self):
        spec = {"max_peers": 50, "rate_limit_tx": 1000, "rate_limit_blocks": 100,
                "max_message_size": 10485760}
        network = preset("testnet")["network"]
        self.assertEqual({k: network[k] for k in spec}, spec)
        config = p2p_config(preset("testnet"))
        self.assertEqual((config.max_peers, config.rate_limit_tx, config.rate_limit_blocks,
                          config.max_message_size), tuple(spec.values()))
