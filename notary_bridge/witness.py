"""A C2SP tlog-witness v1.0.0 (https://c2sp.org/tlog-witness) without HTTP: keys, state, add-checkpoint.

The pure core, certomancer style: `Witness.add_checkpoint(body)` takes the request body of
`POST /add-checkpoint` and returns an `Answer` (status, body, content type); `witness_server` only moves
bytes. The client side (`witness_client`) shares the wire format through `AddCheckpointRequest`.

Request body (tlog-witness "add-checkpoint"):

    old <size>\\n             decimal, no leading zeros
    <base64 hash>\\n          0..63 consistency proof lines (RFC 6962 §2.1.2)
    \\n
    <signed checkpoint note>

Checks, in the order the spec lists them, and the status each failure gets:

    400  body does not parse (framing, decimal, base64, > 63 proof lines, checkpoint body)
    404  the checkpoint's origin is not a configured log
    403  no signature from a trusted key of that origin verifies -- also a checkpoint with NO signature
         line (we parse the checkpoint body first, so the 404/403 distinction survives a bare body)
    400  old size > checkpoint size
    409  old size != the size we last cosigned for that origin (0 if never); body `<size>\\n`,
         Content-Type `text/x.tlog.size`
    422  the consistency proof does not verify from our stored (size, root) to the checkpoint; also a
         non-empty proof where none is possible (old = 0, or old = new)
    409  old size = checkpoint size but another root (a fork at one size). The spec says 409 here; we
         send the same `text/x.tlog.size` body as for a size mismatch so a client that re-sends from the
         size we name sees the same answer again and knows it is not a race but a conflict.
    200  cosignature line(s): Ed25519 `cosignature/v1` (type 0x04), plus our SM2 profile if enabled.

A checkpoint already cosigned (same size and root, old = that size) is answered 200 again with a fresh
cosignature. The state update is a compare-and-set on (size, root) in SQLite, committed before the
cosignature is made: two concurrent requests cannot both advance from one state, so the race in the
spec's last section (a rollback after a larger size was cosigned) cannot happen. Requests that carry a
valid log signature but fail consistency (409 fork, 422) are kept in the `misbehaviour` table, as the
spec allows: they are signed evidence that the log forked.

Home layout (`init_witness_home`, created on first start, before the server listens):

    <home>/witness.skey        Ed25519 witness signer key (PRIVATE+KEY+name+...), mode 0600
    <home>/witness.vkey        its verifier key (cosignature vkey text), what a policy file names
    <home>/witness-sm2.skey    SM2 witness key (only with --sm2), mode 0600
    <home>/witness-sm2.vkey    its verifier key (0xff "SM2-SM3-cosignature/v1")
    <home>/witness-sm2.pem     the same public key as PEM SubjectPublicKeyInfo, for `openssl pkeyutl`
    <home>/witness.db          SQLite: per origin, the size and root last cosigned
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from evidence import merkle
from evidence.checkpoint import Checkpoint, parse_decimal
from evidence.cosignature import (
    SM2CosignatureSigner,
    WitnessSigner,
    generate_sm2_witness_key,
    generate_witness_key,
    parse_witness_signer,
)
from evidence.errors import FormatError, ProofError, SignatureError
from evidence.note import (
    Ed25519Verifier,
    Note,
    SM2Verifier,
    b64decode_strict,
    b64encode,
    check_text,
    parse_verifier_key,
    verify_note,
)
from notary_bridge.errors import WitnessError

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_PROOF_LINES",
    "SIZE_CONTENT_TYPE",
    "AddCheckpointRequest",
    "Answer",
    "Witness",
    "WitnessHome",
    "WitnessState",
    "init_witness_home",
    "load_witness",
]

log = logging.getLogger(__name__)

#: tlog-witness: "The client MUST NOT send more than 63 consistency proof lines."
MAX_PROOF_LINES = 63
#: tlog-witness: the 409 body's media type.
SIZE_CONTENT_TYPE = "text/x.tlog.size"
COSIGNATURE_CONTENT_TYPE = "text/plain; charset=utf-8"
#: 63 proof lines are ~2.8 KB; a checkpoint with 100 signature lines ~20 KB. Anything past 64 KiB is not
#: a witness request, and refusing it early bounds the work an anonymous client can make us do.
MAX_BODY_BYTES = 64 * 1024
HASH_BYTES = 32
_OLD_PREFIX = "old "

LogVerifier = Ed25519Verifier | SM2Verifier


# --- wire format -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddCheckpointRequest:
    """A parsed add-checkpoint body. `checkpoint` is the note text verbatim (it may lack signatures)."""

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: str

    def to_bytes(self) -> bytes:
        """The request body as the spec frames it (what the client POSTs)."""
        if len(self.proof) > MAX_PROOF_LINES:
            raise FormatError(f"consistency proof of {len(self.proof)} hashes; at most {MAX_PROOF_LINES}")
        lines = [f"{_OLD_PREFIX}{self.old_size}\n", *(b64encode(h) + "\n" for h in self.proof), "\n"]
        return ("".join(lines) + self.checkpoint).encode("utf-8")

    @classmethod
    def from_bytes(cls, body: bytes) -> AddCheckpointRequest:
        """Parse (never verify) a body; FormatError says what is malformed (the witness answers 400)."""
        if len(body) > MAX_BODY_BYTES:
            raise FormatError(f"body of {len(body)} bytes exceeds {MAX_BODY_BYTES}")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise FormatError("body is not UTF-8") from e
        head, sep, checkpoint = text.partition("\n\n")
        if not sep:
            raise FormatError("no blank line between the old size / proof lines and the checkpoint")
        lines = head.split("\n")
        if not lines[0].startswith(_OLD_PREFIX):
            raise FormatError(f"first line {lines[0][:40]!r}: want 'old <size>'")
        old = parse_decimal(lines[0][len(_OLD_PREFIX) :], "old size")
        if len(lines) - 1 > MAX_PROOF_LINES:
            raise FormatError(f"{len(lines) - 1} consistency proof lines; at most {MAX_PROOF_LINES}")
        proof = []
        for i, line in enumerate(lines[1:], start=1):
            h = b64decode_strict(line, f"proof line {i}")
            if len(h) != HASH_BYTES:
                raise FormatError(f"proof line {i}: got {len(h)} bytes, want {HASH_BYTES}")
            proof.append(h)
        if not checkpoint:
            raise FormatError("no checkpoint after the blank line")
        return cls(old, tuple(proof), checkpoint)


def split_checkpoint_note(note: str) -> tuple[Checkpoint, str, Note | None]:
    """(parsed body, body text, parsed note or None if it carries no signature line).

    A checkpoint sent without signatures must still be told apart from garbage (it gets 403, not 400),
    so the body is parsed on its own before the note is.
    """
    split = note.rfind("\n\n")
    if split < 0 or split == len(note) - 2:
        body = note if split < 0 else note[: split + 1]
        check_text(body)
        return Checkpoint.from_text(body), body, None
    body = note[: split + 1]
    check_text(body)
    return Checkpoint.from_text(body), body, Note.from_text(note)


@dataclass(frozen=True)
class Answer:
    """What the HTTP layer sends: status, body, Content-Type."""

    status: int
    body: bytes
    content_type: str

    @classmethod
    def text(cls, status: int, detail: str) -> Answer:
        return cls(status, (detail.rstrip("\n") + "\n").encode(), COSIGNATURE_CONTENT_TYPE)

    @classmethod
    def size(cls, size: int) -> Answer:
        return cls(409, f"{size}\n".encode(), SIZE_CONTENT_TYPE)


# --- state -------------------------------------------------------------------------------------------


_SCHEMA = """
CREATE TABLE IF NOT EXISTS logs (
    origin TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS misbehaviour (
    id INTEGER PRIMARY KEY,
    origin TEXT NOT NULL,
    received_at REAL NOT NULL,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL,
    request BLOB NOT NULL
);
"""


class WitnessState:
    """Per origin, the (size, root) last cosigned, in SQLite; every update is compare-and-set.

    One connection per call: the HTTP server is threaded, and SQLite connections are cheap to open and
    must not be shared across threads. WAL keeps readers off the writer's back; `synchronous=FULL`
    because an answer we sent must survive a power cut (the spec: persist before responding).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        with self._connect() as conn:
            conn.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            yield conn
        finally:
            conn.close()

    def get(self, origin: str) -> tuple[int, bytes] | None:
        """(size, root) last cosigned for `origin`, or None if never."""
        with self._connect() as conn:
            row = conn.execute("SELECT size, root FROM logs WHERE origin = ?", (origin,)).fetchone()
        return (int(row[0]), bytes(row[1])) if row else None

    def advance(self, origin: str, old: tuple[int, bytes] | None, new_size: int, new_root: bytes) -> bool:
        """Move `origin` from `old` (None: never seen) to (new_size, new_root) iff it is still `old`.

        Returns False (writing nothing) when another request changed the state first; the caller then
        answers 409 with the size now stored.
        """
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if old is None:
                    cur = conn.execute(
                        "INSERT OR IGNORE INTO logs (origin, size, root, updated_at) VALUES (?, ?, ?, ?)",
                        (origin, new_size, new_root, time.time()),
                    )
                else:
                    cur = conn.execute(
                        "UPDATE logs SET size = ?, root = ?, updated_at = ? "
                        "WHERE origin = ? AND size = ? AND root = ?",
                        (new_size, new_root, time.time(), origin, old[0], old[1]),
                    )
                ok = cur.rowcount == 1
                conn.execute("COMMIT" if ok else "ROLLBACK")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return ok

    def record_misbehaviour(self, origin: str, status: int, reason: str, request: bytes) -> None:
        """Keep a log-signed request that we refused for inconsistency: evidence of a fork."""
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO misbehaviour (origin, received_at, status, reason, request) "
                "VALUES (?, ?, ?, ?, ?)",
                (origin, time.time(), status, reason, request),
            )

    def misbehaviour(self, origin: str) -> list[tuple[int, str, bytes]]:
        """(status, reason, request body) of refused signed requests for `origin`, oldest first."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT status, reason, request FROM misbehaviour WHERE origin = ? ORDER BY id", (origin,)
            ).fetchall()
        return [(int(s), str(r), bytes(b)) for s, r, b in rows]


# --- the witness -------------------------------------------------------------------------------------


class Witness:
    """The add-checkpoint logic over a state store, the witness's signer(s) and the trusted log keys.

    `log_verifiers`: note verifiers of the logs we witness; a log's origin is its key's name (SPEC.md),
    and one origin may have several keys (Ed25519 and SM2), any of which may verify.
    """

    def __init__(
        self,
        signers: Sequence[WitnessSigner],
        log_verifiers: Sequence[LogVerifier],
        state: WitnessState,
        *,
        clock: Callable[[], float] = time.time,
        hasher: merkle.Hasher = merkle.SHA256,
    ) -> None:
        if not signers:
            raise WitnessError("a witness needs at least one signing key")
        self.signers = list(signers)
        self.state = state
        self.hasher = hasher
        self._clock = clock
        self.logs: dict[str, list[LogVerifier]] = {}
        for v in log_verifiers:
            self.logs.setdefault(v.name, []).append(v)

    @property
    def name(self) -> str:
        return self.signers[0].name

    def add_checkpoint(self, body: bytes) -> Answer:
        """Answer one `POST /add-checkpoint` body (see the module docstring for the statuses)."""
        try:
            req = AddCheckpointRequest.from_bytes(body)
            checkpoint, cp_body, note = split_checkpoint_note(req.checkpoint)
        except FormatError as e:
            return Answer.text(400, f"bad request: {e.diagnostics()}")
        origin = checkpoint.origin
        verifiers = self.logs.get(origin)
        if verifiers is None:
            return Answer.text(404, f"unknown log origin {origin!r}")
        if note is None:
            return Answer.text(403, "checkpoint carries no signature")
        try:
            verified = verify_note(note, verifiers)
        except SignatureError as e:
            return Answer.text(403, f"no trusted log signature verifies: {e.diagnostics()}")
        if origin not in verified.verified_names:
            return Answer.text(403, "no trusted log signature verifies")
        if req.old_size > checkpoint.size:
            return Answer.text(400, f"old size {req.old_size} exceeds checkpoint size {checkpoint.size}")

        stored = self.state.get(origin)
        have_size = stored[0] if stored else 0
        if req.old_size != have_size:
            return Answer.size(have_size)
        old_root = stored[1] if stored else self.hasher.empty_root()
        if req.old_size == checkpoint.size:
            if req.proof:
                why = f"proof of {len(req.proof)} hashes between equal sizes"
                return self._refuse(origin, body, 422, why)
            if checkpoint.root_hash != old_root:
                return self._refuse(origin, body, 409, f"size {checkpoint.size} with another root (fork)",
                                    size=have_size)
        else:
            try:
                merkle.verify_consistency(
                    self.hasher, req.old_size, checkpoint.size, req.proof, old_root, checkpoint.root_hash,
                    allow_empty_old=True,
                )
            except ProofError as e:
                return self._refuse(origin, body, 422, f"consistency proof: {e}")
        if (req.old_size, old_root) != (checkpoint.size, checkpoint.root_hash) and not self.state.advance(
            origin, stored, checkpoint.size, checkpoint.root_hash
        ):
            now = self.state.get(origin)
            return Answer.size(now[0] if now else 0)
        timestamp = int(self._clock())
        lines = "".join(s.cosign(cp_body, timestamp) for s in self.signers)
        return Answer(200, lines.encode(), COSIGNATURE_CONTENT_TYPE)

    def _refuse(
        self, origin: str, body: bytes, status: int, reason: str, *, size: int | None = None
    ) -> Answer:
        log.warning("witness %s refused a signed checkpoint of %s: %s", self.name, origin, reason)
        self.state.record_misbehaviour(origin, status, reason, body)
        if size is not None:
            return Answer.size(size)
        return Answer.text(status, reason)


# --- home --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WitnessHome:
    """Where a witness keeps its keys and state (see the module docstring)."""

    root: Path

    @property
    def skey(self) -> Path:
        return self.root / "witness.skey"

    @property
    def vkey(self) -> Path:
        return self.root / "witness.vkey"

    @property
    def sm2_skey(self) -> Path:
        return self.root / "witness-sm2.skey"

    @property
    def sm2_vkey(self) -> Path:
        return self.root / "witness-sm2.vkey"

    @property
    def sm2_pem(self) -> Path:
        return self.root / "witness-sm2.pem"

    @property
    def db(self) -> Path:
        return self.root / "witness.db"


def _write(path: Path, text: str, mode: int) -> None:
    """Write atomically (temp file + rename) so a crash never leaves half a key."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _ensure_key(skey_path: Path, vkey_path: Path, name: str,
                generate: Callable[[str], tuple[str, str]]) -> WitnessSigner:
    if not skey_path.exists():
        skey, vkey = generate(name)
        _write(skey_path, skey + "\n", 0o600)
        _write(vkey_path, vkey + "\n", 0o644)
    signer = parse_witness_signer(skey_path.read_text(encoding="utf-8").strip())
    if signer.name != name:
        raise WitnessError(f"the witness key in {skey_path} is named {signer.name!r}, not {name!r}")
    vkey = signer.verifier().to_vkey()
    if not vkey_path.exists() or vkey_path.read_text(encoding="utf-8").strip() != vkey:
        _write(vkey_path, vkey + "\n", 0o644)
    return signer


