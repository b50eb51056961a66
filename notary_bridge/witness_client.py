"""HTTP client for a C2SP tlog-witness (`POST <url>/add-checkpoint`), used by the log's notary.

`WitnessClient.add_checkpoint(old_size, proof, note)` returns the cosignature lines of a 200 answer,
unverified (the caller checks them against the policy's key: the spec says clients MUST ignore lines
from unknown keys, and only the caller knows which keys it trusts). Every other outcome is a
`WitnessError`:

    WitnessError              transport failure, or an answer outside the protocol
    ├── WitnessConflict       409; `.size` is the witness's current size (text/x.tlog.size body)
    └── WitnessRefused        400/403/404/422 (or any other status); `.status` says which

The caller resends from `WitnessConflict.size`; if that is the size it just sent, the witness is not
out of sync but refusing (a same-size fork), and retrying would loop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import requests

from evidence.checkpoint import parse_decimal
from evidence.errors import FormatError
from evidence.note import SIG_PREFIX
from notary_bridge.errors import WitnessError
from notary_bridge.witness import SIZE_CONTENT_TYPE, AddCheckpointRequest

__all__ = ["WitnessClient", "WitnessConflict", "WitnessRefused"]

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 64 * 1024


class WitnessRefused(WitnessError):
    """The witness answered with a 4xx/5xx other than 409."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class WitnessConflict(WitnessError):
    """409: the witness's latest cosigned size is not the old size we sent."""

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size


class WitnessClient:
    """One witness endpoint over a keep-alive session (the spec asks clients to reuse connections).

    Not thread-safe: use one client per thread. `close()` (or `with`) releases the connection pool.
    """

    def __init__(self, url: str, *, timeout_s: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._session = requests.Session()

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> WitnessClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_checkpoint(self, old_size: int, proof: Sequence[bytes], note: str) -> list[str]:
        """POST the checkpoint with a consistency proof from `old_size`; the cosignature lines on 200."""
        body = AddCheckpointRequest(old_size, tuple(proof), note).to_bytes()
        try:
            reply = self._session.post(
                f"{self.url}/add-checkpoint", data=body, timeout=self.timeout_s,
                headers={"Content-Type": "text/plain; charset=utf-8"},
            )
            content = reply.content[:MAX_RESPONSE_BYTES]
        except requests.RequestException as e:
            raise WitnessError(f"witness {self.url}: request failed") from e
        text = content.decode("utf-8", errors="replace")
        if reply.status_code == 409:
            mime = reply.headers.get("Content-Type", "").split(";")[0].strip()
            if mime != SIZE_CONTENT_TYPE or not text.endswith("\n"):
                raise WitnessError(f"witness {self.url}: 409 without a {SIZE_CONTENT_TYPE} body")
            try:
                size = parse_decimal(text[:-1], "witness size")
            except FormatError as e:
                raise WitnessError(f"witness {self.url}: 409 body is not a size") from e
            raise WitnessConflict(f"witness {self.url}: has size {size}, we sent old {old_size}", size)
        if reply.status_code != 200:
            raise WitnessRefused(
                f"witness {self.url}: HTTP {reply.status_code}: {' '.join(text.split())[:200]}",
                reply.status_code,
            )
        lines = text.splitlines(keepends=True)
        if not lines or not all(ln.startswith(SIG_PREFIX) and ln.endswith("\n") for ln in lines):
            raise WitnessError(f"witness {self.url}: 200 body is not signature lines")
        return lines
