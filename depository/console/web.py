"""The console's blueprints: `/console/*` for signed-in people, `/verify` for anyone.

`init_app(app)` is all `depository.app` calls. Pages are rendered on the server (Jinja); a little
JavaScript (static/console.js, no build step) adds drag and drop with upload progress. A page never
trusts the URL: every deposit and matter is looked up within the signed-in person's tenant.
"""

from __future__ import annotations

from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, current_app, g, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as WResponse

from depository.api.problems import problem
from depository.console import security
from depository.console.users import User, Users
from depository.errors import DepositoryError
from depository.wiring import Services

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates", static_folder="static")
public_bp = Blueprint("public", __name__, template_folder="templates")

F = TypeVar("F")
PUBLIC_ENDPOINTS = {"console.sign_in", "console.static"}


def services() -> Services:
    s: Services = current_app.extensions["depository"]
    return s


def users() -> Users:
    u: Users = current_app.extensions["console_users"]
    return u


def current_user() -> User:
    user: User = g.user
    return user


def wants_json() -> bool:
    return request.headers.get("X-Requested-With") == "XMLHttpRequest" or (
        request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json")


@bp.before_request
def _load_user() -> WResponse | None:
    token = request.cookies.get(security.SESSION_COOKIE, "")
    g.user = users().session_user(token) if token else None
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        security.check_csrf()
    if g.user is None and request.endpoint not in PUBLIC_ENDPOINTS:
        if wants_json():
            return problem(401, "unauthorized", "Sign in first", "your session has ended; sign in again")
        return redirect(url_for("console.sign_in", next=request.full_path.rstrip("?")))
    return None


@public_bp.before_request
def _public_csrf() -> None:
    g.user = None
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        security.check_csrf()


@bp.after_request
@public_bp.after_request
def _headers(resp: Response) -> Response:
    return security.finish_response(resp)


def _error_page(status: int, title: str, detail: str, retry_after: int | None = None) -> Response:
    if wants_json():
        return problem(status, "console", title, detail, retry_after=retry_after)
    resp = Response(render_template("console/error.html", status=status, title=title, detail=detail),
                    status=status, mimetype="text/html")
    if retry_after is not None:
        resp.headers["Retry-After"] = str(retry_after)
    return security.finish_response(resp)


@bp.errorhandler(DepositoryError)
@public_bp.errorhandler(DepositoryError)
def _domain_error(e: DepositoryError) -> Response:
    return _error_page(e.status, e.title, e.detail, e.retry_after)


@bp.errorhandler(HTTPException)
@public_bp.errorhandler(HTTPException)
def _http_error(e: HTTPException) -> Response:
    return _error_page(e.code or 500, e.name, e.description or "")


def require_upload_role(fn: F) -> F:
    """Viewers read; only admin and legal may deposit."""

    @wraps(fn)  # type: ignore[arg-type]
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_user().can_upload:
            return _error_page(403, "Not allowed", "your role (viewer) may read deposits but not deposit files")
        return fn(*args, **kwargs)  # type: ignore[operator]

    return wrapper  # type: ignore[return-value]


def safe_next(target: str | None) -> str:
    """Only same-site paths under /console (no open redirect to another host)."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/console") and "\\" not in target:
            return target
    return url_for("console.deposits")


def evidence_footer(s: Services) -> str:
    """The footer's one sentence about what this depository actually does: never a witness or a TSA that
    is not configured."""
    notary = s.notary
    policy = getattr(notary, "policy", None) if notary is not None else None
    witnessed = policy is not None and policy.quorum != "none"
    stamped = notary is not None and getattr(notary, "stamper", None) is not None
    text = "Deposits are recorded in an append-only Merkle log (RFC 6962) signed by this depository"
    if witnessed and stamped:
        return text + ", cosigned by independent witnesses and timestamped (RFC 3161)."
    if witnessed:
        return text + " and cosigned by independent witnesses; no timestamp authority is configured."
    if stamped:
        return text + " and timestamped (RFC 3161); no independent witnesses are configured."
    return text + "; no timestamp authority or witnesses are configured, so packets are preliminary."


def init_app(app: Flask) -> None:
    """Register the console on the API's app: tables via migrations, key from the home, blueprints."""
    from depository.console import alerts_views, auth_views, log_views, verify_views, views  # noqa: F401

    s: Services = app.extensions["depository"]
    app.extensions["console_users"] = Users(s.engine)
    security.init_app(app, s.config.home)
    app.jinja_env.globals["has_endpoint"] = lambda endpoint: endpoint in app.view_functions
    app.jinja_env.globals["evidence_footer"] = lambda: evidence_footer(s)
    app.register_blueprint(bp)
    app.register_blueprint(public_bp)
