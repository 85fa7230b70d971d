"""Alembic environment: runs against the engine handed in by copilot.store.db.migrate."""

from alembic import context

from copilot.store.migrations.naming import include_name
from copilot.store.models import Base

config = context.config
engine = config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()
