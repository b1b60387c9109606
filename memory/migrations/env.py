"""Alembic environment for the kscout experiment log.

kscout has no alembic.ini: `Store.migrate` builds the Config in code and hands over an open
connection (already inside a transaction) through `config.attributes["connection"]`, so the
whole upgrade commits or rolls back as one. For hand use with the alembic CLI, a URL set as
`sqlalchemy.url` on the Config works too (e.g. to autogenerate the next revision).
"""

from alembic import context
from sqlalchemy import create_engine

from memory.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(**kwargs) -> None:
    # render_as_batch: SQLite cannot ALTER most things; batch mode rebuilds the table instead.
    context.configure(target_metadata=target_metadata, render_as_batch=True,
                      compare_type=True, **kwargs)


def run_offline() -> None:
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as connection:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
