"""`depository serve`: gunicorn API workers, plus one supervised sidecar process for the background work.

API workers only serve requests (they sequence deposits inside their own transactions). The integrator,
the notary and the monitoring scheduler run in one sidecar process (`depository/background.py`), which
the gunicorn master starts from its `when_ready` hook, restarts when it dies, and stops when the server
stops (`on_exit`, or as soon as the master begins to shut down). Only the holder of the integrator lock
integrates, so any number of servers (each with its sidecar) may share a database.

The same public hooks (`when_ready`, `on_exit`, `post_worker_init`, `worker_exit`) serve
deploy/gunicorn.conf.py, which runs `depository.app:create_app()` under plain gunicorn.

Background modes (`configure(config, background=...)`, `run_server(background=...)`,
`depository serve --background`):

* `sidecar` (default): as above.
* `in-process`: every API worker runs the background threads itself (the old layout; for embedding).
* `none`: API only; run `depository background` elsewhere (its own systemd unit).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from depository.config import Config
from depository.logging_setup import configure_logging, dict_config

log = logging.getLogger(__name__)

BACKGROUND_MODES = ("sidecar", "in-process", "none")

_config: Config | None = None
_mode = "sidecar"
_sidecar: Any = None  # depository.background.Sidecar, in the gunicorn master


def configure(config: Config | None = None, *, background: str = "sidecar") -> None:
    """Set the configuration and background mode the hooks below use (call it in the gunicorn master)."""
    global _config, _mode
    if background not in BACKGROUND_MODES:
        raise ValueError(f"background must be one of {', '.join(BACKGROUND_MODES)}, not {background!r}")
    _config, _mode = config, background


#: deploy/gunicorn.conf.py's own variables: not depository settings (load_config would refuse them).
GUNICORN_ENV = ("DEPOSITORY_BIND", "DEPOSITORY_WORKERS", "DEPOSITORY_THREADS", "DEPOSITORY_FORWARDED_ALLOW_IPS",
                "DEPOSITORY_BACKGROUND")
_gunicorn_env: dict[str, str] = {}


def gunicorn_env() -> dict[str, str]:
    """For deploy/gunicorn.conf.py: take its own variables (GUNICORN_ENV) out of the environment -- so the
    master, the API workers and the sidecar load their settings without them -- and remember them, since
    gunicorn runs the config file again on SIGHUP."""
    for name in GUNICORN_ENV:
        if name in os.environ:
            _gunicorn_env[name] = os.environ.pop(name)
    return dict(_gunicorn_env)


def run_server(config: Config, *, host: str, port: int, workers: int = 2, threads: int = 4,
               background: str = "sidecar") -> None:
    from gunicorn.app.base import BaseApplication

    configure(config, background=background)

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
            self.cfg.set("when_ready", when_ready)
            self.cfg.set("on_exit", on_exit)
            self.cfg.set("on_reload", on_reload)
            self.cfg.set("post_worker_init", post_worker_init)
            self.cfg.set("pre_request", pre_request)
            self.cfg.set("worker_exit", worker_exit)

        def load(self) -> Any:
            from depository.app import create_app

            return create_app(config)

    configure_logging(config.log_format, config.log_level)
    print(f"depository API on http://{host}:{port}/ (home {config.home})", flush=True)
    _App().run()


def when_ready(server: Any) -> None:
    """gunicorn hook (master, before the first worker is forked): start the background sidecar."""
    global _sidecar
    if _mode != "sidecar" or _sidecar is not None:
        return
    from depository.background import Sidecar
    from depository.config import load_config

    config = _config if _config is not None else load_config()

    def serving() -> bool:
        # The arbiter empties LISTENERS first thing when it stops: then the sidecar is stopped at once (its
        # lock is free for another server while our workers drain) and not restarted. With reuse_port
        # the master has no listeners of its own, so only on_exit stops it.
        return bool(getattr(server, "LISTENERS", None)) or bool(getattr(server.cfg, "reuse_port", False))

    _sidecar = Sidecar(config, should_run=serving)
    _sidecar.start()


def on_exit(server: Any) -> None:
    """gunicorn hook (master, last): stop the sidecar (SIGTERM; it releases the integrator lock)."""
    global _sidecar
    if _sidecar is not None:
        _sidecar.stop()
        _sidecar = None


def on_reload(server: Any) -> None:
    """gunicorn hook (master, SIGHUP): new API workers load the new code and settings; so does a new sidecar
    (the current one is asked to stop, and the watcher starts its successor)."""
    if _sidecar is not None:
        if _config is not None:
            _sidecar.config = _config
        _sidecar.restart()


def post_worker_init(worker: Any) -> None:
    """gunicorn hook (each API worker, after the fork). In `in-process` mode start the background threads
    here (threads and database connections must not cross a fork); otherwise the worker only serves."""
    global _sidecar
    if _sidecar is not None:  # the master's handle on the sidecar: not this process's business
        _sidecar.forget()
        _sidecar = None
    tune_gc()
    if _mode != "in-process":
        return
    services = getattr(worker.wsgi, "extensions", {}).get("depository")
    if services is not None:
        services.start_background()


#: A worker answers "Connection: close" to one request in this many (see pre_request).
RECYCLE_CONNECTION_EVERY = 200


def pre_request(worker: Any, req: Any) -> None:
    """gunicorn hook (each API worker, before a request): spread keep-alive connections over the workers.

    All workers accept on one socket, and whichever wakes first takes a new connection; clients (and
    proxies) that open their connections at once and keep them alive can so pile every connection onto one
    worker, which then runs on one core while the others idle (seen here: one worker at 100% CPU, the other
    at 0%). Closing one connection in RECYCLE_CONNECTION_EVERY after its answer makes the client reconnect,
    and an idle worker, whose main thread is waiting in accept, is the likelier to take it: the load evens
    out within seconds at the cost of one reconnect per couple of hundred requests."""
    worker._depository_requests = n = getattr(worker, "_depository_requests", 0) + 1
    if n % RECYCLE_CONNECTION_EVERY == 0:
        req.must_close = True


def tune_gc() -> None:
    """Fewer collections in API workers: a 10,000-deposit batch allocates hundreds of thousands of small
    objects, and the default thresholds (700 allocations) ran the collector hundreds of times per request
    (a quarter of a batch's time in profiles). The objects of the loaded app are frozen out of collection."""
    import gc

    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def worker_exit(server: Any, worker: Any) -> None:
    """gunicorn hook: stop what the worker started (in-process mode: releases the integrator lock on a clean
    exit so another process takes over at once; in any mode: the monitoring dispatch pool, if used)."""
    services = getattr(worker.wsgi, "extensions", {}).get("depository") if hasattr(worker, "wsgi") else None
    if services is not None:
        services.stop_background()


def sidecar_pid() -> int | None:
    """The pid of the background sidecar (in the gunicorn master), for diagnostics and tests."""
    return _sidecar.pid if _sidecar is not None else None


def run_dev_server(app: Any, host: str, port: int) -> Any:
    """A threaded werkzeug server in this process (demo and tests); returns it, call .shutdown()."""
    import threading

    from werkzeug.serving import make_server

    server = make_server(host, port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name=f"http-{port}", daemon=True)
    thread.start()
    return server


# Former private names, kept for callers of the previous layout.
_post_worker_init = post_worker_init
_worker_exit = worker_exit
