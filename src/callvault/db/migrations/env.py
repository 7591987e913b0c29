"""Alembic environment: the URL comes from the Config built in ``db.engine``.

No ``fileConfig`` here: logging belongs to the process (``callvault.logs``),
and a logging section would reset its handlers and let every migration step
print at INFO.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from callvault.db.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url") or ""

if context.is_offline_mode():
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
