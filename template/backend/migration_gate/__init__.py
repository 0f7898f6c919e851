"""The migration gate's tooling (template-owned: `copier update` keeps it current).

``python -m migration_gate COMMAND`` runs a tool (the noxfile's sessions call it);
``pytest_plugin`` gives pytest the gate's fixtures, and ``checks`` holds the
gate's tests, which ``tests/test_migration_gate.py`` collects. Development
tooling: the app's wheel does not include this package.
"""
