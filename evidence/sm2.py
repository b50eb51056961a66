"""SM2 signatures with SM3 (GB/T 32918, GB/T 35276): the one adapter over `gmssl`.

Everything else in the project talks bytes to this module; the quirks of `gmssl` stay here:

* gmssl works on hex strings. We hand it hex and give callers bytes.
* `CryptSM2.__init__` does `public_key.lstrip("04")`, which strips *every* leading "0" and "4"
  character, not the one `04` prefix byte: a point whose x coordinate begins with hex 0 or 4
  (about one key in eight) is silently corrupted. We never pass a public key to the constructor;
  we set the attribute ourselves to the 128-hex-digit `x || y`.
* gmssl draws signing nonces from `random` (Mersenne Twister, predictable), and its scalar
  multiplication on hex strings costs ~20 ms a signature. We sign with our own fixed-base k*G (below)
  and a nonce from `secrets`; gmssl verifies, and tests check our k*G against gmssl's and our
  signatures against OpenSSL.
* gmssl's `sign_with_sm3` hashes with its pure-Python SM3 (about 10 s/MiB) and a hard-coded ID.
  We compute Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA) and e = SM3(Z || M) with
  OpenSSL's SM3 (`hashlib.new("sm3")`) and give gmssl only the 32-byte e to sign or verify.
* OpenSSL's default SM2 distinguishing ID is empty, gmssl's is `1234567812345678`. We always pass
  the ID explicitly; `DEFAULT_ID` is the GB/T 35276 default `1234567812345678`, which is what
  `openssl pkeyutl ... -pkeyopt distid:1234567812345678` uses.
* gmssl does not range-check r and s, does not check that a public key is on the curve, and raises
  `TypeError` when an intermediate point is at infinity. We check and turn every failure into
  `SignatureError` / `FormatError`.

Signatures are DER `SEQUENCE { INTEGER r, INTEGER s }` as OpenSSL writes them.

Key files are what OpenSSL 3.0 writes for `openssl genpkey -algorithm SM2` and
`openssl pkey -pubout`: PKCS#8 `PrivateKeyInfo` and `SubjectPublicKeyInfo` whose algorithm is
`id-ecPublicKey` (1.2.840.10045.2.1) with named-curve parameter `sm2` (1.2.156.10197.1.301) --
not the signature OID `SM2-with-SM3` (1.2.156.10197.1.501), and not a separate algorithm OID.
"""

from __future__ import annotations

import hashlib
import secrets

from asn1crypto import core, keys, pem
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from gmssl import sm2 as _gmssl_sm2

from evidence.errors import FormatError, SignatureError

# GB/T 32918.5 recommended curve parameters (sm2p256v1).
P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
GX = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
GY = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0

#: GB/T 35276-2017 default distinguishing identifier; always passed explicitly.
DEFAULT_ID = b"1234567812345678"

#: Named-curve OID OpenSSL 3.0 writes in PKCS#8 and SPKI for SM2 keys (with id-ecPublicKey).
SM2_CURVE_OID = "1.2.156.10197.1.301"
_SM2_CURVE_NAME = "sm2p256v1"
keys.NamedCurve.register(_SM2_CURVE_NAME, SM2_CURVE_OID, 32)

POINT_BYTES = 65  # 0x04 || x(32) || y(32)
_UNCOMPRESSED = b"\x04"


def _on_curve(x: int, y: int) -> bool:
    return 0 <= x < P and 0 <= y < P and (y * y - (x * x * x + A * x + B)) % P == 0


# ---- k*G for signing: a fixed-base comb in Jacobian coordinates ---------------------------------------
#
# gmssl's scalar multiplication works on hex strings (about 20 ms per signature here), and the log signs
# every checkpoint, several a second, with SM2. Signing needs only k*G with G fixed, so a table of
# j * 16^i * G (i < 64, j < 16; built once, ~1,000 affine points) turns it into 64 mixed additions and no
# doublings: well under a millisecond. Verification stays with gmssl; every signature made here is checked
# against gmssl and OpenSSL (`pkeyutl -verify`) in the tests.

_WINDOW = 4
_TABLE: list[list[tuple[int, int] | None]] = []


