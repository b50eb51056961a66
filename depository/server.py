"""`depository serve`: gunicorn with N worker processes; each runs the integrator loop, but only the
holder of the integrator lock integrates (takeover is automatic when it dies)."""

from __future__ import annotations

import logging
from typing import Any

from depository.config import Config
from depository.logging_setup import configure_logging, dict_config

log = logging.getLogger(__name__)


def run_server(config: Config, *, host: str, port: int, workers: int = 2, threads: int = 4) -> None:
    from gunicorn.app.base import BaseApplication

    class _App(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", max(1, workers))
            self.cfg.set("threads", max(1, threads))
            self.cfg.set("worker_class", "gthread" if threads > 1 else "sync")
            self.cfg.set("timeout", 120)
            self.cfg.set("graceful_timeout", 10)
            self.cfg.set("accesslog", None)  # the app logs each request itself, with its route and request id
            self.cfg.set("loglevel", "warning")
            self.cfg.set("logconfig_dict", dict_config(config.log_format, config.log_level))
            self.cfg.set("post_worker_init", _post_worker_init)
            self.cfg.set("worker_exit", _worker_exit)

        def load(self) -> Any:
            from depository.app import create_app

            return create_app(config)

    configure_logging(config.log_format, config.log_level)
    print(f"depository API on http://{host}:{port}/ (home {config.home})", flush=True)
    _App().run()


def _post_worker_init(worker: Any) -> None:
    """gunicorn hook: start the integrator loop and the notary in each worker, after the fork (threads and
    database connections must not cross a fork). Also usable from deploy/gunicorn.conf.py."""
    app = worker.wsgi
    services = getattr(app, "extensions", {}).get("depository")
    if services is not None:
        services.start_background()


def _worker_exit(server: Any, worker: Any) -> None:
    """gunicorn hook: release the integrator lock on a clean exit so another process takes over at once."""
    services = getattr(worker.wsgi, "extensions", {}).get("depository") if hasattr(worker, "wsgi") else None
    if services is not None:
        services.stop_background()


def run_dev_server(app: Any, host: str, port: int) -> Any:
    """A threaded werkzeug server in this process (demo and tests); returns it, call .shutdown()."""
    import threading

    from werkzeug.serving import make_server

    server = make_server(host, port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name=f"http-{port}", daemon=True)
    thread.start()
    return server


# Public names for a gunicorn config file (deploy/gunicorn.conf.py) that runs `depository.app:create_app()`.
post_worker_init = _post_worker_init
worker_exit = _worker_exit
