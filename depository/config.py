"""One typed, frozen configuration object, built once.

Sources, later ones winning: defaults, `$DEPOSITORY_HOME/config.toml`, `DEPOSITORY_*` environment
variables. Unknown keys are errors (a typo must not silently fall back to a default). Units are in the
names (`batch_interval_ms`).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from depository.errors import ConfigError

ENV_PREFIX = "DEPOSITORY_"


class Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    home: Path = Path("./depository-home")
    database_url: str = ""
    redis_url: str | None = None
    log_origin: str = "depository.example/log"
    # A batch closes after this many entries or this many milliseconds, whichever first.
    batch_max_entries: int = 20_000
    batch_interval_ms: int = 100
    # Sequencing: when more than this many entries wait for integration, shed load (503).
    max_pending_entries: int = 2_000_000
    max_upload_bytes: int = 100 * 1024 * 1024
    max_batch_deposits: int = 10_000
    rate_limit_per_second: float = 0.0  # 0 disables per-key rate limiting
    rate_limit_burst: int = 0
    public_base_url: str = "http://127.0.0.1:8080"
    tsa_urls: tuple[str, ...] = ()
    witness_policy_file: Path | None = None
    notary_retry_max_s: float = 60.0
    run_integrator: bool = True
    fetch_allow_cidrs: tuple[str, ...] = ()
    # Reverse proxies whose X-Forwarded-For / -Proto / -Host are believed (depository/proxies.py), as
    # networks: ["127.0.0.1/32", "10.0.0.0/8"]. Empty: the peer address is the client's.
    trusted_proxies: tuple[str, ...] = ()
    # Public /verify: hash lookups and packet checks per client address and minute (per API process).
    verify_per_minute: int = 30
    verify_max_packet_bytes: int = 32 * 1024 * 1024  # a packet is a few MiB; the original may be larger
    smtp_url: str | None = None
    # Infringement monitoring (depository/monitoring/): fetch limits, scheduling, notifications.
    fetch_timeout_s: float = 10.0  # whole fetch of one resource (connect, headers, body)
    fetch_max_bytes: int = 10 * 1024 * 1024  # a page or image larger than this is a failed fetch
    fetch_max_redirects: int = 5
    fetch_user_agent: str = "EvidenceDepositoryMonitor/1.0"
    fetch_ca_file: Path | None = None  # extra trust roots for https fetches (tests, private PKI)
    monitor_workers: int = 2  # in-process fetch threads when no Redis is configured
    monitor_tick_ms: int = 1000  # how often due watches and deliveries are looked for
    monitor_max_images_per_page: int = 30
    scan_deadline_s: float = 60.0  # a whole scan (page, feed items, images), below gunicorn's 120 s timeout
    # POST /v1/scans per API key (each fetches up to 1 + 30 resources): a token bucket per process.
    scan_rate_per_minute: int = 30
    watch_min_interval_s: int = 60
    webhook_max_attempts: int = 6  # then the delivery is dead-lettered
    webhook_retry_base_s: float = 2.0  # backoff: base * 2^(attempt-1)
    smtp_from: str = "depository@localhost"
    # On-demand web captures (depository/capture/): the whole capture's deadline and byte budget.
    capture_timeout_s: float = 30.0
    capture_max_bytes: int = 50 * 1024 * 1024
    # Operations (issue 8): logs are one JSON object per line by default (see logging_setup.py); "text"
    # for a terminal. access_log writes one line per request (route, status, duration, request id).
    log_format: str = "json"
    log_level: str = "info"
    access_log: bool = True

    @field_validator("log_origin")
    @classmethod
    def _origin(cls, v: str) -> str:
        if not v or any(c.isspace() for c in v) or "+" in v:
            raise ValueError("log_origin must be non-empty, without spaces or '+'")
        return v

    @field_validator("batch_max_entries", "batch_interval_ms", "max_upload_bytes", "max_batch_deposits",
                     "verify_per_minute", "verify_max_packet_bytes", "scan_rate_per_minute")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("must be positive")
        return v

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        import ipaddress

        for c in v:
            try:
                ipaddress.ip_network(c.strip(), strict=False)
            except ValueError as e:
                raise ValueError(f"trusted_proxies: {c!r} is not a network such as 10.0.0.0/8") from e
        return v

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, v: str) -> str:
        if v not in ("json", "text"):
            raise ValueError("log_format must be 'json' or 'text'")
        return v

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'depository.db').resolve()}"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def content_dir(self) -> Path:
        return self.home / "content"


_LIST_FIELDS = {"tsa_urls", "fetch_allow_cidrs", "trusted_proxies"}
# DEPOSITORY_* variables that belong to clients or to the test harness, not to the server's settings.
NOT_SETTINGS = {"api_key", "server", "shared_dir", "pkcs11_pin", "pkcs11_pin_file"}  # PIN: depository/hsm.py


def load_config(env: dict[str, str] | None = None, **overrides: Any) -> Config:
    """Build the Config from the home's config.toml, the environment, then explicit overrides."""
    env = dict(os.environ if env is None else env)
    home = Path(overrides.get("home") or env.get(ENV_PREFIX + "HOME") or "./depository-home")
    values: dict[str, Any] = {}
    toml_path = home / "config.toml"
    if toml_path.is_file():
        try:
            values.update(tomllib.loads(toml_path.read_text(encoding="utf-8")))
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{toml_path}: {e}") from e
    known = set(Config.model_fields)
    for key, raw in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX):].lower()
        if name in NOT_SETTINGS or name.startswith("test_"):
            continue
        if name not in known:
            raise ConfigError(f"unknown setting {key} (known: {', '.join(sorted(k.upper() for k in known))})")
        values[name] = [s for s in raw.split(",") if s] if name in _LIST_FIELDS else raw
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["home"] = home
    try:
        return Config(**values)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise ConfigError(f"setting {where}: {first['msg']}") from e
