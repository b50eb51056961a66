"""SM2 adapter: random keys, the gmssl lstrip bug, and interop with real OpenSSL 3 both ways."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from gmssl import sm2 as gmssl_sm2

from evidence.errors import FormatError, SignatureError
from evidence.sm2 import DEFAULT_ID, N, SM2PrivateKey, SM2PublicKey

OPENSSL = shutil.which("openssl") or "openssl"  # OpenSSL 3 is part of the test environment


def _openssl(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([OPENSSL, *map(str, args)], capture_output=True, check=False)


def _keys_with_bad_prefix_and_others(count: int) -> list[SM2PrivateKey]:
    """`count` random keys, at least 16 of which have an x coordinate whose hex starts with 0 or 4."""
    tricky: list[SM2PrivateKey] = []
    plain: list[SM2PrivateKey] = []
    while len(tricky) + len(plain) < count or len(tricky) < 16:
        k = SM2PrivateKey.generate()
        if k.public_key().point()[1:].hex()[0] in "04":
            tricky.append(k)
        elif len(plain) < count - 16:
            plain.append(k)
    return tricky + plain


def test_gmssl_constructor_really_corrupts_such_keys() -> None:
    """Guard that the test below exercises the bug: gmssl's constructor damages these keys."""
    for k in _keys_with_bad_prefix_and_others(16)[:16]:
        full = "04" + k.public_key().point()[1:].hex()
        assert gmssl_sm2.CryptSM2(private_key="", public_key=full).public_key != full[2:]


def test_200_random_keys_sign_and_verify() -> None:
    ks = _keys_with_bad_prefix_and_others(200)
    assert len(ks) >= 200
    for i, k in enumerate(ks):
        msg = f"message {i}\n".encode()
        sig = k.sign(msg)
        k.public_key().verify(msg, sig)
        with pytest.raises(SignatureError):
            k.public_key().verify(msg + b"x", sig)


def test_wrong_key_id_and_tampering_rejected() -> None:
    k, other = SM2PrivateKey.generate(), SM2PrivateKey.generate()
    sig = k.sign(b"note\n")
    with pytest.raises(SignatureError):
        other.public_key().verify(b"note\n", sig)
    with pytest.raises(SignatureError):
        k.public_key().verify(b"note\n", sig, uid=b"")
    with pytest.raises(SignatureError):
        k.public_key().verify(b"note\n", sig + b"\x00")
    with pytest.raises(SignatureError):
        k.public_key().verify(b"note\n", b"\x30\x00")
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    with pytest.raises(SignatureError):
        k.public_key().verify(b"note\n", encode_dss_signature(N, 1))
    with pytest.raises(SignatureError):
        k.public_key().verify(b"note\n", encode_dss_signature(0, 5))


def test_signatures_are_randomised() -> None:
    k = SM2PrivateKey.generate()
    assert k.sign(b"m") != k.sign(b"m")


def test_point_validation() -> None:
    k = SM2PrivateKey.generate()
    p = k.public_key().point()
    assert SM2PublicKey.from_point(p) == k.public_key()
    with pytest.raises(FormatError):
        SM2PublicKey.from_point(p[:-1] + bytes([p[-1] ^ 1]))
    with pytest.raises(FormatError):
        SM2PublicKey.from_point(b"\x02" + p[1:33])
    with pytest.raises(FormatError):
        SM2PrivateKey(0)
    with pytest.raises(FormatError):
        SM2PrivateKey(N - 1)


def test_pem_round_trip_ours() -> None:
    k = SM2PrivateKey.generate()
    again = SM2PrivateKey.from_pem(k.to_pem())
    assert again.to_bytes() == k.to_bytes()
    assert again.to_pem() == k.to_pem()
    pub = SM2PublicKey.from_pem(k.public_key().to_pem())
    assert pub == k.public_key()
    assert pub.to_pem() == k.public_key().to_pem()
    assert SM2PrivateKey.from_bytes(k.to_bytes()).public_key() == k.public_key()


def test_pem_rejects_wrong_things() -> None:
    k = SM2PrivateKey.generate()
    with pytest.raises(FormatError):
        SM2PublicKey.from_pem(k.to_pem())
    with pytest.raises(FormatError):
        SM2PrivateKey.from_pem(k.public_key().to_pem())
    with pytest.raises(FormatError):
        SM2PublicKey.from_pem("not a pem")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    p256 = ec.generate_private_key(ec.SECP256R1()).public_key()
    p256_pem = p256.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(FormatError, match="curve"):
        SM2PublicKey.from_pem(p256_pem)