def _jacobian_double(X: int, Y: int, Z: int) -> tuple[int, int, int]:
    if Y == 0:
        return 0, 1, 0
    YY = Y * Y % P
    S = 4 * X * YY % P
    M = (3 * X * X + A * pow(Z, 4, P)) % P
    X3 = (M * M - 2 * S) % P
    return X3, (M * (S - X3) - 8 * YY * YY) % P, 2 * Y * Z % P


def _jacobian_add_affine(X1: int, Y1: int, Z1: int, x2: int, y2: int) -> tuple[int, int, int]:
    if Z1 == 0:
        return x2, y2, 1
    Z1Z1 = Z1 * Z1 % P
    H = (x2 * Z1Z1 - X1) % P
    R = (y2 * Z1Z1 * Z1 - Y1) % P
    if H == 0:
        return _jacobian_double(X1, Y1, Z1) if R == 0 else (0, 1, 0)
    HH = H * H % P
    HHH = HH * H % P
    V = X1 * HH % P
    X3 = (R * R - HHH - 2 * V) % P
    return X3, (R * (V - X3) - Y1 * HHH) % P, Z1 * H % P


def _to_affine(X: int, Y: int, Z: int) -> tuple[int, int]:
    zi = pow(Z, -1, P)
    zi2 = zi * zi % P
    return X * zi2 % P, Y * zi2 * zi % P


