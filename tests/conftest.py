"""Shared fixtures (flaskr style: `app`, `client`), with real PostgreSQL and Redis.

`db_url` is parametrised over SQLite and PostgreSQL: every storage and log test runs against both. Each
PostgreSQL test gets its own freshly created database, dropped afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

PG_URL = os.environ.get("DEPOSITORY_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("DEPOSITORY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DEPOSITORY_SHARED_DIR") or REPO.parent / "shared")
if not (SHARED / "testdata").is_dir():  # the checkout's sibling, as CI lays it out
    SHARED = REPO.parent / "shared"
TESTDATA = SHARED / "testdata"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its directory (`-m unit`, `-m "not browser"`): the layout is the classification."""
    for item in items:
        parts = Path(str(item.fspath)).relative_to(REPO / "tests").parts
        if parts and parts[0] in ("unit", "integration", "faults", "browser"):
            item.add_marker(parts[0])


def _admin_url() -> str:
    return PG_URL


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test."""
    name = "dep_" + secrets.token_hex(6)
    admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base = PG_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'depository.db'}"
    else:
        yield request.getfixturevalue("pg_url")


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Any:
    from depository.config import load_config

    return load_config(env={}, home=tmp_path / "home", database_url=db_url, batch_interval_ms=20,
                       log_origin="test.example/log")


@pytest.fixture
def services(config: Any) -> Iterator[Any]:
    from depository.wiring import build_services, init_home

    init_home(config)
    s = build_services(config)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def app(config: Any, services: Any) -> Any:
    from depository.app import create_app

    app = create_app(config, services)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def tenant(services: Any) -> tuple[str, str]:
    """(tenant_id, api_key) of a fresh tenant."""
    return services.tenants.create("Acme Rentals")  # type: ignore[no-any-return]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
