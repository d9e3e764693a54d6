"""Alembic environment: always run programmatically by ``callfleet.db.migrate``."""

from alembic import context

from callfleet.db.base import Base

connection = context.config.attributes["connection"]


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Ignore the search tables created by hand (not in the metadata): SQLite's FTS5 tables
    (0001) and PostgreSQL's ``contact_search`` (0012)."""
    return not (type_ == "table" and name is not None
                and (name.startswith("contacts_fts") or name == "contact_search"))


context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    include_object=include_object,
)
with context.begin_transaction():
    context.run_migrations()
