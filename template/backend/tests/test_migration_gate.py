"""The migration gate (template-owned: `copier update` keeps this file current).

Its checks live in ``migration_gate/checks.py``; this file only lets pytest
collect them. Your own tests go beside it, in files of your own.
"""

from migration_gate.checks import *  # noqa: F403