def init_witness_home(home: Path, name: str, *, sm2: bool = False) -> list[WitnessSigner]:
    """Create (first start) or load the witness keys; `witness.vkey` exists when this returns.

    Idempotent. A home whose key has another name is refused rather than silently re-keyed: a witness's
    identity is its key, and policies name it.
    """
    h = WitnessHome(Path(home))
    h.root.mkdir(parents=True, exist_ok=True)
    signers = [_ensure_key(h.skey, h.vkey, name, generate_witness_key)]
    if sm2:
        sm2_signer = _ensure_key(h.sm2_skey, h.sm2_vkey, name, generate_sm2_witness_key)
        assert isinstance(sm2_signer, SM2CosignatureSigner)
        pem = sm2_signer.private_key.public_key().to_pem()
        if not h.sm2_pem.exists() or h.sm2_pem.read_text(encoding="utf-8") != pem:
            _write(h.sm2_pem, pem, 0o644)
        signers.append(sm2_signer)
    return signers


def load_witness(home: Path, name: str, log_vkeys: Sequence[str], *, sm2: bool = False) -> Witness:
    """The witness of a home: keys created if missing, state opened, the given log vkeys trusted."""
    if not log_vkeys:
        raise WitnessError("a witness needs at least one --log verifier key")
    try:
        verifiers = [parse_verifier_key(v.strip()) for v in log_vkeys]
    except FormatError as e:
        raise WitnessError(f"--log: {e.diagnostics()}") from e
    signers = init_witness_home(home, name, sm2=sm2)
    return Witness(signers, verifiers, WitnessState(WitnessHome(Path(home)).db))
