"""Public `/verify`: check a packet (and optionally the original) against the home's trust material, or
look up whether a deposit (its id, as the packet prints it) has a given hash. No sign-in; nothing about
the depositor is shown. A hash alone is never looked up (it would be a public existence-and-time oracle,
issue 21), and both forms are rate-limited per client address (`verify_per_minute`).

The trust material is what `GET /v1/log/keys` publishes (log vkey, SM2 key, witness policy, TSA root,
packet root). A witness policy or TSA root is passed only when this depository actually uses witnesses or
a TSA: with one given, `evidence.verify` requires the packet to carry cosignatures or a token.
"""

from __future__ import annotations

import re

from flask import Response, current_app, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as WResponse

from depository.console import queries
from depository.console.web import public_bp, services
from depository.errors import RateLimited
from depository.packets import packet_material
from depository.ratelimit import LocalRateLimiter
from depository.uploads import HashingSpool
from depository.wiring import Services
from evidence.errors import EvidenceError
from evidence.summary import Summary, grouped, summarize
from evidence.verify import Check, FileDigests, Trust, verify_packet

HEX_RE = re.compile(r"^[0-9a-fA-F]{64}$")
ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def home_trust(s: Services) -> Trust:
    notary = s.notary
    policy = getattr(notary, "policy_text", None) or None if notary is not None else None
    tsa_ca = notary.tsa_ca_pem if notary is not None and getattr(notary, "stamper", None) is not None else None
    ca = packet_material(s.config.home).ca_path
    return Trust(log_vkey=s.keys.vkey, log_sm2_pem=s.keys.sm2_public_pem, witness_policy=policy,
                 tsa_ca_pem=tsa_ca, packet_ca_pem=ca.read_bytes() if ca.is_file() else None)


def _limiter() -> LocalRateLimiter:
    """One per app (so per process): lookups and packet checks per client address."""
    ext = current_app.extensions
    if "verify_limiter" not in ext:
        per_minute = services().config.verify_per_minute
        ext["verify_limiter"] = LocalRateLimiter(per_minute / 60, max(1, per_minute // 3))
    limiter: LocalRateLimiter = ext["verify_limiter"]
    return limiter


def _throttled() -> int | None:
    """Seconds to wait if this client address is over its rate, else None (and the attempt is counted)."""
    try:
        _limiter().check(request.remote_addr or "-")  # the real client (depository/proxies.py)
    except RateLimited as e:
        return e.retry_after or 1
    return None


def _page(status: int = 200, retry_after: int | None = None, **values: object) -> Response:
    ctx: dict[str, object] = {"sha256": "", "deposit": "", "answer": None, "lookup_error": None, "checks": None,
                              "summary": None, "groups": None, "packet_error": None}
    ctx.update(values)
    resp = Response(render_template("console/verify.html", **ctx), status=status)
    if retry_after is not None:
        resp.headers["Retry-After"] = str(retry_after)
    return resp


@public_bp.get("/")
def root() -> WResponse:
    """`/` is not a raw 404: people land on the console (which signs them in) or can verify without one."""
    return redirect(url_for("console.index"))


@public_bp.get("/verify")
def verify_page() -> Response:
    sha = request.args.get("sha256", "").strip()
    dep = request.args.get("deposit", "").strip()
    if not sha and not dep:
        return _page()
    if not HEX_RE.match(sha):
        return _page(422, sha256=sha, deposit=dep,
                     lookup_error="A SHA-256 hash is 64 hexadecimal characters (0-9, a-f).")
    if not ID_RE.match(dep):
        return _page(422, sha256=sha, deposit=dep, lookup_error=(
            "Enter the deposit id printed in the evidence packet (dep_...) with the hash. A hash alone is "
            "not looked up, so that nobody can learn whether someone else deposited a document they guess."))
    wait = _throttled()
    if wait is not None:
        return _page(429, wait, sha256=sha, deposit=dep,
                     lookup_error=f"Too many lookups from your address; try again in {wait} seconds.")
    return _page(sha256=sha, deposit=dep, answer=queries.public_lookup(services(), sha.lower(), dep))


@public_bp.post("/verify")
def verify_upload() -> Response:
    wait = _throttled()
    if wait is not None:
        return _page(429, wait, packet_error=f"Too many checks from your address; try again in {wait} seconds.")
    cap = services().config.verify_max_packet_bytes
    if request.content_length is not None and request.content_length > cap + services().config.max_upload_bytes:
        return _page(413, packet_error="The upload is larger than a packet and its original can be.")
    packet = request.files.get("packet")
    original = request.files.get("file")
    checks: list[Check] | None = None
    packet_error = None
    status = 422
    with_file = original is not None and bool(original.filename)
    if packet is None or not packet.filename:
        packet_error = "Choose the evidence packet (a PDF) to check."
    elif not isinstance(packet.stream, HashingSpool) or packet.stream.hasher.size > cap:
        # Both parts were streamed to disk while they arrived (uploads.HashingSpool): only a packet of a
        # packet's size is ever read into memory, the original never is -- its digests are compared.
        packet_error = f"An evidence packet is at most {cap // (1 << 20)} MiB; this file is larger."
        status = 413
    else:
        spool: HashingSpool = packet.stream
        spool.file.seek(0)
        pdf = spool.file.read()
        data: FileDigests | None = None
        if with_file and original is not None and isinstance(original.stream, HashingSpool):
            h = original.stream.hasher
            data = FileDigests(h.sha256, h.sm3, h.size)
        try:
            checks = verify_packet(pdf, file=data, trust=home_trust(services()))
        except EvidenceError as e:
            packet_error = f"This file is not a readable evidence packet: {e.diagnostics()}"
    summary: Summary | None = None if checks is None else summarize(checks, file_given=with_file)
    return _page(200 if packet_error is None else status, checks=checks, summary=summary,
                 groups=grouped(checks) if checks is not None else None, packet_error=packet_error,
                 with_file=with_file)
