"""Builders shared by the packet and verifier tests: a real proof, made with the project's own primitives.

A five-leaf log signed with Ed25519 and SM2, cosigned by three witnesses under a 2-of-3 policy, and
timestamped by the in-process TSA: every part is real, so every verifier check has something to bite on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from evidence.bundle import ProofBundle
from evidence.checkpoint import Checkpoint, SignedCheckpoint
from evidence.cosignature import CosignatureSigner, generate_witness_key, parse_witness_signer
from evidence.leaf import LeafData, meta_hash, truncate_to_ms
from evidence.merkle import SHA256, root
from evidence.note import generate_ed25519, generate_sm2, parse_signer_key, parse_verifier_key
from evidence.packet import DepositFacts, PacketEntry, PacketInput
from evidence.sm2 import SM2PrivateKey
from evidence.tlogproof import TlogProof
from evidence.verify import Trust
from notary_bridge import pki
from notary_bridge.tsa import LocalTimeStamper
from tests.unit.evidence import merkle_reference

ORIGIN = "depository.test/log"
CONTENT = "租赁合同 — lease agreement between 张三 and Acme Ltd.\n".encode() * 20
METADATA = {"title": "房屋租赁合同 lease", "matter": "M-2026-001", "parties": ["张三", "Acme Ltd."]}


@dataclass
class Proof:
    bundle: ProofBundle
    facts: DepositFacts
    trust: Trust
    stamper: LocalTimeStamper
    tsa_ca_pem: bytes
    witnesses: list[CosignatureSigner]

    def entry(self, original: bytes | None = CONTENT) -> PacketEntry:
        return PacketEntry(self.facts, self.bundle, original)

    def packet_input(self, signer_chain: bytes | None = b"") -> PacketInput:
        return PacketInput([self.entry()], "https://depository.test", ORIGIN, datetime.now(UTC),
                           signer_chain or None)

    def write_trust(self, path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        t = self.trust
        assert t.log_vkey and t.log_sm2_pem and t.witness_policy and t.tsa_ca_pem
        (path / "log.vkey").write_text(t.log_vkey + "\n")
        (path / "log-sm2.pem").write_text(t.log_sm2_pem)
        (path / "witness-policy.txt").write_text(t.witness_policy)
        (path / "tsa-ca.pem").write_bytes(t.tsa_ca_pem)
        return path


def make_proof(content: bytes = CONTENT, *, index: int = 3, size: int = 5, with_witnesses: bool = True,
               with_token: bool = True, deposit_id: str = "dep_0123456789abcdef01234567") -> Proof:
    received = truncate_to_ms(datetime.now(UTC) - timedelta(seconds=5))
    sha, sm3 = hashlib.sha256(content).digest(), hashlib.new("sm3", content).digest()
    leaves = []
    for i in range(size):
        leaf = LeafData(id=deposit_id if i == index else f"dep_other{i}", kind="contract",
                        sha256=sha if i == index else hashlib.sha256(b"%d" % i).digest(),
                        sm3=sm3 if i == index else hashlib.new("sm3", b"%d" % i).digest(),
                        size=len(content), received=received, depositor="t_acme",
                        meta=meta_hash(METADATA if i == index else {}), salt=bytes(16))
        leaves.append(leaf.to_bytes())
    tree_root = root(SHA256, [SHA256.hash_leaf(x) for x in leaves])
    proof = merkle_reference.path(index, [SHA256.hash_leaf(x) for x in leaves])
    ed_skey, ed_vkey = generate_ed25519(ORIGIN)
    sm2_skey, _ = generate_sm2(ORIGIN)
    signed = SignedCheckpoint.sign(Checkpoint(ORIGIN, size, tree_root),
                                   [parse_signer_key(ed_skey), parse_signer_key(sm2_skey)])
    witnesses = []
    policy = None
    if with_witnesses:
        lines = []
        vkeys = []
        for name in ("court.witness.test", "notary.witness.test", "third.witness.test"):
            skey, vkey = generate_witness_key(name)
            w = parse_witness_signer(skey)
            assert isinstance(w, CosignatureSigner)
            witnesses.append(w)
            vkeys.append((name, vkey))
        when = int(received.timestamp()) + 2
        lines = [w.cosign(signed.body, when) for w in witnesses[:2]]
        signed = signed.with_signature_lines(lines)
        policy = (f"log {ed_vkey}\n" + "".join(f"witness {n} {v}\n" for n, v in vkeys)
                  + "group court 2 " + " ".join(n for n, _ in vkeys) + "\nquorum court\n")
    ca_key, ca_cert = pki.make_ca("Test TSA Root")
    tsa_key, tsa_cert = pki.make_tsa_cert(ca_key, ca_cert, "Test TSA")
    stamper = LocalTimeStamper(tsa_key, tsa_cert, [ca_cert])
    token = stamper.timestamp(hashlib.sha256(signed.body.encode()).digest(), "sha256") if with_token else None
    note = signed.to_text()
    tlog = TlogProof(leaves[index], index, tuple(proof), note)
    sm2_signer = parse_signer_key(sm2_skey)
    assert isinstance(sm2_signer.private_key, SM2PrivateKey)
    sm2_pem = sm2_signer.private_key.public_key().to_pem()
    bundle = ProofBundle(
        deposit_id=deposit_id, leaf_data=leaves[index], leaf_index=index, tree_size=size,
        inclusion_proof=list(proof), checkpoint=note, tlog_proof=tlog.to_text(), log_vkey=ed_vkey,
        log_sm2_public_key_pem=sm2_pem, witness_policy=policy, timestamp_token=token,
        timestamp_ca_pem=(tsa_cert + ca_cert).decode() if token else None, metadata=METADATA)
    facts = DepositFacts(deposit_id, "t_acme", "Acme 律师事务所", "contract", "租赁合同 lease.pdf", len(content),
                         "application/pdf", sha.hex(), sm3.hex(), received)
    trust = Trust(log_vkey=ed_vkey, log_sm2_pem=sm2_pem, witness_policy=policy,
                  tsa_ca_pem=ca_cert if with_token else None)
    assert parse_verifier_key(ed_vkey).name == ORIGIN
    return Proof(bundle, facts, trust, stamper, ca_cert, witnesses)
