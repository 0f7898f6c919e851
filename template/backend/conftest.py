"""Registers the migration gate's fixtures (template-owned).

Put your own fixtures in tests/conftest.py; the template never writes that file.
"""

pytest_plugins = ["tests.migration_gate.postgres", "tests.migration_gate.fixtures"]
