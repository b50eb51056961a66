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
    smtp_url: str | None = None

    @field_validator("log_origin")
    @classmethod
    def _origin(cls, v: str) -> str:
        if not v or any(c.isspace() for c in v) or "+" in v:
            raise ValueError("log_origin must be non-empty, without spaces or '+'")
        return v

    @field_validator("batch_max_entries", "batch_interval_ms", "max_upload_bytes", "max_batch_deposits")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("must be positive")
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


_LIST_FIELDS = {"tsa_urls", "fetch_allow_cidrs"}
# DEPOSITORY_* variables that belong to clients or to the test harness, not to the server's settings.
NOT_SETTINGS = {"api_key", "server", "shared_dir"}


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
