"""Configuration: network presets, overridden by a TOML file, overridden by options.

Every key has a type and a range. An unknown section or key, a wrong type or
an out-of-range value raises :class:`ConfigError` with one line naming the key.
"""

import copy
import math
import os
import tomllib

from timecoin.ledger.networks import get_network


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key."""


def _int(lo, hi=None):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, int):
            return "an integer"
        if v < lo or (hi is not None and v > hi):
            return f"an integer from {lo} to {hi}" if hi is not None else f"an integer >= {lo}"
        return None
    return check


def _alpha(v):
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return "a number"
    if not 0.5 < v <= 1:
        return "a number greater than 0.5 and at most 1"
    return None


def _seconds(hi):
    def check(v):
        if (isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)
                or not 0 < v <= hi):
            return f"a number of seconds greater than 0 and at most {hi}"
        return None
    return check


def _text(v):
    return None if isinstance(v, str) and v else "a non-empty string"


def _text_list(v):
    if isinstance(v, list) and all(isinstance(x, str) and x for x in v):
        return None
    return "a list of strings"


def _sync_mode(v):
    return None if v in SYNC_MODES else "full or snapshot"


#: How a fresh node joins: every block from the genesis, or the newest
#: certified snapshot then the blocks after it (doc/sync.md).
SYNC_MODES = ("full", "snapshot")


def parse_peer(text):
    """``(host, port)`` of a ``HOST:PORT`` (``[IPV6]:PORT``) peer address, or
    raise :class:`ConfigError` saying what is wrong with it."""
    host, sep, port = text.rpartition(":") if isinstance(text, str) else ("", "", "")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or any(c.isspace() for c in host):
        raise ConfigError(f"peer {text!r} is not HOST:PORT")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(f"peer {text!r} has port {port!r}: a port is a number from 1 to 65535")
    return host, int(port)


def _peer_list(v):
    problem = _text_list(v)
    if problem:
        return problem
    for text in v:
        parse_peer(text)
    return None


#: Every section and key the node knows, with its check. The keys in
#: ``consensus.avalanche``, ``storage`` and ``network`` are the public ones of
#: the specification; the rest are this implementation's own, documented in
#: doc/configuration.md.
SCHEMA = {
    "consensus.avalanche": {
        "sample_size": _int(1, 1000), "finality_confidence": _int(1, 1000),
        "beta": _int(1, 1000), "alpha": _alpha, "alpha_preference": _alpha,
        "query_timeout_ms": _int(1, 600_000),
        "max_rounds": _int(1, 100_000),
    },
    "storage": {"cache_size_mb": _int(1, 1 << 20), "flush_interval_ms": _int(10, 600_000)},
    "network": {
        "max_peers": _int(0, 100_000), "rate_limit_tx": _int(1, 1_000_000),
        "rate_limit_blocks": _int(1, 1_000_000),
        "max_message_size": _int(65_536, 1 << 30), "max_peers_per_ip": _int(1, 100_000),
        "idle_timeout_s": _int(1, 86_400), "handshake_timeout_s": _int(1, 3600),
        # Peer limits (doc/limits.md): memory per peer and in total, inbound slots.
        "max_send_buffer_bytes": _int(65_536, 1 << 30),
        "send_stall_timeout_s": _int(1, 3600),
        "max_total_send_buffer_bytes": _int(1 << 20, 1 << 36),
        "max_in_flight": _int(100, 10_000_000), "max_in_flight_per_peer": _int(10, 1_000_000),
        "peer_state_budget": _int(1000, 100_000_000),
        "max_inbound_per_group": _int(1, 100_000),
    },
    "mempool": {"max_bytes": _int(1_000_000, 1 << 40), "max_count": _int(1, 100_000_000)},
    "state": {"lock_timeout_s": _seconds(86_400)},
    "validation": {"signature_workers": _int(0, 64)},
    "api": {"rpcuser": _text, "rpcpassword": _text, "max_connections": _int(1, 100_000)},
    # doc/sync.md: snapshots served every snapshot_interval blocks (0: never),
    # and how a fresh node joins.
    "sync": {"snapshot_interval": _int(0, 100_000_000), "mode": _sync_mode},
    "node": {
        "p2p": _text, "api": _text, "peers": _peer_list, "masternode_key": _text,
        "log_level": _text, "devnet_masternodes": _int(1, 1000),
    },
}

_TESTNET = {
    "consensus.avalanche": {
        "sample_size": 20, "finality_confidence": 15, "beta": 15, "alpha": 0.75,
        "alpha_preference": 0.75, "query_timeout_ms": 2000, "max_rounds": 30,
    },
    "storage": {"cache_size_mb": 256, "flush_interval_ms": 1000},
    "network": {
        "max_peers": 50, "rate_limit_tx": 1000, "rate_limit_blocks": 100,
        "max_message_size": 10_485_760, "max_peers_per_ip": 8, "idle_timeout_s": 300,
        "handshake_timeout_s": 10,
        "max_send_buffer_bytes": 8 * 2**20, "send_stall_timeout_s": 30,
        "max_total_send_buffer_bytes": 64 * 2**20, "max_in_flight": 100_000,
        "max_in_flight_per_peer": 5_000, "peer_state_budget": 1_000_000,
        "max_inbound_per_group": 16,
    },
    "mempool": {"max_bytes": 300_000_000, "max_count": 500_000},
    "state": {"lock_timeout_s": 30.0},
    "validation": {"signature_workers": 2},
    "api": {"max_connections": 100},
    "sync": {"snapshot_interval": 1000, "mode": "snapshot"},
    "node": {"peers": [], "log_level": "info", "devnet_masternodes": 1},
}

_MAINNET_CHANGES = {
    "consensus.avalanche": {"sample_size": 50, "finality_confidence": 20, "beta": 20,
                            "query_timeout_ms": 3000, "max_rounds": 50},
    "storage": {"cache_size_mb": 512, "flush_interval_ms": 2000},
    "network": {"max_peers": 100, "rate_limit_tx": 5000, "rate_limit_blocks": 500},
}

#: Devnet's blocks come every 2 s: a snapshot every 100 blocks (200 s).
DEVNET_SNAPSHOT_INTERVAL = 100

LOG_LEVELS = ("debug", "info", "warn", "error", "critical")


def preset(network_name):
    """The preset of a network: testnet's is the specification's table, mainnet
    changes the keys it lists, devnet uses testnet's."""
    get_network(network_name)
    values = copy.deepcopy(_TESTNET)
    if network_name == "devnet":
        values["sync"]["snapshot_interval"] = DEVNET_SNAPSHOT_INTERVAL
    if network_name == "mainnet":
        for section, changes in _MAINNET_CHANGES.items():
            values[section].update(changes)
    return values


