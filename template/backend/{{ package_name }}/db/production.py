"""Production changes through ``db-deploy``, never from a developer's shell.

Template-owned: `copier update` keeps this file current. ``PRODUCTION_DATABASES``
in ``migrations/env_hooks.py`` names production, each entry one of:

- a Neon endpoint id (``ep-cool-darkness-123456``, the first label of its host,
  ``-pooler`` aside): a Neon branch of production has an endpoint of its own,
  so a branch is never taken for production, while its data, a marker table
  included, is production's;
- ``host:port/dbname`` for a production elsewhere.

The ``alembic`` command line refuses ``upgrade``, ``downgrade`` and ``stamp``
there. ``db-deploy`` (the deploy job) runs them through Alembic's API and is
unaffected; reading commands (``current``, ``check``, ``history``) and
``--sql`` scripts are too.
"""

from __future__ import annotations

from collections.abc import Collection
from types import ModuleType

from alembic import context
from alembic.config import Config

from .settings import POOLER_SUFFIX, SettingsError, location, migration_target

CHANGING_COMMANDS = frozenset({"upgrade", "downgrade", "stamp"})


def refuse_production_from_shell(config: Config, hooks: ModuleType) -> None:
    """One line and no change when the ``alembic`` command line would change production."""
    production: Collection[str] = getattr(hooks, "PRODUCTION_DATABASES", ())
    command = getattr(config.cmd_opts, "cmd", None)
    if not production or not command or context.is_offline_mode():
        return
    if command[0].__name__ not in CHANGING_COMMANDS or config.attributes.get("connection"):
        return
    target = migration_target()
    names = {endpoint_id(target.url.host or ""), location(target.url)}
    if matched := names & set(production):
        raise SettingsError(
            f"{target.variable} points at production ({min(matched)}, in PRODUCTION_DATABASES): "
            f"production changes through db-deploy, not alembic {command[0].__name__}"
        )


def endpoint_id(host: str) -> str:
    """``ep-cool-darkness-123456`` for both of Neon's hosts of that endpoint."""
    return host.split(".", 1)[0].removesuffix(POOLER_SUFFIX)
