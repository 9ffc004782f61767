"""The ``masternode_register`` transaction: encoding, bounds and invalid cases."""

from twisted.trial import unittest

from timecoin.ledger.keys import PrivateKey, pubkey_hash
from timecoin.ledger.networks import COIN, DEVNET
from timecoin.ledger.registration import (
    BRONZE,
    GOLD,
    PAYLOAD_SIZE,
    SILVER,
    TIER_WEIGHTS,
    Registration,
    decode_payload,
)
from timecoin.ledger.tx import (
    KIND_MASTERNODE_REGISTER,
    MASTERNODE_SIGNATURE,
    PERMANENT_REJECTIONS,
    OutPoint,
    Transaction,
    TxIn,
    TxRejected,
    check_stateless,
    decode_tx,
    first_bad_signature,
    registration_of,
    sign_registration,
)

OWNER = PrivateKey.devnet(5)
MASTERNODE = PrivateKey.devnet(6)
REWARD = PrivateKey.devnet(7)
FUNDS = OutPoint(b"\x07" * 32, 1)
NET = DEVNET.network_id


def registration(tier=BRONZE, vout=0, collateral=None, owner=OWNER, masternode=MASTERNODE,
                 tier_code=None, extra_outputs=()):
    amount = tier.collateral if collateral is None else collateral
    outputs = [(amount, owner.key_hash), *extra_outputs]
    if vout == 1:
        outputs.reverse()
    reg = Registration(tier.code if tier_code is None else tier_code, vout, masternode.pubkey,
                       REWARD.key_hash)
    return sign_registration(owner, [FUNDS], outputs, NET, reg, masternode)


class RegistrationEncodingTests(unittest.TestCase):
    def test_tiers_follow_the_spec(self):
        self.assertEqual([(t.collateral, t.weight) for t in (BRONZE, SILVER, GOLD)],
                         [(1_000 * COIN, 10), (10_000 * COIN, 100), (100_000 * COIN, 1_000)])
        self.assertEqual(TIER_WEIGHTS["free"], 0)

    def test_round_trip_and_checks(self):
        for tier in (BRONZE, SILVER, GOLD):
            tx = registration(tier, extra_outputs=[(5 * COIN, OWNER.key_hash)])
            self.assertEqual(tx.kind, KIND_MASTERNODE_REGISTER)
            self.assertEqual(len(tx.payload), PAYLOAD_SIZE)
            again = decode_tx(tx.raw)
            self.assertEqual(again, tx)
            check_stateless(again, NET)
            reg = registration_of(again)
            self.assertEqual((reg.tier, reg.masternode_pubkey, reg.reward_key_hash),
                             (tier, MASTERNODE.pubkey, REWARD.key_hash))

    def test_collateral_may_be_any_output(self):
        tx = registration(vout=1, extra_outputs=[(5 * COIN, OWNER.key_hash)])
        check_stateless(tx, NET)
        self.assertEqual(tx.outputs[1].amount, BRONZE.collateral)

    def test_payload_of_the_wrong_size_is_not_a_registration(self):
        self.assertIsNone(decode_payload(b"\0" * (PAYLOAD_SIZE - 1)))
        self.assertIsNone(decode_payload(b"\0" * (PAYLOAD_SIZE + 1)))

    def test_masternode_signature_is_outside_the_sighash_and_checked(self):
        tx = registration()
        self.assertIsNone(first_bad_signature(tx))
        forged = Transaction(tx.inputs, tx.outputs, NET, tx.kind,
                             tx.payload[:-64] + bytes(64))
        self.assertEqual(forged.sighash(), tx.sighash())  # the input signature still holds
        self.assertEqual(first_bad_signature(forged), MASTERNODE_SIGNATURE)
        e = self.assertRaises(TxRejected, check_stateless, forged, NET)
        self.assertEqual((e.code, e.message),
                         ("bad-signature", "the masternode signature does not verify"))

    def test_signatures_bind_every_field(self):
        tx = registration()
        reg = decode_payload(tx.payload)
        # Another masternode key, reward address or tier: the inputs' and the
        # masternode's signatures no longer verify.
        for changed in (reg._replace(masternode_pubkey=REWARD.pubkey),
                        reg._replace(reward_key_hash=OWNER.key_hash),
                        reg._replace(tier_code=SILVER.code)):
            moved = Transaction(tx.inputs, tx.outputs, NET, tx.kind, changed.encode())
            self.assertIsNotNone(first_bad_signature(moved))


class RegistrationInvalidTests(unittest.TestCase):
    """Each malformed registration is refused with its own, permanent reason."""

    def cases(self):
        stranger = PrivateKey.devnet(9)
        good = registration()
        unsigned_input = TxIn(FUNDS, OWNER.pubkey)
        return [
            ("bad-registration", Transaction((unsigned_input,), good.outputs, NET,
                                             KIND_MASTERNODE_REGISTER, b"\0" * 10)),
            ("unknown-tier", registration(tier_code=9)),
            ("unknown-tier", registration(tier_code=0)),  # Free needs no registration
            ("collateral-out-of-range", registration(vout=3)),
            ("collateral-amount", registration(collateral=BRONZE.collateral + 1)),
            ("collateral-amount", registration(SILVER, collateral=BRONZE.collateral)),
            ("collateral-owner", sign_registration(
                OWNER, [FUNDS], [(BRONZE.collateral, stranger.key_hash)], NET,
                Registration(BRONZE.code, 0, MASTERNODE.pubkey, REWARD.key_hash), MASTERNODE)),
            ("no-inputs", Transaction((), good.outputs, NET, KIND_MASTERNODE_REGISTER,
                                      good.payload)),
            ("bad-signature", Transaction(good.inputs, good.outputs, NET,
                                          KIND_MASTERNODE_REGISTER,
                                          good.payload[:-64] + MASTERNODE.sign(b"other"))),
        ]

    def test_each_case_has_its_reason(self):
        for code, tx in self.cases():
            e = self.assertRaises(TxRejected, check_stateless, tx, NET)
            self.assertEqual(e.code, code, tx)
            self.assertIn(code, PERMANENT_REJECTIONS)

    def test_owner_is_the_key_of_input_zero(self):
        tx = registration()
        self.assertEqual(tx.outputs[0].key_hash, pubkey_hash(tx.inputs[0].pubkey))

    def test_transfer_still_carries_no_payload(self):
        good = registration()
        transfer = Transaction(good.inputs, good.outputs, NET, 0, good.payload)
        e = self.assertRaises(TxRejected, check_stateless, transfer, NET)
        self.assertEqual(e.code, "payload-not-allowed")
