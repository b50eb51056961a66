"""Sign-in and sign-out. The session cookie is replaced on sign-in (no session fixation) and the
server-side session is deleted on sign-out."""

from __future__ import annotations

import secrets

from flask import Response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as WResponse

from depository.console import security
from depository.console.users import SESSION_LIFETIME, LockedOut, SignInFailed, normalize_email
from depository.console.web import bp, safe_next, users


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Response | WResponse:
    from flask import g

    nxt = safe_next(request.values.get("next"))
    if request.method == "GET":
        if g.user is not None:
            return redirect(nxt)
        return Response(render_template("console/sign_in.html", next=nxt, error=None, email=""))
    email = request.form.get("email", "")
    password = request.form.get("password", "")
    normalized = normalize_email(email)
    device = security.known_device(normalized)
    try:
        # remote_addr is the real client: TrustedProxies rewrote it only if the peer is a trusted proxy.
        user = users().authenticate(email, password, request.remote_addr or "-", device=device)
    except (SignInFailed, LockedOut) as e:
        status = 429 if isinstance(e, LockedOut) else 401
        page = Response(render_template("console/sign_in.html", next=nxt, error=e.detail, email=email),
                        status=status)
        if e.retry_after:
            page.headers["Retry-After"] = str(e.retry_after)
        return page
    old = request.cookies.get(security.SESSION_COOKIE)
    if old:
        users().end_session(old)
    token = users().start_session(user)
    resp = redirect(nxt, code=303)
    security.set_cookie(resp, security.SESSION_COOKIE, token, int(SESSION_LIFETIME.total_seconds()))
    resp.delete_cookie(security.PRE_SESSION_COOKIE, path="/")
    # This browser is now a known device of this e-mail (a new id each sign-in: a stolen cookie ages out).
    security.set_cookie(resp, security.DEVICE_COOKIE,
                        security.device_cookie_value(user.email, secrets.token_hex(16)), security.DEVICE_LIFETIME_S)
    return resp


@bp.post("/sign-out")
def sign_out() -> WResponse:
    token = request.cookies.get(security.SESSION_COOKIE)
    if token:
        users().end_session(token)
    resp = redirect(url_for("console.sign_in"), code=303)
    resp.delete_cookie(security.SESSION_COOKIE, path="/", secure=security.cookie_secure(), httponly=True,
                       samesite="Lax")
    return resp
