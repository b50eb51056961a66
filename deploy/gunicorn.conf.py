"""gunicorn settings for running the API directly under gunicorn (instead of `depository serve`):

    gunicorn -c deploy/gunicorn.conf.py 'depository.app:create_app()'

Settings come from DEPOSITORY_* variables (or $DEPOSITORY_HOME/config.toml) exactly as for
`depository serve`, which sets the same options programmatically (depository/server.py).
"""

import os

from depository.config import load_config
from depository.logging_setup import dict_config
from depository.server import post_worker_init, worker_exit  # noqa: F401 - gunicorn hooks, looked up by name

_config = load_config()

bind = os.environ.get("DEPOSITORY_BIND", "127.0.0.1:8080")
workers = int(os.environ.get("DEPOSITORY_WORKERS", "4"))  # API processes: ~1 per core
threads = int(os.environ.get("DEPOSITORY_THREADS", "4"))  # requests wait mostly on PostgreSQL
worker_class = "gthread"
timeout = 120  # a 10,000-deposit batch or a packet with a remote TSA can take seconds
graceful_timeout = 10  # then the integrator lock is released and another process takes over
keepalive = 5
accesslog = None  # the app writes one JSON line per request (depository.access), with its request id
logconfig_dict = dict_config(_config.log_format, _config.log_level)
# Behind a reverse proxy that terminates TLS: trust its X-Forwarded-* only from there.
forwarded_allow_ips = os.environ.get("DEPOSITORY_FORWARDED_ALLOW_IPS", "127.0.0.1")
