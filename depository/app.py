"""Flask application factory (flaskr style): `create_app(config=None, services=None)`."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request

from depository.api import log_routes, params, problems
from depository.config import Config, load_config
from depository.wiring import Services, build_services


def create_app(config: Config | None = None, services: Services | None = None) -> Flask:
    config = config or load_config()
    services = services or build_services(config)
    app = Flask(__name__)
    from depository.uploads import DepositoryRequest

    app.request_class = DepositoryRequest
    app.config["MAX_CONTENT_LENGTH"] = config.max_upload_bytes + 1024 * 1024  # the file plus form fields
    app.config["DEPOSITORY_MAX_UPLOAD_BYTES"] = config.max_upload_bytes
    app.extensions["depository"] = services
    from depository.proxies import TrustedProxies

    app.wsgi_app = TrustedProxies(app.wsgi_app, config.trusted_proxies)  # type: ignore[method-assign]
    problems.init_app(app)
    params.init_app(app)
    app.register_blueprint(log_routes.bp)
    _register_optional_blueprints(app)

    @app.get("/healthz")
    def healthz() -> Response:
        report = services.health()
        resp = jsonify(report)
        # 503 only while something configured is failing: a home without a TSA or witnesses is "degraded"
        # in the body (its packets are preliminary) but keeps serving behind a load balancer.
        resp.status_code = 503 if report.get("failing", report["status"] != "ok") else 200
        return resp

    @app.after_request
    def _security_headers(resp: Response) -> Response:
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        # The API serves data, never pages: nothing may run, load or frame it (the console's pages set
        # their own, looser policy first, and setdefault keeps it).
        resp.headers.setdefault("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
        resp.headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        # Behind TLS (see docs/deploy.md) browsers must keep using it; ignored over plain HTTP.
        resp.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if "Authorization" in request.headers:
            resp.headers.setdefault("Cache-Control", "private, no-store")  # a tenant's data: no shared cache
        return resp

    from depository.logging_setup import init_request_logging

    init_request_logging(app, access_log=config.access_log)

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    return app


def _register_optional_blueprints(app: Flask) -> None:
    """Blueprints of later features register here; each module owns its routes (and, for API routes, their
    OpenAPI description in a module-level `OPENAPI_PATHS`)."""
    from depository.api import deposits_routes, metrics_routes, openapi, packet_routes

    app.extensions.setdefault("openapi_paths", [])
    for module in (deposits_routes, metrics_routes, packet_routes, openapi):
        app.register_blueprint(module.bp)
        extra = getattr(module, "OPENAPI_PATHS", None)
        if extra:
            app.extensions["openapi_paths"].append(extra)
    from depository.console.web import init_app as init_console

    init_console(app)  # the web console (/console) and the public /verify page
    from depository.api import monitoring_routes

    app.register_blueprint(monitoring_routes.bp)
    app.extensions.setdefault("openapi_paths", []).append(monitoring_routes.OPENAPI_PATHS)
    from depository.api import capture_routes

    app.register_blueprint(capture_routes.bp)
    app.extensions["openapi_paths"].append(capture_routes.OPENAPI_PATHS)
