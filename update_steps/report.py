"""After `copier update`: the report, one line for each step left to a human.

Copier marks files with conflict markers unmerged in git's index but prints
nothing about them, and it cannot know what a new workflow needs before it does
anything. This names:

- the files that hold conflict markers;
- each workflow the update adds, with the switch that turns it on (a
  repository variable its jobs' ``if:`` checks), and the secrets it reads;
- each workflow the project had that now waits for such a switch;
- where the template's CHANGELOG says what this update brings.

It ends with one line: the conflicts, or that the merge was clean and what to
run next. copier.yml's `_migrations` runs this from the project root, last.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from project_state import at_head, say, unmerged_files

WORKFLOWS = ".github/workflows"
SWITCH = re.compile(r"vars\.(\w+) *(==|!=) *'([^']*)'")
SECRET = re.compile(r"secrets\.(\w+)")


@dataclass(frozen=True)
class Workflow:
    switches: dict[str, str]  # repository variable -> when the jobs run, in words
    secrets: list[str]
    environments: list[str]


def read_workflow(text: str) -> Workflow | None:
    """What a workflow needs, from its own text; None when it does not parse."""
    try:
        jobs = (yaml.safe_load(text) or {}).get("jobs")
    except (yaml.YAMLError, AttributeError):
        return None
    if not isinstance(jobs, dict):
        return None
    switches: dict[str, str] = {}
    environments: list[str] = []
    for job in jobs.values():
        for name, operator, value in SWITCH.findall(str(job.get("if", ""))):
            if (operator, value) == ("!=", ""):
                switches[name] = "is set"
            else:
                switches[name] = f"is `{value}`" if operator == "==" else f"is not `{value}`"
        environment = job.get("environment")
        if isinstance(environment, dict):
            environment = environment.get("name")
        if environment and environment not in environments:
            environments.append(str(environment))
    secrets = sorted(set(SECRET.findall(text)) - {"GITHUB_TOKEN"})
    return Workflow(switches, secrets, environments)


def off_until(workflow: Workflow) -> str:
    return " and ".join(
        f"the repository variable {name} {when}" for name, when in workflow.switches.items()
    )


def needs(workflow: Workflow) -> str:
    if not workflow.secrets:
        return "it reads no secret"
    where = "".join(f" (environment `{name}`)" for name in workflow.environments)
    return f"it reads the secret(s) {', '.join(workflow.secrets)}{where}"


def workflow_steps() -> list[str]:
    steps = []
    for path in sorted(Path(WORKFLOWS).glob("*.yml")):
        name = path.as_posix()
        now = read_workflow(path.read_text(encoding="utf-8"))
        if now is None:
            continue
        before_text = at_head(name)
        if before_text is None:
            state = f"is off until {off_until(now)}" if now.switches else "runs from the next push"
            steps.append(f"new workflow {name} {state}; {needs(now)}; its header says more")
            continue
        before = read_workflow(before_text)
        added = [switch for switch in now.switches if before and switch not in before.switches]
        if added:
            steps.append(
                f"{name} now runs only while {off_until(now)}; set it to keep the workflow "
                "running (its header says what to set up first)"
            )
    return steps


def template_source() -> str:
    answers = Path(".copier-answers.yml")
    recorded = yaml.safe_load(answers.read_text(encoding="utf-8")) if answers.is_file() else None
    return str((recorded or {}).get("_src_path", "the template"))


def changelog_step() -> str | None:
    """Copier sets VERSION_FROM and VERSION_TO for the steps it runs after an update."""
    old, new = os.environ.get("VERSION_FROM"), os.environ.get("VERSION_TO")
    if not old or old == new:
        return None
    return (
        f"what the versions after {old} bring, and what each asks of you: CHANGELOG.md of "
        f"{template_source()}"
    )


def main() -> None:
    for step in workflow_steps():
        say(step)
    if changelog := changelog_step():
        say(changelog)
    conflicted = unmerged_files()
    if conflicted:
        say(
            f"{len(conflicted)} file(s) hold conflict markers; keep the lines "
            f"you want, delete the <<<<<<< ======= >>>>>>> lines, then git add: "
            + ", ".join(conflicted)
        )
    else:
        say("merged without conflicts; review `git diff`, run `uvx nox` in backend/, then commit")


if __name__ == "__main__":
    main()
