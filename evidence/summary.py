"""The plain-language verdict on a list of checks: the strongest statement they prove, in a judge's words.

Three outcomes for each check (`evidence.verify`: verified, not present, failed) become one of five for the
packet, most serious first:

* ``altered``    a signed byte changed after signing (nothing else was read from the file);
* ``wrong-file`` the packet is genuine, but the file the user gave is not the deposited one;
* ``failed``     some claim in the packet is false;
* ``preliminary`` nothing is false, but evidence the verifier's trust material requires (a witness quorum,
  a timestamp) is not there: a packet issued before it was court-ready;
* ``partial``    nothing is false, but some evidence is not present (say what that leaves unproven);
* ``verified``   every claim is proven.

The headline names what *is* proven ("existed no later than … per TSA X, cosigned by witnesses A and B"),
never more: a timestamp that is absent is not mentioned as if it were there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from evidence.readiness import common_name
from evidence.verify import ABSENT, FAILED, VERIFIED, Check

ALTERED, WRONG_FILE, FAILED_VERDICT, PRELIMINARY, PARTIAL = (
    "altered", "wrong-file", "failed", "preliminary", "partial")

GROUPS = (
    ("The packet file", ("pdf-signature", "pdf-coverage", "pdf-document-timestamp", "signer-chain")),
    ("The deposited file", ("file-hashes", "original-attachment", "leaf-data", "attachments")),
    ("The log", ("inclusion", "checkpoint-ed25519", "checkpoint-sm2")),
    ("Independent witnesses", ("witness-quorum",)),
    ("Time", ("timestamp-token", "time-order")),
)


_LACKS = {"witness-quorum": "a witness quorum", "timestamp-token": "an RFC 3161 timestamp",
          "pdf-document-timestamp": "a document timestamp"}


@dataclass(frozen=True)
class Summary:
    verdict: str
    headline: str
    proven: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def split_name(name: str) -> tuple[str, str]:
    """('dep_x', 'inclusion') for '[dep_x] inclusion'; ('', name) for a packet-wide check."""
    if name.startswith("[") and "] " in name:
        label, rest = name[1:].split("] ", 1)
        return label, rest
    return "", name


def group_of(name: str) -> str:
    base = split_name(name)[1]
    for title, names in GROUPS:
        if base in names:
            return title
    return "Other"


def grouped(checks: list[Check]) -> list[tuple[str, str, list[Check]]]:
    """(group title, worst status, checks) per group, groups with a failure first, then absent, then proven."""
    out: dict[str, list[Check]] = {}
    for c in checks:
        out.setdefault(group_of(c.name), []).append(c)
    order = {FAILED: 0, ABSENT: 1, VERIFIED: 2}
    rows = []
    for title, cs in out.items():
        cs = sorted(cs, key=lambda c: order[c.status])
        rows.append((title, cs[0].status, cs))
    titles = [t for t, _ in GROUPS] + ["Other"]
    return sorted(rows, key=lambda r: (order[r[1]], titles.index(r[0])))


def fmt_iso(text: str) -> str:
    """'2026-12-04 20:00:01 UTC' from an ISO 8601 time (fractions dropped)."""
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return text
    return t.strftime("%Y-%m-%d %H:%M:%S UTC")


def tsa_label(name: str) -> str:
    return f'"{common_name(name)}"'


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _statement(by: dict[str, Check]) -> tuple[str, bool]:
    """The strongest statement the checks of one deposit prove, and whether the time is independently proven."""
    leaf, token, wit = by.get("leaf-data"), by.get("timestamp-token"), by.get("witness-quorum")
    inclusion, log = by.get("inclusion"), by.get("checkpoint-ed25519")
    dep = leaf.facts.get("deposit_id", "the deposit") if leaf and leaf.ok else "the deposit"
    sha = leaf.facts.get("sha256", "") if leaf and leaf.ok else ""
    subject = f"Deposit {dep}" + (f" (SHA-256 {sha[:16]}…)" if sha else "")
    timed = bool(token and token.ok)
    if timed and token is not None:
        s = (f"{subject} existed no later than {fmt_iso(token.facts['gen_time'])}, per the time-stamping "
             f"authority {tsa_label(str(token.facts['tsa']))}")
    elif inclusion and inclusion.ok and log and log.ok:
        s = f"{subject} is recorded in the signed log {log.facts.get('log', '')}".rstrip()
        if leaf and leaf.ok:
            s += f"; the depository says it was received {fmt_iso(leaf.facts['received'])}"
    else:
        s = f"{subject} is described by this packet"
    if wit is not None and wit.ok:
        s += f", cosigned by the witnesses {_and(list(wit.facts['witnesses']))}"
    return s + ".", timed


def summarize(checks: list[Check], *, file_given: bool = False) -> Summary:
    """The packet's verdict and headline, with what is proven, what is missing and what failed."""
    failed = [c for c in checks if c.status == FAILED]
    missing = [c for c in checks if c.status == ABSENT]
    problems = [f"{c.name}: {c.detail}" for c in failed]
    altered = [c for c in failed if c.facts.get("finding") in ("altered", "damaged")]
    if altered:
        return Summary(ALTERED, "This packet was altered after it was signed",
                       problems=[altered[0].detail, "Nothing inside an altered packet can be relied on, so "
                                 "nothing else was read from it. Ask the depository for a fresh copy."])
    if any(split_name(c.name)[1] == "pdf-signature" for c in failed):
        return Summary(ALTERED, "This packet's signature does not verify: it may have been altered after "
                       "signing", problems=problems)

    sections: dict[str, dict[str, Check]] = {}
    for c in checks:
        label, base = split_name(c.name)
        sections.setdefault(label, {})[base] = c
    packet_wide = sections.pop("", {}) if len(sections) > 1 else {}
    if not sections:
        sections = {"": packet_wide}
    statements = [_statement({**packet_wide, **by})[0] for by in sections.values()]

    file_checks = [c for c in failed if split_name(c.name)[1] == "file-hashes"]
    if file_checks and len(file_checks) == len(failed):
        return Summary(WRONG_FILE, "The packet is genuine, but the file you gave is not the deposited file",
                       proven=statements, missing=[f"{c.name}: {c.detail}" for c in missing],
                       problems=problems)
    required = [c for c in failed if c.facts.get("finding") == "missing-required"]
    if failed and len(required) == len(failed):
        lacks = sorted({_LACKS.get(split_name(c.name)[1], split_name(c.name)[1]) for c in required})
        return Summary(PRELIMINARY, f"This packet is preliminary, not court-ready: it lacks {_and(lacks)}",
                       proven=statements, missing=[f"{c.name}: {c.detail}" for c in missing], problems=problems)
    if failed:
        return Summary(FAILED_VERDICT, f"The packet failed {len(failed)} of {len(checks)} checks",
                       proven=[], missing=[f"{c.name}: {c.detail}" for c in missing], problems=problems)

    proven = list(statements)
    if file_given:
        proven.append("The file you gave is the deposited file: its SHA-256 and SM3 match the log.")
    trusted = all(c.facts.get("trusted", True) for c in checks if c.ok and "trusted" in c.facts)
    if not trusted:
        proven.append("Checked against keys shipped inside the packet (untrusted keys): this shows the packet "
                      "is consistent, not who signed it.")
    notes = [f"{c.name}: {c.detail}" for c in missing]
    if not file_given:
        notes.append("no original file was given, so no file was compared with the deposit")
    headline = statements[0] if len(statements) == 1 else (
        f"All {len(statements)} deposits of this packet are proven as stated below")
    return Summary(PARTIAL if missing else VERIFIED, headline, proven=proven, missing=notes)
