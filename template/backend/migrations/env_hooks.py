"""Your filters for autogenerate and ``alembic check`` (yours once you edit it).

Define any of these names here; each one you leave out keeps the template's
default (``docs/migrations.md``, "Your filters", has an example):

- ``MANAGED_SCHEMAS: set[str | None]``: the schemas compared (default
  ``{None, "public"}``; None is the connection's default schema). Add a schema
  that a model names in ``__table_args__ = {"schema": ...}``.
- ``include_name(name, type_, parent_names) -> bool``: False hides a schema or
  a table by name before it is reflected (default: only ``MANAGED_SCHEMAS``).
- ``include_object(obj, name, type_, reflected, compare_to) -> bool``: False
  hides an object (default: every one; extension-owned tables are always hidden).
"""
