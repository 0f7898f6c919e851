"""Registers the migration gate's fixtures (template-owned).

Put your own fixtures in tests/conftest.py; the template never writes that file.
"""

pytest_plugins = ["migration_gate.pytest_plugin"]
