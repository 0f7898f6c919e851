"""The throwaway server of ``migration_gate/servers.py``, which the gate and these tests share."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import psutil
import psycopg
import pytest
from mirakuru.base import ENV_UUID
from mirakuru.base_env import processes_with_env

from .conftest import servers


def test_stopping_a_server_signals_no_process_that_was_given_its_launchers_pid() -> None:
    """``pg_ctl start -w`` exits once the server is up, and the kernel may hand its pid
    to another process before teardown (another worker's server, in a long run):
    stopping the server stops it and signals no one else."""
    pg_ctl = servers.find_pg_ctl()
    assert pg_ctl is not None, servers.NO_SERVER_HELP
    workdir = Path(tempfile.mkdtemp(prefix="pytest-postgres-"))
    port = servers.free_port()
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    executor = servers.server_executor(pg_ctl, workdir, port)
    bystander = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        executor.start()
        psycopg.connect(url).close()
        launcher = executor.process
        assert launcher is not None and launcher.wait(timeout=30) == 0, "pg_ctl start -w exits"
        launcher.pid = bystander.pid  # the launcher's pid, reused by a session leader

        executor.stop()

        assert bystander.poll() is None, f"the bystander got signal {-(bystander.returncode or 0)}"
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=3).close()
    finally:
        if executor.running():
            subprocess.run([executor.executable, "stop", "-D", executor.datadir, "-m", "i"])
        bystander.kill()
        bystander.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def test_no_other_process_exiting_kills_a_server() -> None:
    """mirakuru, imported by every gate run, SIGKILLs at its exit each process whose
    ``mirakuru_uuid`` contains the exiting pid as a substring. A pid is a string of
    digits, so no pid may be found in the mark of the server's processes: mirakuru's
    own search, for each digit, finds none of them."""
    with (
        servers.throwaway_server() as server,
        psycopg.connect(server.url(server.maintenance_db)) as connection,
    ):
        backend = connection.execute("SELECT pg_backend_pid()").fetchone()[0]
        postmaster = psutil.Process(backend).ppid()
        found = {
            digit: processes_with_env(ENV_UUID, digit) & {backend, postmaster}
            for digit in "0123456789"
        }
    assert not any(found.values()), f"the pids that would kill the server: {found}"
