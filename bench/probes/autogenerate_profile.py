"""Where one ``alembic revision --autogenerate`` spends its time, by cProfile.

Run from ``backend/`` with the project's interpreter and DATABASE_URL set:
``python autogenerate_profile.py MESSAGE``. The revision it writes stays for
the caller to remove. The last line printed is JSON: the whole run and the
functions that make the revision's low-lock forms, each with calls and seconds.
"""

from __future__ import annotations

import cProfile
import json
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))
sys.path.append(str(Path(__file__).resolve().parents[2]))  # bench.timing, after the project

from alembic import command
from alembic.config import CommandLine, Config

from bench.timing import profile_summary

WANTED = {
    "command.revision (autogenerate, render, write, post-write hook)": (
        "alembic/command.py",
        "revision",
    ),
    "reading and comparing, then the directives": ("autogenerate/api.py", "_run_environment"),
    "process_revision_directives": ("db/autogenerate.py", "revision_directives"),
    "write_low_lock_forms (the safe forms)": ("db/low_lock_forms.py", "write_low_lock_forms"),
    "post-write hooks (docs/schema.md)": ("script/write_hooks.py", "_run_hooks"),
}


def main(message: str) -> int:
    # The options the CLI parses: the template's hook acts on --autogenerate only.
    options = CommandLine().parser.parse_args(["revision", "--autogenerate", "-m", message])
    config = Config(str(Path.cwd() / "alembic.ini"), cmd_opts=options)
    profiler = cProfile.Profile()
    profiler.enable()
    command.revision(config, message=message, autogenerate=True)
    profiler.disable()
    print(json.dumps(profile_summary(pstats.Stats(profiler), WANTED)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
