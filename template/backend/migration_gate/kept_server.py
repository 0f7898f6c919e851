"""A local PostgreSQL that outlives the command that started it (template-owned).

Two servers are kept this way: autogenerate's throwaway server (in the
temporary directory, stopped by a watcher once idle) and ``uvx nox -s dev-db``'s
(its data in ``backend/.postgres/``, kept across stops). Both start from the
binaries ``servers.find_pg_ctl()`` finds, through the gate's executor, and a
later command finds the server by the port written beside its data.

``running_server`` imports only the standard library: it is on the path of
every autogenerate, and pytest-postgresql is imported only to start a server.
"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PORT_FILE = "port"
PG_CTL_FILE = "pg_ctl_path"  # the binaries it was started with, which stop it
LAST_USED_FILE = "last_used"
DEFAULT_PORT = 5432


def shadow_server_dir() -> Path:
    """Where autogenerate's throwaway server lives: one per user, in the temporary directory
    (which the ``postgres`` account can reach when the server must run as it)."""
    return Path(tempfile.gettempdir()) / f"alembic-shadow-{os.getuid()}"


def running_server(workdir: Path) -> int | None:
    """The port of the server kept in ``workdir`` when it accepts connections; else None."""
    try:
        port = int((workdir / PORT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return port if accepts_connections(port) else None


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def mark_used(workdir: Path) -> None:
    (workdir / LAST_USED_FILE).touch()


@contextmanager
def locked(workdir: Path) -> Iterator[None]:
    """Only one command at a time starts or stops the server in ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    with (workdir.parent / f"{workdir.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_server(
    workdir: Path,
    port: int | None = None,
    idle_seconds: float | None = None,
    pg_ctl: Path | None = None,
) -> int:
    """Start the server kept in ``workdir`` unless it runs; return its port.

    Its data stays in ``workdir/data`` and is reused by the next start. A server
    started with ``idle_seconds`` is stopped by a watcher once unused that long.
    ``pg_ctl`` picks the binaries (default: ``servers.find_pg_ctl()``).
    """
    with locked(workdir):
        if (running := running_server(workdir)) is not None:
            mark_used(workdir)
            return running
        from .servers import (
            KeptDataExecutor,
            NoServerError,
            find_pg_ctl,
            free_port,
            server_executor,
        )

        pg_ctl = pg_ctl or find_pg_ctl()
        if pg_ctl is None:
            raise NoServerError(
                "no PostgreSQL binaries: install the server (apt-get install postgresql, "
                "brew install postgresql) or point POSTGRES_BINDIR at them"
            )
        port = port or free_port()
        executor = server_executor(pg_ctl, workdir, port, KeptDataExecutor)
        try:
            executor.start()
        except Exception:  # mirakuru's: initdb or the server failed; its log says why
            reason = last_log_line(workdir)
            raise NoServerError(f"the server in {workdir} did not start: {reason}") from None
        executor.forget()
        (workdir / PORT_FILE).write_text(str(port))
        (workdir / PG_CTL_FILE).write_text(str(executor.executable))
        mark_used(workdir)
        if idle_seconds:
            start_idle_watcher(workdir, port, idle_seconds)
        return port


def last_log_line(workdir: Path) -> str:
    try:
        lines = (workdir / "server.log").read_text(errors="replace").strip().splitlines()
    except OSError:
        lines = []
    return lines[-1] if lines else "no server log (initdb failed)"


def stop_server(workdir: Path) -> bool:
    """Stop the server kept in ``workdir``; False when none was running. Its data stays."""
    with locked(workdir):
        if running_server(workdir) is None:
            return False
        recorded = workdir / PG_CTL_FILE
        # else the wrapper that runs pg_ctl as postgres, written when started as root
        pg_ctl = recorded.read_text().strip() if recorded.is_file() else str(workdir / "pg_ctl")
        subprocess.run(
            [pg_ctl, "stop", "-D", str(workdir / "data"), "-m", "fast", "-w"],
            capture_output=True,
            check=False,
            timeout=60,
        )
        return True


def start_idle_watcher(workdir: Path, port: int, idle_seconds: float) -> None:
    """A detached process that stops the server once it has not been used for a while."""
    subprocess.Popen(
        [
            sys.executable,
            "-m",
            "migration_gate.kept_server",
            "watch",
            str(workdir),
            "--port",
            str(port),
            "--idle",
            str(idle_seconds),
        ],
        cwd=Path(__file__).resolve().parents[1],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def watch(workdir: Path, port: int, idle_seconds: float) -> None:
    """Stop the server on ``port`` once unused for ``idle_seconds``; end when it stops."""
    while running_server(workdir) == port:
        try:
            idle = time.time() - (workdir / LAST_USED_FILE).stat().st_mtime
        except OSError:
            idle = idle_seconds
        if idle >= idle_seconds:
            stop_server(workdir)
            return
        time.sleep(min(max(idle_seconds - idle, 0.5), 30))


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m migration_gate.kept_server")
    parser.add_argument("action", choices=["watch", "stop"])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--idle", type=float, default=600)
    args = parser.parse_args(argv)
    if args.action == "watch":
        watch(args.workdir, args.port, args.idle)
    else:
        stop_server(args.workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
