"""The running release's traffic while a revision runs on a copy (template-owned; a script).

``rehearsal.py`` runs this file as ``release_probe.py`` is run: with the
project's interpreter, from a checkout of the base ref's ``backend/``, so that
the models it loads are the running release's. It reuses the probe's loading.

``python release_traffic.py PACKAGE ROWS_MODULE``, with ``RELEASE_PROBE_URL``
in the environment, prints ``{"ready": [the tables it maps]}`` once the models
are loaded. Then, for each line on stdin:

- a JSON list of tables: loop until ``stop``, each pass a transaction of its own
  per table that selects one row of every mapped column and inserts one
  generated row, then rolls back; as the running code does, never holding a
  lock between passes, which are ``PAUSE`` apart: steady traffic, not a load
  test that would slow the revision down (it answers ``{"started": true}``);
- ``stop``: print one JSON object: the longest a statement took (``longest_ms``)
  and on which table, and how many passes ran.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from release_probe import CANDIDATES, URL_VARIABLE, complete_row, load_rows

PAUSE = 0.02  # seconds between passes


def statements(connection: Any, table: Any, rows: Any) -> list[Any]:
    """The running release's SELECT of the table, and its INSERT of one generated row."""
    from sqlalchemy import select, text

    found = [select(*table.columns).limit(1)]
    shape = rows.shape_of(table)
    cursor = connection.connection.cursor()
    generated = rows.generate(shape, CANDIDATES, rows.fetch_references(cursor, shape, CANDIDATES))
    connection.rollback()
    if generated.values:
        found.append(text(rows.insert_sql(generated, [complete_row(generated.values)])))
    return found


def loop(engine: Any, tables: list[Any], rows: Any, stop: threading.Event) -> dict[str, Any]:
    longest, where, passes = 0.0, None, 0
    with engine.connect() as connection:
        work = [(table, statements(connection, table, rows)) for table in tables]
        if not work:
            stop.wait()
        while not stop.is_set():
            for table, each in work:
                for statement in each:
                    started = time.perf_counter()
                    try:
                        connection.execute(statement)
                    except Exception:  # refused by the new schema: its time still counts
                        connection.rollback()
                    took = time.perf_counter() - started
                    if took > longest:
                        longest, where = took, table.fullname
                connection.rollback()
            passes += 1
            stop.wait(PAUSE)
    return {"longest_ms": round(longest * 1000, 1), "table": where, "passes": passes}


def run(engine: Any, tables: list[Any], rows: Any, stop: threading.Event, into: dict) -> None:
    into.update(loop(engine, tables, rows, stop))


def main(package: str, rows_path: str) -> int:
    sys.path.insert(0, str(Path.cwd()))
    from sqlalchemy import create_engine
    from sqlmodel import SQLModel

    importlib.import_module(f"{package}.models")
    rows = load_rows(rows_path)
    engine = create_engine(os.environ[URL_VARIABLE])
    by_name = {table.fullname: table for table in SQLModel.metadata.sorted_tables}
    print(json.dumps({"ready": sorted(by_name)}), flush=True)
    for line in sys.stdin:
        if line.strip() == "stop":
            continue
        tables = [by_name[name] for name in json.loads(line) if name in by_name]
        stop = threading.Event()
        result: dict[str, Any] = {}
        worker = threading.Thread(target=run, args=(engine, tables, rows, stop, result))
        worker.start()
        print(json.dumps({"started": True}), flush=True)
        sys.stdin.readline()  # "stop"
        stop.set()
        worker.join()
        print(json.dumps(result), flush=True)
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
