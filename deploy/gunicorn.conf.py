"""gunicorn settings for running the API directly under gunicorn (instead of `depository serve`):

    gunicorn -c deploy/gunicorn.conf.py 'depository.app:create_app()'

Settings come from DEPOSITORY_* variables (or $DEPOSITORY_HOME/config.toml) exactly as for
`depository serve`, which sets the same options and hooks programmatically (depository/server.py): the
API workers only serve requests, and the master runs one supervised background sidecar (integrator,
notary, monitoring scheduler) -- started in `when_ready`, restarted when it dies, stopped in `on_exit`.

This file's own variables (taken out of the environment here, so the depository's settings never see
them): DEPOSITORY_BIND, DEPOSITORY_WORKERS, DEPOSITORY_THREADS, DEPOSITORY_FORWARDED_ALLOW_IPS, and
DEPOSITORY_BACKGROUND = sidecar (default) | in-process (threads in every worker) | none (run
`depository background` as a unit of its own).
"""

from depository.config import load_config
from depository.logging_setup import dict_config
from depository.server import (  # noqa: F401 - the hooks are looked up by name
    configure,
    gunicorn_env,
    on_exit,
    on_reload,
    post_worker_init,
    pre_request,
    when_ready,
    worker_exit,
)

_env = gunicorn_env()  # this file's variables, taken out of the environment (kept across SIGHUP reloads)
bind = _env.get("DEPOSITORY_BIND", "127.0.0.1:8080")
workers = int(_env.get("DEPOSITORY_WORKERS", "4"))  # API processes: ~1 per core
threads = int(_env.get("DEPOSITORY_THREADS", "4"))  # requests wait mostly on PostgreSQL
# Behind a reverse proxy that terminates TLS: trust its X-Forwarded-* only from there.
forwarded_allow_ips = _env.get("DEPOSITORY_FORWARDED_ALLOW_IPS", "127.0.0.1")
_background = _env.get("DEPOSITORY_BACKGROUND", "sidecar")

_config = load_config()
configure(_config, background=_background)

worker_class = "gthread"
timeout = 120  # a 10,000-deposit batch or a packet with a remote TSA can take seconds
graceful_timeout = 10  # API workers drain; the sidecar was already told to stop (its lock is free)
keepalive = 5
accesslog = None  # the app writes one JSON line per request (depository.access), with its request id
logconfig_dict = dict_config(_config.log_format, _config.log_level)
