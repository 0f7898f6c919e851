"""Command-line processes that end without a last garbage collection (template-owned).

When a Python process exits, the interpreter collects garbage over its whole
heap and tears down every module. With SQLAlchemy, Pydantic and Alembic
loaded that takes about 0.3 s: a quarter of ``alembic current``. A
``gc.freeze()`` in an ``atexit`` handler moves every object to the permanent
generation, so the exit skips that collection. The other exit handlers
(logging's flush among them), ``weakref.finalize`` callbacks and the flush of
stdout and stderr still run; what is skipped are the finalizers of objects
still alive at exit, which Python does not promise to run anyway.

For command-line processes only (``alembic``, ``db-deploy``, ``db-doctor``,
``python -m migration_gate``, the gate's pytest run), never for the service.
"""

import atexit
import gc

from alembic.config import Config


def skip_garbage_collection_at_exit() -> None:
    atexit.unregister(gc.freeze)  # once, however often it is asked for
    atexit.register(gc.freeze)


def skip_garbage_collection_at_exit_of_alembic(config: Config) -> None:
    """The same for the ``alembic`` command line; a program that calls Alembic's
    commands itself (``config.cmd_opts`` is None) exits as it always did."""
    if config.cmd_opts is not None:
        skip_garbage_collection_at_exit()
