"""Why migrations need the direct host: a real PgBouncer in transaction mode, as on Neon.

Through the pooler every transaction may run on a different server session, so
a session-level advisory lock protects nothing and a ``SET`` leaks to other
clients. That is why migrations use ``DATABASE_URL_UNPOOLED`` or the host
without ``-pooler``. PgBouncer comes from Debian's ``pgbouncer`` package,
which .ci/run installs.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from .conftest import servers

LOCK_KEY = 424242
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


@pytest.fixture
def pooler(postgres_server: Any, database_url: str) -> Iterator[str]:
    """A PgBouncer in transaction mode with one server connection; yields a client URL."""
    if not Path(PGBOUNCER).is_file():
        pytest.skip("PgBouncer is not installed (apt-get install pgbouncer)")
    dbname = database_url.rsplit("/", 1)[1]
    port = servers.free_port()
    workdir = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    (workdir / "users.txt").write_text(f'"{postgres_server.user}" ""\n')
    (workdir / "pgbouncer.ini").write_text(
        f"[databases]\n{dbname} = host={postgres_server.host} port={postgres_server.port}\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {workdir}/users.txt\npool_mode = transaction\n"
        f"default_pool_size = 1\nlogfile = {workdir}/pgbouncer.log\n"
    )
    command = [PGBOUNCER, str(workdir / "pgbouncer.ini")]
    if os.geteuid() == 0:  # PgBouncer, like PostgreSQL, refuses to run as root
        account = pwd.getpwnam("postgres")
        for path in (workdir, *workdir.iterdir()):
            os.chown(path, account.pw_uid, account.pw_gid)
        command = ["runuser", "-u", account.pw_name, "--", *command]
    process = subprocess.Popen(command, cwd=workdir, stderr=subprocess.PIPE, text=True)
    url = f"postgresql://{postgres_server.user}@127.0.0.1:{port}/{dbname}"
    try:
        wait_for(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def wait_for(url: str, process: subprocess.Popen[str]) -> None:
    for _ in range(100):
        if process.poll() is not None:
            pytest.fail(f"PgBouncer exited: {process.stderr.read() if process.stderr else ''}")
        try:
            psycopg.connect(url, autocommit=True, connect_timeout=1).close()
            return
        except psycopg.OperationalError:
            time.sleep(0.1)
    pytest.fail("PgBouncer did not accept connections within 10 s")


def try_lock(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as connection:
        return connection.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0]


def test_session_lock_through_the_pooler_excludes_nobody(pooler: str, database_url: str) -> None:
    with psycopg.connect(pooler, autocommit=True) as first_deploy:
        first_deploy.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        assert try_lock(pooler), "a second client through the pooler also 'gets' the lock"
        assert not try_lock(database_url), "on the direct host the lock really is held"
        first_deploy.execute("SELECT pg_advisory_unlock_all()")


def test_set_through_the_pooler_leaks_to_other_clients(pooler: str) -> None:
    with psycopg.connect(pooler, autocommit=True) as one:
        one.execute("SET lock_timeout = '4321ms'")
    with psycopg.connect(pooler, autocommit=True) as another:
        assert another.execute("SHOW lock_timeout").fetchone()[0] == "4321ms"