def _flatten(data, path=""):
    """Yield ``(section, key, value)`` from parsed TOML, nested tables joined by dots."""
    for name, value in data.items():
        full = f"{path}.{name}" if path else name
        if full in SCHEMA:
            if not isinstance(value, dict):
                raise ConfigError(f"config entry {full!r} must be a [{full}] section")
            for key, v in value.items():
                if isinstance(v, dict):
                    raise ConfigError(f"unknown config section [{full}.{key}]")
                yield full, key, v
        elif isinstance(value, dict) and any(s.startswith(full + ".") for s in SCHEMA):
            yield from _flatten(value, full)
        elif isinstance(value, dict):
            raise ConfigError(f"unknown config section [{full}]")
        else:
            raise ConfigError(f"unknown config key {full!r} (keys belong in a section)")


def validate(section, key, value):
    checks = SCHEMA.get(section)
    if checks is None:
        raise ConfigError(f"unknown config section [{section}]")
    check = checks.get(key)
    if check is None:
        raise ConfigError(f"unknown config key {key!r} in [{section}]")
    problem = check(value)
    if problem:
        raise ConfigError(f"config key {section}.{key} must be {problem}, got {value!r}")
    if key == "log_level" and value not in LOG_LEVELS:
        raise ConfigError(f"config key node.log_level must be one of {', '.join(LOG_LEVELS)}")


def load_file(path):
    """Parse and validate a TOML file into ``{section: {key: value}}``."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {e.start} is "
                          f"{e.object[e.start:e.start + 1].hex()})") from None
    out = {}
    for section, key, value in _flatten(data):
        try:
            validate(section, key, value)
        except ConfigError as e:
            raise ConfigError(f"config file {path}: {e}") from None
        out.setdefault(section, {})[key] = value
    return out


def resolve(network_name, config_file=None, datadir=None, overrides=None):
    """The effective configuration: preset, then the file, then ``overrides``.

    Without ``config_file``, ``<datadir>/timecoin.toml`` is read if present.
    """
    values = preset(network_name)
    if config_file is None and datadir is not None:
        candidate = os.path.join(datadir, "timecoin.toml")
        if os.path.exists(candidate):
            config_file = candidate
    if config_file is not None:
        for section, items in load_file(config_file).items():
            values[section].update(items)
    for (section, key), value in (overrides or {}).items():
        validate(section, key, value)
        values[section][key] = value
    avalanche = values["consensus.avalanche"]
    if avalanche["alpha_preference"] > avalanche["alpha"]:
        raise ConfigError("config key consensus.avalanche.alpha_preference must not exceed "
                          f"alpha ({avalanche['alpha']!r}), got {avalanche['alpha_preference']!r}")
    return values
