"""Throw-away local services for the tests and benchmarks: a PostgreSQL cluster and an MLflow
tracking server, both on 127.0.0.1, each started by the caller and torn down when its ``with``
block ends. Nothing here is used by the pipeline itself.

PostgreSQL comes from Debian's ``postgresql`` package (installed on demand where this process
may: root with ``apt-get``); initdb refuses to run as root, so as root the cluster runs as the
package's ``postgres`` user.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from repro.errors import ReproError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin() -> Path | None:
    """The directory of PostgreSQL's server programs (initdb, postgres), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def ensure_postgres() -> tuple[Path | None, str]:
    """PostgreSQL's bin directory, installing Debian's ``postgresql`` first if it is missing and
    this process may (idempotent). Returns (bin dir or None, why not)."""
    found = postgres_bin()
    if found is not None:
        return found, ""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None, "PostgreSQL is not installed and this process cannot apt-get install it (not root, or no apt)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "postgresql"]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            return None, f"`{' '.join(cmd)}` failed: {(proc.stderr or proc.stdout)[-500:]}"
    found = postgres_bin()
    return found, "" if found else "apt-get installed postgresql but no initdb was found"


class Postgres:
    """A running throw-away cluster: ``uri(db)`` is the SQLAlchemy URI of database *db*."""

    def __init__(self, port: int, user: str) -> None:
        self.port, self.user = port, user

    def uri(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database *name*; returns its URI."""
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.uri(name)


@contextmanager
def postgres(bin_dir: Path, timeout: float = 60) -> Iterator[Postgres]:
    """initdb a fresh cluster in a temp dir, run it on 127.0.0.1 (trust auth: local tests only),
    stop it (fast shutdown) and delete it afterwards."""
    run_as = "postgres" if os.geteuid() == 0 else None
    data = Path(tempfile.mkdtemp(prefix="repro-pg-"))
    if run_as:
        shutil.chown(data, run_as, run_as)
    db_user = "postgres"
    subprocess.run([str(bin_dir / "initdb"), "-D", str(data / "db"), "-U", db_user, "--auth=trust", "-E", "UTF8",
                    "--no-sync"], user=run_as, check=True, capture_output=True, timeout=120)
    port = free_port()
    log = open(data / "postgres.log", "w")
    proc = subprocess.Popen([str(bin_dir / "postgres"), "-D", str(data / "db"), "-h", "127.0.0.1",
                             "-p", str(port), "-k", str(data), "-c", "fsync=off", "-c", "max_connections=200"],
                            user=run_as, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            ready = subprocess.run([str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                                   capture_output=True)
            if ready.returncode == 0:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ReproError(f"PostgreSQL did not start on 127.0.0.1:{port}: "
                                 f"{(data / 'postgres.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield Postgres(port, db_user)
    finally:
        proc.send_signal(signal.SIGINT)  # fast shutdown
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(data, ignore_errors=True)


def wait_for_http(url: str, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    """Poll *url* until it answers 200 (a starting server), or raise naming what went wrong."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log and log.is_file() else ""
            raise ReproError(f"{url} did not come up within {timeout:.0f} s: {tail}")
        time.sleep(0.5)


@contextmanager
def mlflow_server(command: str | list[str], port: int, cwd: Path, env: dict[str, str], log: Path,
                  timeout: float = 180) -> Iterator[subprocess.Popen]:
    """Run an ``mlflow server`` command (a shell line, as the README writes it, or an argv list)
    in its own process group; wait for its /health; stop the whole group afterwards."""
    with open(log, "w") as fh:
        proc = subprocess.Popen(command, shell=isinstance(command, str), cwd=cwd, env=env, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", timeout, proc, log)
        yield proc
    finally:
        stop_process_group(proc)


def stop_process_group(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the process group *proc* leads (a server and its workers), SIGKILL if it lingers."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    try:  # workers that outlived their parent
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
