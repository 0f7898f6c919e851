"""Your choices for autogenerate and ``alembic check`` (yours once you edit it).

Define any of these names here; each one you leave out keeps the template's
default (``docs/migrations.md``, "Your filters", has an example):

- ``MANAGED_SCHEMAS: set[str | None]``: the schemas compared (default
  ``{None, "public"}``; None is the connection's default schema). Add a schema
  that a model names in ``__table_args__ = {"schema": ...}``.
- ``include_name(name, type_, parent_names) -> bool``: False hides a schema or
  a table by name before it is reflected (default: only ``MANAGED_SCHEMAS``).
- ``include_object(obj, name, type_, reflected, compare_to) -> bool``: False
  hides an object (default: every one; extension-owned tables are always hidden).
- ``NAMING_CONVENTION: dict[str, str] | None``: how the models name the
  constraints and indexes they leave unnamed, and so the names autogenerate
  writes into new revisions (default: the template's, ``pk_user``; None:
  PostgreSQL's own, ``user_pkey``, as a plain Alembic project has them). It
  never changes what an existing revision creates. This file is read before
  the models load: do not import them here.
- ``SAFE_MIGRATIONS: bool``: False makes autogenerate write Alembic's plain
  forms, for a team that deploys in a maintenance window (default True: the
  low-lock forms of ``docs/safe-migrations.md``, "What autogenerate writes").
- ``FAIL_ON_STYLE_ADVICE: bool``: True makes ``lint-migrations`` fail on
  squawk's style rules (``prefer-timestamp-tz``...), as on lock hazards
  (default False: they are advice).
- ``PRODUCTION_DATABASES: set[str]``: production's Neon endpoint id
  (``{"ep-cool-darkness-123456"}``) or ``host:port/dbname``. The ``alembic``
  command line then refuses to upgrade, downgrade or stamp it: production
  changes through ``db-deploy`` (default: none named).
"""
