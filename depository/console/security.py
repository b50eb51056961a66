"""Browser-facing security: the session key in the home, CSRF tokens, cookie flags, response headers.

* The key (`$home/keys/session.key`, 32 random bytes, mode 0600, created on first use) keys the CSRF
  tokens' HMAC, so tokens survive restarts and are shared by every worker process of one home.
* CSRF: a token is HMAC(key, binding) where the binding is the session token when signed in, else a random
  pre-session cookie (signed double-submit). Every POST carries it as a form field or `X-CSRF-Token`
  header; a cross-site page can neither read the cookie nor compute the HMAC. The `Origin` header, when
  the browser sends one, must also be ours.
* Cookies are HttpOnly and SameSite=Lax; Secure unless the request is plain http to a loopback address
  (local tests and demos), overridable with `app.config["CONSOLE_COOKIE_SECURE"]`.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from pathlib import Path

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import Forbidden
from werkzeug.wrappers import Response as WResponse

SESSION_COOKIE = "dep_session"
DEVICE_COOKIE = "dep_device"
DEVICE_LIFETIME_S = 180 * 24 * 3600
PRE_SESSION_COOKIE = "dep_pre"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
KEY_BYTES = 32

CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def load_session_key(home: Path) -> bytes:
    """The console's secret key from the home, created (0600, atomically) when missing."""
    path = Path(home) / "keys" / "session.key"
    if path.exists():
        key = path.read_bytes()
        if len(key) != KEY_BYTES:
            raise ValueError(f"{path} must hold exactly {KEY_BYTES} bytes")
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(KEY_BYTES)
    tmp = path.with_name(f".session.key.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails if another process created it first: then that key wins
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_bytes()


def _key() -> bytes:
    key: bytes = current_app.config["CONSOLE_SESSION_KEY"]
    return key


def csrf_token_for(binding: str) -> str:
    return hmac.new(_key(), b"csrf\0" + binding.encode(), hashlib.sha256).hexdigest()


def csrf_binding() -> str:
    """What this browser's CSRF token is bound to: its session, else its pre-session cookie."""
    return request.cookies.get(SESSION_COOKIE) or request.cookies.get(PRE_SESSION_COOKIE) or ""


def current_csrf_token() -> str:
    """The token forms embed. Creates the pre-session binding if this browser has none yet."""
    from flask import g

    binding = csrf_binding() or g.get("new_pre_session", "")
    if not binding:
        g.new_pre_session = binding = secrets.token_urlsafe(24)
    return csrf_token_for(binding)


def check_csrf() -> None:
    """Reject (403) a state-changing request without a valid token or from another origin."""
    origin = request.headers.get("Origin")
    if origin and origin != "null" and origin.rstrip("/") != request.host_url.rstrip("/"):
        raise Forbidden("cross-origin request refused")
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD, "")
    binding = csrf_binding()
    if not binding or not sent or not hmac.compare_digest(sent, csrf_token_for(binding)):
        raise Forbidden("the form has expired or did not come from this site; reload the page and try again")


def device_cookie_value(email: str, device_id: str) -> str:
    """A known-device cookie: a random device id, bound by HMAC to the e-mail that signed in with it
    (OWASP's "device cookies": sign-in throttling counts this browser's failures apart from strangers')."""
    mac = hmac.new(_key(), b"device\0" + device_id.encode() + b"\0" + email.encode(), hashlib.sha256).hexdigest()
    return f"{device_id}.{mac}"


def known_device(email: str) -> str | None:
    """The device id of this browser's known-device cookie if it was issued for `email`, else None."""
    raw = request.cookies.get(DEVICE_COOKIE, "")
    device_id, _, _ = raw.partition(".")
    if not device_id or len(raw) > 200 or not device_id.isalnum():
        return None
    return device_id if hmac.compare_digest(raw, device_cookie_value(email, device_id)) else None


def cookie_secure() -> bool:
    forced = current_app.config.get("CONSOLE_COOKIE_SECURE")
    if forced is not None:
        return bool(forced)
    if request.scheme == "https":
        return True
    host = request.host.rsplit(":", 1)[0].strip("[]")
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host != "localhost"


def set_cookie(resp: Response | WResponse, name: str, value: str, max_age: int | None) -> None:
    resp.set_cookie(name, value, max_age=max_age, path="/", secure=cookie_secure(), httponly=True,
                    samesite="Lax")


def finish_response(resp: Response) -> Response:
    """Headers for console and /verify pages, and the pre-session cookie a form may have needed."""
    from flask import g

    pre = g.get("new_pre_session")
    if pre and not csrf_binding():
        set_cookie(resp, PRE_SESSION_COOKIE, pre, None)
    resp.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    resp.headers.setdefault("Cache-Control", "no-store")
    resp.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    resp.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if request.scheme == "https":
        resp.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    return resp


def init_app(app: Flask, home: Path) -> None:
    app.config["CONSOLE_SESSION_KEY"] = load_session_key(home)
    app.jinja_env.globals["csrf_token"] = current_csrf_token
