"""The project's command-line processes end without a last garbage collection.

``db/quick_exit.py`` freezes the heap in an ``atexit`` handler. Each probe
below registers its own handler first, so it runs last (handlers run in
reverse order), and says whether the heap was frozen by then. The bench
(``uvx nox -s bench``, row 2.7) measures what that saves.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.support import Project, output

PROBE = """
import atexit, gc, sys
at_start = gc.get_freeze_count()  # the interpreter may freeze a few objects of its own
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > at_start, flush=True))
{run}
"""

COMMAND_LINES = {
    "alembic": "from alembic.config import main\nmain(argv=['current'])",
    "db-doctor": "from my_service.db.doctor import main\nsys.exit(main())",
    "db-deploy": "from my_service.db.deploy import main\nsys.exit(main())",
    "python -m migration_gate": (
        "import runpy\nsys.argv = ['migration_gate', 'schema-docs']\n"
        "runpy.run_module('migration_gate', run_name='__main__')"
    ),
    "the gate's pytest run": (
        "import pytest\nsys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', "
        "'-k', 'test_single_head_revision']))"
    ),
}


def exit_state(project: Project, run: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(project.bin / "python"), "-c", PROBE.format(run=run)],
        cwd=project.backend,
        env=project.environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("command", COMMAND_LINES)
def test_command_line_processes_exit_with_the_heap_frozen(project: Project, command: str) -> None:
    result = exit_state(project, COMMAND_LINES[command])
    assert result.stdout.splitlines()[-1] == "frozen at exit: True", output(result)


def test_a_program_that_calls_alembic_itself_exits_as_it_always_did(project: Project) -> None:
    run = "from alembic import command\nfrom alembic.config import Config\n"
    run += "command.current(Config('alembic.ini'))"
    result = exit_state(project, run)
    assert result.returncode == 0, output(result)
    assert result.stdout.splitlines()[-1] == "frozen at exit: False", output(result)
