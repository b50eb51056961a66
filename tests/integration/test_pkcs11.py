"""The log's checkpoint key in a real PKCS#11 token (SoftHSM2, one token per test session), signing with
CKM_EDDSA: `depository init --pkcs11 MODULE --token LABEL`, `depository keys`, checkpoints that verify with
the published vkey, and every way a PIN or a token can be wrong answered with one line.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pkcs11
import pytest
from pkcs11 import Attribute, KeyType, ObjectClass

from depository.config import load_config
from depository.deposits import DepositRequest
from depository.errors import ConfigError
from depository.hsm import PIN_ENV, PIN_FILE_ENV
from depository.log import integrate_all
from depository.wiring import build_services
from evidence.note import Ed25519Verifier, SM2Verifier, generate_ed25519, verify_note
from tests.hsm import SoftHsm, softhsm_token
from tests.procs import cli_env, run_cli

ORIGIN = "hsm.test/log"


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> SoftHsm:
    return softhsm_token(tmp_path_factory.mktemp("softhsm"), "depository")


@pytest.fixture
def home_env(hsm: SoftHsm, tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    home = tmp_path / "home"
    env = cli_env(home, log_origin=ORIGIN)
    env["SOFTHSM2_CONF"] = str(hsm.conf)
    yield home, env


def test_init_in_token_and_sign_checkpoints(hsm: SoftHsm, home_env: tuple[Path, dict[str, str]],
                                            monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home, env = home_env
    init = ["init", "--pkcs11", hsm.module, "--token", hsm.label]
    # No PIN, a wrong PIN, an unknown token, a PIN flag: one line each, exit non-zero, nothing written.
    r = run_cli(init, env, check=False)
    assert r.returncode == 1 and PIN_ENV in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    r = run_cli(init, {**env, PIN_ENV: "99999999"}, check=False)
    assert r.returncode == 1 and "PIN was refused" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = run_cli(["init", "--pkcs11", hsm.module, "--token", "nope"], {**env, PIN_ENV: hsm.pin}, check=False)
    assert r.returncode == 1 and "no token labelled 'nope'" in r.stderr, r.stderr
    r = run_cli([*init, "--pin", hsm.pin], env, check=False)
    assert r.returncode == 2 and "--pin" in r.stderr
    assert not (home / "keys" / "pkcs11.json").exists() and not (home / "keys" / "log.skey").exists()

    # The PIN from a file (as systemd's LoadCredential= gives it).
    pin_file = tmp_path / "pin"
    pin_file.write_text(hsm.pin + "\n")
    out = json.loads(run_cli(init, {**env, PIN_FILE_ENV: str(pin_file)}).stdout)
    keys_dir = home / "keys"
    assert not (keys_dir / "log.skey").exists() and (keys_dir / "pkcs11.json").exists()
    vkey = (keys_dir / "log.vkey").read_text().strip()
    assert out["log_vkey"] == vkey and out["origin"] == ORIGIN
    verifier = Ed25519Verifier.from_vkey(vkey)

    # The private key is in the token, sensitive and not extractable; its public half is the vkey's.
    lib = pkcs11.lib(hsm.module)
    with lib.get_token(token_label=hsm.label).open(user_pin=hsm.pin) as session:
        priv = session.get_key(object_class=ObjectClass.PRIVATE_KEY, key_type=KeyType.EC_EDWARDS, label="log-ed25519")
        assert priv[Attribute.SENSITIVE] and not priv[Attribute.EXTRACTABLE] and priv[Attribute.NEVER_EXTRACTABLE]
        pub = session.get_key(object_class=ObjectClass.PUBLIC_KEY, key_type=KeyType.EC_EDWARDS, label="log-ed25519")
        assert bytes(pub[Attribute.EC_POINT])[-32:] == verifier.public_key

    # `depository keys` needs no PIN; it names the token and the fingerprint of the published key.
    listed = {k["key"]: k for k in json.loads(run_cli(["keys", "--json"], env).stdout)["keys"]}
    assert listed["log-ed25519"]["location"].startswith("pkcs11:token=depository;object=log-ed25519")
    assert listed["log-ed25519"]["fingerprint"] == f"{ORIGIN}+{verifier.key_id:08x}"
    assert listed["log-sm2"]["location"].startswith("file:") and "(mode 0600)" in listed["log-sm2"]["location"]
    assert listed["tsa"]["not_after"] and listed["packet-signer"]["fingerprint"].startswith("sha256:")
    text = run_cli(["keys"], env).stdout
    assert "pkcs11:token=depository" in text and hsm.pin not in text

    # Checkpoints signed through the token verify with the published vkey (and SM2 from its file).
    monkeypatch.setenv(PIN_ENV, hsm.pin)
    config = load_config(env={}, home=home, log_origin=ORIGIN, run_integrator=False)
    s = build_services(config, notary=False)
    try:
        tid, _ = s.tenants.create("HSM Tenant")
        s.deposits.create_many(tid, [DepositRequest("other", hashlib.sha256(bytes([i])).digest(),
                                                    hashlib.new("sm3", bytes([i])).digest(), 1, {}, None, None)
                                     for i in range(50)])
        assert integrate_all(s.log, 20) == 3  # batches: three checkpoints signed by the token
        cp = s.log.latest_checkpoint()
        assert cp.size == 50
        sm2 = SM2Verifier.from_vkey(s.keys.sm2_vkey)
        verified = verify_note(cp.note, [verifier, sm2])
        assert verified.verified_by(verifier) and verified.verified_by(sm2) and not verified.unverified
    finally:
        s.close()
    assert run_cli(["audit"], {**env, PIN_ENV: hsm.pin}).returncode == 0

    # A token key that is not the published one is refused before anything is signed.
    other_skey, other_vkey = generate_ed25519(ORIGIN)
    (keys_dir / "log.vkey").write_text(other_vkey + "\n")
    with pytest.raises(ConfigError, match="holds another key"):
        build_services(config, notary=False)
    (keys_dir / "log.vkey").write_text(vkey + "\n")
    # init again is idempotent; a second token key for an existing log is refused.
    run_cli(init, {**env, PIN_ENV: hsm.pin})
    from depository.hsm import TokenRef, init_token_log_key

    with pytest.raises(ConfigError, match="new checkpoint key means a new log"):
        init_token_log_key(keys_dir, ORIGIN, TokenRef(hsm.module, hsm.label), hsm.pin)
    del other_skey


def test_file_home_is_unchanged(home_env: tuple[Path, dict[str, str]]) -> None:
    home, env = home_env
    run_cli(["init"], env)
    listed: dict[str, Any] = {k["key"]: k for k in json.loads(run_cli(["keys", "--json"], env).stdout)["keys"]}
    assert listed["log-ed25519"]["location"] == f"file:{home / 'keys' / 'log.skey'} (mode 0600)"
    assert not (home / "keys" / "pkcs11.json").exists()
