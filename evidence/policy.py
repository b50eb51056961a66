"""C2SP tlog-policy (https://c2sp.org/tlog-policy, as published in 2026): which logs and witnesses to trust.

    log <vkey> [<url>]
    witness <name> <vkey> [<url>]
    group <name> <k|all|any> <member>...
    quorum <name|none>

Items are separated by spaces or tabs; blank lines and `#` comments are ignored; groups and the quorum
may only name witnesses or groups defined on earlier lines; names share one namespace, `none` is
reserved; exactly one quorum line; no two logs (or two witnesses) may wrap the same public key.
Every violation is a FormatError naming the line number, because a policy is written by hand and the
person fixing it needs to know where to look.

Log vkeys are note verifier keys (`evidence.note`: Ed25519 0x01 or our SM2-SM3 type); witness vkeys
are cosignature keys (`evidence.cosignature`: 0x04 or our SM2 cosignature type). `to_text` writes a
canonical form (logs, witnesses, groups in definition order, quorum); comments are not kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from evidence.checkpoint import VerifiedCheckpoint, verify_checkpoint
from evidence.cosignature import WitnessVerifier, parse_witness_key
from evidence.errors import FormatError, SignatureError
from evidence.note import Ed25519Verifier, SM2Verifier, parse_verifier_key, verify_note

NONE = "none"
_ITEM_SPLIT = re.compile(r"[ \t]+")
_POSITIVE = re.compile(r"^[1-9][0-9]*$")

LogVerifier = Ed25519Verifier | SM2Verifier


def _public_material(v: LogVerifier | WitnessVerifier) -> bytes:
    """The wrapped public key, to spot duplicates that differ only by key name (tlog-policy)."""
    key = v.public_key
    return key if isinstance(key, bytes) else key.point()


@dataclass(frozen=True)
class PolicyLog:
    verifier: LogVerifier
    url: str | None = None


@dataclass(frozen=True)
class PolicyWitness:
    name: str
    verifier: WitnessVerifier
    url: str | None = None


@dataclass(frozen=True)
class PolicyGroup:
    """k-of-n over earlier witnesses or groups; `spelling` keeps `all`/`any`/decimal for to_text."""

    name: str
    threshold: int
    members: tuple[str, ...]
    spelling: str


@dataclass(frozen=True)
class Policy:
    """A parsed policy. Build it with `from_text`; evaluate with `satisfied`."""

    logs: tuple[PolicyLog, ...]
    witnesses: tuple[PolicyWitness, ...]
    groups: tuple[PolicyGroup, ...]
    quorum: str

    @classmethod
    def from_text(cls, text: str) -> Policy:
        """Strictly parse a policy file."""
        if text and not text.endswith("\n"):
            raise FormatError(f"policy line {text.count(chr(10)) + 1}: missing final newline")
        logs: list[PolicyLog] = []
        witnesses: dict[str, PolicyWitness] = {}
        groups: dict[str, PolicyGroup] = {}
        quorum: str | None = None
        for number, line in enumerate(text.split("\n")[:-1], start=1):

            def fail(why: str, number: int = number) -> FormatError:
                return FormatError(f"policy line {number}: {why}")

            bad = next((c for c in line if (c < " " and c != "\t") or c == "\x7f"), None)
            if bad is not None:
                raise fail(f"control character 0x{ord(bad):02x}")
            stripped = line.strip(" \t")
            if not stripped or stripped.startswith("#"):
                continue
            keyword, *items = _ITEM_SPLIT.split(stripped)
            if keyword == "log":
                if len(items) not in (1, 2):
                    raise fail("want: log <vkey> [<url>]")
                try:
                    lv = parse_verifier_key(items[0])
                except FormatError as e:
                    raise fail(f"log key: {e}") from e
                if any(_public_material(lg.verifier) == _public_material(lv) for lg in logs):
                    raise fail("duplicate log public key")
                logs.append(PolicyLog(lv, items[1] if len(items) == 2 else None))
            elif keyword == "witness":
                if len(items) not in (2, 3):
                    raise fail("want: witness <name> <vkey> [<url>]")
                name = items[0]
                if name == NONE or name in witnesses or name in groups:
                    raise fail(f"name {name!r} is reserved or already defined")
                try:
                    wv = parse_witness_key(items[1])
                except FormatError as e:
                    raise fail(f"witness key: {e}") from e
                if any(_public_material(w.verifier) == _public_material(wv) for w in witnesses.values()):
                    raise fail("duplicate witness public key")
                witnesses[name] = PolicyWitness(name, wv, items[2] if len(items) == 3 else None)
            elif keyword == "group":
                if len(items) < 3:
                    raise fail("want: group <name> <k|all|any> <member>...")
                name, spelling, *members = items
                if name == NONE or name in witnesses or name in groups:
                    raise fail(f"name {name!r} is reserved or already defined")
                for m in members:
                    if m not in witnesses and m not in groups:
                        raise fail(f"group member {m!r} is not a witness or group defined earlier")
                if len(set(members)) != len(members):
                    raise fail("a name is listed twice in one group")
                if spelling == "all":
                    k = len(members)
                elif spelling == "any":
                    k = 1
                elif _POSITIVE.match(spelling) and int(spelling) <= len(members):
                    k = int(spelling)
                else:
                    raise fail(f"threshold {spelling!r}: want all, any or 1..{len(members)}")
                groups[name] = PolicyGroup(name, k, tuple(members), spelling)
            elif keyword == "quorum":
                if len(items) != 1:
                    raise fail("want: quorum <name>")
                if quorum is not None:
                    raise fail("second quorum line")
                if items[0] != NONE and items[0] not in witnesses and items[0] not in groups:
                    raise fail(f"quorum {items[0]!r} is not a witness or group defined earlier")
                quorum = items[0]
            else:
                raise fail(f"unknown keyword {keyword!r}")
        if quorum is None:
            raise FormatError("policy has no quorum line")
        return cls(tuple(logs), tuple(witnesses.values()), tuple(groups.values()), quorum)

    def to_text(self) -> str:
        """Canonical text: logs, witnesses, groups (definition order), quorum."""
        lines = [" ".join(["log", lg.verifier.to_vkey(), *([lg.url] if lg.url else [])]) for lg in self.logs]
        lines += [
            " ".join(["witness", w.name, w.verifier.to_vkey(), *([w.url] if w.url else [])])
            for w in self.witnesses
        ]
        lines += [" ".join(["group", g.name, g.spelling, *g.members]) for g in self.groups]
        lines.append(f"quorum {self.quorum}")
        return "\n".join(lines) + "\n"

    def log_verifiers(self) -> list[LogVerifier]:
        return [lg.verifier for lg in self.logs]

    def witness_verifiers(self) -> list[WitnessVerifier]:
        return [w.verifier for w in self.witnesses]

    def witness_names_for(self, verifiers: Iterable[object]) -> set[str]:
        """Policy names of witnesses whose verifiers are among `verifiers` (VerifiedNote.verifiers)."""
        given = list(verifiers)
        return {w.name for w in self.witnesses if any(w.verifier == v for v in given)}

    def satisfied(self, verified_witness_names: Iterable[str]) -> bool:
        """True if witnesses with these *policy* names having cosigned meets the quorum."""
        have = set(verified_witness_names)
        groups = {g.name: g for g in self.groups}

        def witnessed(name: str) -> bool:
            if name == NONE:
                return True
            group = groups.get(name)
            if group is None:
                return name in have
            return sum(witnessed(m) for m in group.members) >= group.threshold

        return witnessed(self.quorum)


def verify_checkpoint_with_policy(note_text: str | bytes, policy: Policy) -> VerifiedCheckpoint:
    """Verify a cosigned checkpoint: a policy log signed it and the policy's quorum of witnesses cosigned.

    Raises SignatureError naming what is missing (no log signature, or quorum not met and which
    witnesses did verify).
    """
    if not policy.logs:
        raise SignatureError("policy lists no logs; a checkpoint cannot be trusted against it")
    result = verify_checkpoint(note_text, policy.log_verifiers())
    verified = verify_note(note_text, [*policy.log_verifiers(), *policy.witness_verifiers()])
    names = policy.witness_names_for(verified.verifiers)
    if not policy.satisfied(names):
        got = ", ".join(sorted(names)) or "none"
        raise SignatureError(f"witness quorum {policy.quorum!r} not met (verified cosigners: {got})")
    return VerifiedCheckpoint(result.checkpoint, verified)