def test_e_uses_openssl_sm3_matching_gmssl_reference() -> None:
    """Cross-check our Z/e (OpenSSL SM3) against gmssl's own pure-Python `_sm3_z` for the default ID."""
    from evidence.sm2 import _e

    k = SM2PrivateKey.generate()
    crypt = gmssl_sm2.CryptSM2(private_key="", public_key="")
    crypt.public_key = k.public_key().point()[1:].hex()
    msg = b"cross-check\n"
    assert _e(msg, k.public_key().point(), DEFAULT_ID).hex() == crypt._sm3_z(msg)
    assert hashlib.new("sm3", b"abc").hexdigest().startswith("66c7f0f4")


def test_openssl_key_and_signature_verify_here(tmp_path: Path) -> None:
    for i in range(4):
        key, pub, msg, sig = (tmp_path / f"{n}{i}" for n in ("key.pem", "pub.pem", "msg", "sig"))
        assert _openssl("genpkey", "-algorithm", "SM2", "-out", key).returncode == 0
        assert _openssl("pkey", "-in", key, "-pubout", "-out", pub).returncode == 0
        msg.write_bytes(f"origin.example/log\n{i}\nroot\n".encode())
        r = _openssl(
            "pkeyutl",
            "-sign",
            "-rawin",
            "-digest",
            "sm3",
            "-pkeyopt",
            "distid:1234567812345678",
            "-inkey",
            key,
            "-in",
            msg,
            "-out",
            sig,
        )
        assert r.returncode == 0, r.stderr
        ours = SM2PrivateKey.from_pem(key.read_text())
        theirs_pub = SM2PublicKey.from_pem(pub.read_text())
        assert ours.public_key() == theirs_pub
        # Byte-identical re-encoding of OpenSSL's own files.
        assert ours.to_pem() == key.read_text()
        assert theirs_pub.to_pem() == pub.read_text()
        theirs_pub.verify(msg.read_bytes(), sig.read_bytes())
        with pytest.raises(SignatureError):
            theirs_pub.verify(msg.read_bytes() + b"!", sig.read_bytes())


def test_our_key_and_signature_verify_in_openssl(tmp_path: Path) -> None:
    for i in range(4):
        key = SM2PrivateKey.generate()
        key_pem, pub_pem, msg, sig = (tmp_path / f"{n}{i}" for n in ("key.pem", "pub.pem", "msg", "sig"))
        key_pem.write_text(key.to_pem())
        pub_pem.write_text(key.public_key().to_pem())
        msg.write_bytes(f"origin.example/log\n{i}\nroot\n".encode())
        sig.write_bytes(key.sign(msg.read_bytes()))
        verify = [
            "pkeyutl",
            "-verify",
            "-rawin",
            "-digest",
            "sm3",
            "-pkeyopt",
            "distid:1234567812345678",
            "-pubin",
            "-inkey",
            pub_pem,
            "-in",
            msg,
            "-sigfile",
            sig,
        ]
        r = _openssl(*verify)
        assert r.returncode == 0 and b"Verified Successfully" in r.stdout, r.stdout + r.stderr
        # OpenSSL loads our private key and derives the same public key.
        r = _openssl("pkey", "-in", key_pem, "-pubout")
        assert r.returncode == 0 and r.stdout.decode() == key.public_key().to_pem()
        # And OpenSSL rejects a tampered message with our signature.
        msg.write_bytes(msg.read_bytes() + b"!")
        assert _openssl(*verify).returncode != 0


def test_fixed_base_multiplication_matches_gmssl() -> None:
    """Our k*G (signing's only curve arithmetic) against gmssl's own scalar multiplication."""
    import secrets

    from gmssl import sm2 as gmssl_sm2

    from evidence.sm2 import N, base_mul

    crypt = gmssl_sm2.CryptSM2(private_key="01" * 32, public_key="")
    scalars = [1, 2, 3, 15, 16, 17, 255, 256, 2**252, N - 2, N - 1] + [secrets.randbelow(N - 1) + 1 for _ in range(40)]
    for k in scalars:
        x, y = base_mul(k)
        assert f"{x:064x}{y:064x}" == crypt._kg(k, crypt.ecc_table["g"]), k
    with pytest.raises(ValueError):
        base_mul(0)
    with pytest.raises(ValueError):
        base_mul(N)
