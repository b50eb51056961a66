"""Alembic environment: runs migrations on the URL the caller configured (see depository.db.migrate)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

import depository.console.models  # noqa: F401  (the console's tables, revision 0003)
from depository.models import Base
from depository.monitoring import models as _monitoring_models  # noqa: F401  (registers its tables)

target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def run_migrations_offline() -> None:
    context.configure(url=context.config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