def _table() -> list[list[tuple[int, int] | None]]:
    if not _TABLE:
        rows = []
        base = (GX, GY)
        for _ in range(256 // _WINDOW):
            row: list[tuple[int, int] | None] = [None, base]
            acc = (base[0], base[1], 1)
            for _j in range(2, 1 << _WINDOW):
                acc = _jacobian_add_affine(*acc, *base)
                row.append(_to_affine(*acc))
            rows.append(row)
            nxt = _jacobian_add_affine(*acc, *base)  # 16 * base: the next row's base
            base = _to_affine(*nxt)
        _TABLE.extend(rows)
    return _TABLE


def base_mul(k: int) -> tuple[int, int]:
    """Affine (x, y) of k*G for 1 <= k < n."""
    if not 1 <= k < N:
        raise ValueError("scalar out of range")
    table = _table()
    X, Y, Z = 0, 1, 0
    mask = (1 << _WINDOW) - 1
    for i in range(256 // _WINDOW):
        point = table[i][(k >> (_WINDOW * i)) & mask]
        if point is not None:
            X, Y, Z = _jacobian_add_affine(X, Y, Z, *point)
    return _to_affine(X, Y, Z)


def _new_crypt(private_hex: str, point: bytes) -> _gmssl_sm2.CryptSM2:
    """A gmssl object with the public key set *after* construction (see the lstrip bug above)."""
    crypt = _gmssl_sm2.CryptSM2(private_key=private_hex, public_key="")
    crypt.public_key = point[1:].hex()
    return crypt


def _e(msg: bytes, point: bytes, uid: bytes) -> bytes:
    """e = SM3(Z || M) with Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA), OpenSSL's SM3."""
    if len(uid) * 8 > 0xFFFF:
        raise FormatError(f"SM2 distinguishing ID too long: {len(uid)} bytes")
    z = hashlib.new("sm3")
    z.update((len(uid) * 8).to_bytes(2, "big"))
    z.update(uid)
    for v in (A, B, GX, GY):
        z.update(v.to_bytes(32, "big"))
    z.update(point[1:])
    h = hashlib.new("sm3")
    h.update(z.digest())
    h.update(msg)
    return h.digest()


class SM2PublicKey:
    """An SM2 public key: a validated point on sm2p256v1."""

    __slots__ = ("_point",)

    def __init__(self, point: bytes) -> None:
        self._point = point

    @classmethod
    def from_point(cls, point: bytes) -> SM2PublicKey:
        """Parse a 65-byte uncompressed point (0x04 || x || y); rejects points off the curve."""
        if len(point) != POINT_BYTES or point[:1] != _UNCOMPRESSED:
            raise FormatError(
                f"SM2 public key: want a {POINT_BYTES}-byte uncompressed point, got {len(point)} bytes"
            )
        x = int.from_bytes(point[1:33], "big")
        y = int.from_bytes(point[33:], "big")
        if not _on_curve(x, y):
            raise FormatError("SM2 public key: point is not on the sm2p256v1 curve")
        return cls(bytes(point))

    def point(self) -> bytes:
        """The 65-byte uncompressed point, as hashed into note key IDs."""
        return self._point

    @classmethod
    def from_der(cls, der: bytes) -> SM2PublicKey:
        """Parse a DER SubjectPublicKeyInfo (id-ecPublicKey, namedCurve sm2)."""
        try:
            spki = keys.PublicKeyInfo.load(der, strict=True)
            algorithm = spki["algorithm"]["algorithm"].dotted
            params = spki["algorithm"]["parameters"]
            curve = params.chosen.dotted if params.name == "named" else None
            point = bytes(spki["public_key"].native)
        except (ValueError, TypeError, KeyError) as e:
            raise FormatError(f"SM2 public key: not a SubjectPublicKeyInfo: {e}") from e
        if algorithm != "1.2.840.10045.2.1" or curve != SM2_CURVE_OID:
            raise FormatError(f"SM2 public key: algorithm {algorithm} curve {curve}, want id-ecPublicKey sm2")
        return cls.from_point(point)

    def to_der(self) -> bytes:
        """DER SubjectPublicKeyInfo, byte-identical to `openssl pkey -pubout -outform DER`."""
        spki = keys.PublicKeyInfo(
            {
                "algorithm": keys.PublicKeyAlgorithm(
                    {"algorithm": "ec", "parameters": keys.ECDomainParameters("named", _SM2_CURVE_NAME)}
                ),
                "public_key": self._point,
            }
        )
        return bytes(spki.dump())

    @classmethod
    def from_pem(cls, text: str | bytes) -> SM2PublicKey:
        """Parse `-----BEGIN PUBLIC KEY-----` as `openssl pkey -pubout` writes it for an SM2 key."""
        data = text.encode() if isinstance(text, str) else text
        try:
            kind, _, der = pem.unarmor(data)
        except ValueError as e:
            raise FormatError(f"SM2 public key: bad PEM: {e}") from e
        if kind != "PUBLIC KEY":
            raise FormatError(f"SM2 public key: PEM type {kind!r}, want 'PUBLIC KEY'")
        return cls.from_der(der)

    def to_pem(self) -> str:
        """PEM SubjectPublicKeyInfo, byte-identical to `openssl pkey -pubout`."""
        return str(pem.armor("PUBLIC KEY", self.to_der()).decode("ascii"))

    def verify(self, msg: bytes, der: bytes, uid: bytes = DEFAULT_ID) -> None:
        """Verify a DER SM2 signature over `msg` with SM3 and distinguishing ID `uid`.

        Raises SignatureError (never returns False) so a forgotten check cannot pass silently.
        """
        try:
            r, s = decode_dss_signature(der)
        except ValueError as e:
            raise SignatureError(f"SM2 signature is not DER SEQUENCE{{r, s}}: {e}") from e
        if encode_dss_signature(r, s) != der:
            raise SignatureError("SM2 signature is not canonical DER")
        if not (1 <= r < N and 1 <= s < N):
            raise SignatureError("SM2 signature: r or s out of range [1, n-1]")
        digest = _e(msg, self._point, uid)
        crypt = _new_crypt("", self._point)
        try:
            ok = crypt.verify(f"{r:064x}{s:064x}", digest)
        except (TypeError, ValueError) as exc:  # point at infinity inside gmssl
            raise SignatureError("SM2 signature does not verify (degenerate point)") from exc
        if not ok:
            raise SignatureError("SM2 signature does not verify against this public key")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SM2PublicKey) and other._point == self._point

    def __hash__(self) -> int:
        return hash(self._point)

    def __repr__(self) -> str:
        return f"SM2PublicKey({self._point.hex()})"


class SM2PrivateKey:
    """An SM2 private scalar d in [1, n-2] with its public point (computed once)."""

    __slots__ = ("_d", "_inv_1_plus_d", "_public")

    def __init__(self, d: int) -> None:
        if not 1 <= d <= N - 2:  # d + 1 must be invertible mod n
            raise FormatError("SM2 private key out of range [1, n-2]")
        self._d = d
        x, y = base_mul(d)
        self._public = SM2PublicKey.from_point(_UNCOMPRESSED + x.to_bytes(32, "big") + y.to_bytes(32, "big"))
        self._inv_1_plus_d = pow(1 + d, -1, N)

    @classmethod
    def generate(cls) -> SM2PrivateKey:
        """A fresh key from `secrets`."""
        return cls(secrets.randbelow(N - 2) + 1)

    @classmethod
    def from_bytes(cls, d: bytes) -> SM2PrivateKey:
        """The 32-byte big-endian scalar."""
        if len(d) != 32:
            raise FormatError(f"SM2 private key: want 32 bytes, got {len(d)}")
        return cls(int.from_bytes(d, "big"))

    def to_bytes(self) -> bytes:
        return self._d.to_bytes(32, "big")

    def public_key(self) -> SM2PublicKey:
        return self._public

    @classmethod
    def from_der(cls, der: bytes) -> SM2PrivateKey:
        """Parse DER PKCS#8 PrivateKeyInfo (id-ecPublicKey, namedCurve sm2) with an ECPrivateKey inside."""
        try:
            info = keys.PrivateKeyInfo.load(der, strict=True)
            algorithm = info["private_key_algorithm"]["algorithm"].dotted
            params = info["private_key_algorithm"]["parameters"]
            curve = params.chosen.dotted if params.name == "named" else None
            ec = keys.ECPrivateKey.load(info["private_key"].contents, strict=True)
            d = int(ec["private_key"].native)
            embedded = ec["public_key"]
            embedded_point = None if isinstance(embedded, core.Void) else bytes(embedded.native)
        except (ValueError, TypeError, KeyError) as e:
            raise FormatError(f"SM2 private key: not a PKCS#8 EC key: {e}") from e
        if algorithm != "1.2.840.10045.2.1" or curve != SM2_CURVE_OID:
            raise FormatError(
                f"SM2 private key: algorithm {algorithm} curve {curve}, want id-ecPublicKey sm2"
            )
        key = cls(d)
        if embedded_point is not None and embedded_point != key._public.point():
            raise FormatError("SM2 private key: embedded public key does not match the private scalar")
        return key

    def to_der(self) -> bytes:
        """DER PKCS#8, byte-identical to what `openssl genpkey -algorithm SM2` writes."""
        ec = keys.ECPrivateKey(
            {"version": "ecPrivkeyVer1", "private_key": self._d, "public_key": self._public.point()}
        )
        info = keys.PrivateKeyInfo(
            {
                "version": 0,
                "private_key_algorithm": keys.PrivateKeyAlgorithm(
                    {"algorithm": "ec", "parameters": keys.ECDomainParameters("named", _SM2_CURVE_NAME)}
                ),
                "private_key": ec,
            }
        )
        return bytes(info.dump())

    @classmethod
    def from_pem(cls, text: str | bytes) -> SM2PrivateKey:
        """Parse `-----BEGIN PRIVATE KEY-----` (unencrypted PKCS#8) as OpenSSL writes it."""
        data = text.encode() if isinstance(text, str) else text
        try:
            kind, _, der = pem.unarmor(data)
        except ValueError as e:
            raise FormatError(f"SM2 private key: bad PEM: {e}") from e
        if kind != "PRIVATE KEY":
            raise FormatError(f"SM2 private key: PEM type {kind!r}, want 'PRIVATE KEY'")
        return cls.from_der(der)

    def to_pem(self) -> str:
        return str(pem.armor("PRIVATE KEY", self.to_der()).decode("ascii"))

    def sign(self, msg: bytes, uid: bytes = DEFAULT_ID) -> bytes:
        """DER SM2 signature over `msg` with SM3 and distinguishing ID `uid`; nonce from `secrets`.

        GB/T 32918.2 section 6.1: r = (e + x1) mod n with (x1, y1) = k*G, s = (1 + d)^-1 (k - r*d) mod n,
        drawing k again when r = 0, r + k = n or s = 0."""
        e = int.from_bytes(_e(msg, self._public.point(), uid), "big")
        d = self._d
        while True:
            k = secrets.randbelow(N - 1) + 1
            x1, _ = base_mul(k)
            r = (e + x1) % N
            if r == 0 or r + k == N:
                continue
            s = self._inv_1_plus_d * (k - r * d) % N
            if s != 0:
                return bytes(encode_dss_signature(r, s))

    def __repr__(self) -> str:
        return f"SM2PrivateKey(public={self._public.point().hex()})"
