"""5. Throwaway server start-up: ``throwaway_server()`` against bare ``initdb`` + ``pg_ctl``.

The floor runs the same two programs by hand, as the same account (``runuser``
when root, as migration_gate/servers.py does), with the same locale and server options, so
the ratio is what the wrapper (pytest-postgresql's executor, the password
rule, the reload) adds. Start-up is timed; stopping and removing are not.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import shutil
import statistics
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from types import ModuleType

from .timing import Figure, alternate, profile_summary

LOCALE = {"LC_ALL": "C.UTF-8", "LC_CTYPE": "C.UTF-8", "LANG": "C.UTF-8"}


class BareServer:
    """``initdb`` + ``pg_ctl start -w`` by hand, as servers.py's account would run them."""

    def __init__(self, servers: ModuleType) -> None:
        self.servers = servers
        pg_ctl = servers.find_pg_ctl()
        if pg_ctl is None:
            raise servers.NoServerError(servers.NO_SERVER_HELP)
        self.bindir = pg_ctl.parent
        self.as_account: list[str] = []
        self.account = None
        if os.geteuid() == 0:
            self.account = servers.unprivileged_account()
            self.as_account = ["runuser", "-u", self.account.pw_name, "--"]
        self.workdir: Path | None = None
        self.phases: list[tuple[float, float]] = []  # (initdb, pg_ctl start) per start

    def command(self, program: str, *args: str) -> None:
        assert self.workdir is not None
        result = subprocess.run(
            [*self.as_account, str(self.bindir / program), *args],
            cwd=self.workdir,
            env={**os.environ, **LOCALE},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        if result.returncode:
            log = self.workdir / "server.log"
            detail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{program} {' '.join(args)} exited {result.returncode}\n{detail}")

    def start(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-bare-postgres-"))
        if self.account is not None:
            os.chown(self.workdir, self.account.pw_uid, self.account.pw_gid)
        data = str(self.workdir / "data")
        began = time.perf_counter()
        self.command("initdb", "--pgdata", data, "--username=postgres", "--auth=trust")
        initialized = time.perf_counter()
        options = (
            f"-F -p {self.servers.free_port()} -c unix_socket_directories='{self.workdir}' "
            + self.servers.FAST_UNSAFE_OPTIONS
        )
        log = str(self.workdir / "server.log")
        self.command("pg_ctl", "start", "-w", "-D", data, "-l", log, "-o", options)
        self.phases.append((initialized - began, time.perf_counter() - initialized))

    def stop(self) -> None:
        assert self.workdir is not None
        self.command("pg_ctl", "stop", "-D", str(self.workdir / "data"), "-m", "fast")
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir = None


def throwaway_phases(servers: ModuleType) -> dict[str, dict[str, float]]:
    """Where one ``throwaway_server()`` start-up spends its time, by cProfile."""
    profiler = cProfile.Profile()
    with ExitStack() as stack:
        profiler.enable()
        stack.enter_context(servers.throwaway_server())
        profiler.disable()
        time.sleep(0.5)
    wanted = {
        "whole start-up": ("migration_gate/servers.py", "throwaway_server"),
        "pg_ctl --version": ("executors/proc.py", "version"),
        "initdb": ("executors/proc.py", "init_directory"),
        "pg_ctl start, until the port answers": ("mirakuru/base.py", "wait_for"),
        "of which sleeping between polls": ("~", "<built-in method time.sleep>"),
        "pg_hba.conf + reload": ("migration_gate/servers.py", "require_passwords"),
    }
    return profile_summary(pstats.Stats(profiler), wanted)


def measure_server_startup(servers: ModuleType) -> tuple[list[Figure], dict]:
    bare = BareServer(servers)
    stack = ExitStack()

    def throwaway() -> None:
        stack.enter_context(servers.throwaway_server())

    def stop_throwaway() -> None:
        # Its `pg_ctl start -w` is still polling when the port opens; stopping the
        # server under it makes it print "could not start server".
        time.sleep(0.5)
        stack.close()

    samples = alternate(
        {
            "bare": (bare.start, None, bare.stop),
            "throwaway": (throwaway, None, stop_throwaway),
        }
    )
    evidence = {
        "bare_initdb_s": round(statistics.median(initdb for initdb, _ in bare.phases), 3),
        "bare_pg_ctl_start_s": round(statistics.median(start for _, start in bare.phases), 3),
        "one_throwaway_start_profiled": throwaway_phases(servers),
    }
    floor = Figure("5.1", "server start-up: bare initdb + pg_ctl start -w (floor)", samples["bare"])
    ours = Figure(
        "5.2",
        "server start-up: servers.py throwaway_server()",
        samples["throwaway"],
        floor,
        note="pytest-postgresql's executor, then pg_hba.conf + reload",
    )
    return [floor, ours], evidence
