"""Small shared pieces of the notary servers: a WSGI app on a background thread, and atomic file writes."""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server


class ServerThread:
    """A WSGI app served on a background thread; port 0 picks a free port.

    `stop()` is idempotent and leaves no socket or thread behind (no ResourceWarning under
    `filterwarnings=error`). Restarting on the same port works: werkzeug sets SO_REUSEADDR.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *, name: str = "http") -> None:
        self._server = make_server(host, port, app, threaded=True)
        self.app = app
        self.host = host
        self.port = self._server.server_port
        # A short poll interval makes stop() take ~50 ms instead of serve_forever's default 0.5 s.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name=f"{name}-{self.port}", daemon=True)
        self._stopped = False

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ServerThread:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write via a temporary file (created with `mode`) and rename: a crash never leaves a truncated key or
    certificate, and a secret is never readable by others, not even briefly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
