"""The running release's models against a database (template-owned; run as a script).

``running_release.py`` runs this file with the project's interpreter, from a
checkout of the base ref's ``backend/``, so that the only models Python can
import are the running release's: nothing of the new code leaks in. It is
standalone on purpose: it loads the gate's row generator (``rows.py``) by its
path, and nothing else of the gate.

``python release_probe.py PACKAGE ROWS_MODULE`` prints, as one JSON object,
each table the old models map with its columns. With ``RELEASE_PROBE_URL`` in
the environment it also runs, per table and inside a transaction that is rolled
back, what the running release runs: a SELECT of every mapped column through
the old metadata, and an INSERT of one generated row of the old models' columns.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

URL_VARIABLE = "RELEASE_PROBE_URL"
CANDIDATES = 8  # rows generated to find one with a value in every column


def load_rows(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("gate_rows", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def first_line(error: BaseException) -> str:
    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__


def failure(error: BaseException, rows: ModuleType) -> dict[str, Any]:
    """What Postgres said: its SQLSTATE and the objects it names, never a row value."""
    cause = getattr(error, "orig", None) or error
    diag = getattr(cause, "diag", None)
    sqlstate = getattr(cause, "pgcode", None) or getattr(cause, "sqlstate", None)
    message = first_line(error).split("DETAIL:")[0].strip()
    if str(sqlstate)[:2] in ("22", "23"):  # data errors and constraint violations quote values
        message = rows.masked(message)
    return {
        "sqlstate": sqlstate,
        "message": message,
        "column": getattr(diag, "column_name", None),
        "constraint": getattr(diag, "constraint_name", None),
        "table": getattr(diag, "table_name", None),
    }


def complete_row(values: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    """The first generated row with a value in every column, as the running code writes one
    (the gate's other rows have NULLs, duplicates and edges on purpose)."""
    return next((row for row in values if all(value is not None for value in row)), values[0])


def exercise(connection: Any, table: Any, rows: ModuleType) -> dict[str, Any]:
    """SELECT every mapped column (one by one if that fails), then INSERT one row."""
    from sqlalchemy import select, text

    found: dict[str, Any] = {"select": None, "missing": [], "insert": None}
    savepoint = connection.begin_nested()
    try:
        connection.execute(select(*table.columns).limit(1)).fetchall()
    except Exception as error:
        found["select"] = failure(error, rows)
        savepoint.rollback()
        for column in table.columns:
            one = connection.begin_nested()
            try:
                connection.execute(select(column).limit(1)).fetchall()
            except Exception:
                found["missing"].append(column.name)
            one.rollback()
        return found
    savepoint.rollback()
    shape = rows.shape_of(table)
    cursor = connection.connection.cursor()
    generated = rows.generate(shape, CANDIDATES, rows.fetch_references(cursor, shape, CANDIDATES))
    if not generated.values:
        found["insert"] = {"skipped": generated.unfillable or "no row could be made up"}
        return found
    savepoint = connection.begin_nested()
    try:
        connection.execute(text(rows.insert_sql(generated, [complete_row(generated.values)])))
    except Exception as error:
        found["insert"] = failure(error, rows)
    savepoint.rollback()
    return found


def main(package: str, rows_path: str) -> int:
    sys.path.insert(0, str(Path.cwd()))
    try:
        from sqlmodel import SQLModel

        importlib.import_module(f"{package}.models")
    except Exception as error:  # the old release's models no longer import here
        print(json.dumps({"error": f"{type(error).__name__}: {first_line(error)}"}))
        return 0
    tables = {
        table.fullname: {"columns": [column.name for column in table.columns]}
        for table in SQLModel.metadata.sorted_tables
    }
    url = os.environ.get(URL_VARIABLE)
    if url:
        from sqlalchemy import create_engine

        rows = load_rows(rows_path)
        engine = create_engine(url)
        with engine.connect() as connection, connection.begin():
            for table in SQLModel.metadata.sorted_tables:
                tables[table.fullname] |= exercise(connection, table, rows)
        engine.dispose()
    print(json.dumps({"tables": tables}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
