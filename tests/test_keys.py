"""Keys, addresses and key files."""

import os
import tempfile

from twisted.trial import unittest

from timecoin.ledger.keys import (
    AddressError,
    KeyFileError,
    PrivateKey,
    b58decode,
    b58encode,
    decode_address,
    encode_address,
    verify,
)
from timecoin.ledger.networks import DEVNET, MAINNET, TESTNET


class AddressTests(unittest.TestCase):
    def test_round_trip_on_every_network(self):
        key = PrivateKey.devnet(3)
        for net in (DEVNET, TESTNET, MAINNET):
            address = key.address(net.network_id)
            self.assertTrue(address.startswith(net.address_prefix))
            self.assertEqual(decode_address(address, net.network_id),
                             (net.network_id, key.key_hash))

    def test_every_single_character_typo_is_refused(self):
        address = PrivateKey.devnet(0).address()
        alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
        for i in range(5, len(address)):
            for c in alphabet[:12]:
                if c == address[i]:
                    continue
                typo = address[:i] + c + address[i + 1:]
                self.assertRaises(AddressError, decode_address, typo)

    def test_other_network_prefix_is_refused(self):
        address = PrivateKey.devnet(0).address(DEVNET.network_id)
        self.assertRaises(AddressError, decode_address, address, TESTNET.network_id)
        swapped = "TIME0" + address[5:]
        self.assertRaises(AddressError, decode_address, swapped)

    def test_garbage(self):
        for text in ("", "TIME", "TIME9abc", "bitcoin", "TIME2" + "0" * 30, None, 12):
            self.assertRaises(AddressError, decode_address, text)

    def test_base58_leading_zeros(self):
        for data in (b"", b"\0", b"\0\0\1", bytes(range(30))):
            self.assertEqual(b58decode(b58encode(data)), data)

    def test_encode_matches_key(self):
        key = PrivateKey.generate()
        self.assertEqual(encode_address(2, key.key_hash), key.address(2))


class SigningTests(unittest.TestCase):
    def test_sign_verify(self):
        key = PrivateKey.generate()
        sig = key.sign(b"message")
        self.assertTrue(verify(key.pubkey, b"message", sig))
        self.assertFalse(verify(key.pubkey, b"other", sig))
        self.assertFalse(verify(key.pubkey, b"message", bytes(64)))
        self.assertFalse(verify(b"short", b"message", sig))

    def test_devnet_keys_are_deterministic_and_distinct(self):
        self.assertEqual(PrivateKey.devnet(1).pubkey, PrivateKey.devnet(1).pubkey)
        self.assertNotEqual(PrivateKey.devnet(1).pubkey, PrivateKey.devnet(2).pubkey)


class KeyFileTests(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()

    def test_save_load_mode_0600(self):
        key = PrivateKey.generate()
        path = os.path.join(self.dir, "k.json")
        key.save(path)
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        self.assertEqual(PrivateKey.load(path).pubkey, key.pubkey)

    def test_bad_files(self):
        path = os.path.join(self.dir, "bad.json")
        for content in ("not json", "{}", '{"seed": "zz"}', '{"seed": "00"}'):
            with open(path, "w") as f:
                f.write(content)
            self.assertRaises(KeyFileError, PrivateKey.load, path)
        self.assertRaises(KeyFileError, PrivateKey.load, os.path.join(self.dir, "missing"))
