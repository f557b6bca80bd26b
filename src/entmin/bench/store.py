"""SQLite results store keyed by (configuration hash, seed, stream position).

Each finished cell is written in one transaction (``INSERT OR IGNORE`` on the primary key), so a rerun skips
finished cells and a run killed at any instant leaves no partial or duplicate row. The key is the stream
position, not the domain name, so a stream that visits a domain twice keeps both visits. Continual runs also
save the adapter state after every finished cell (``<store>-resume/``), so a killed stream restarts where it
stopped; the state is written atomically and loaded with ``weights_only=True``.

Opening checks what the file is: a corrupt file, an SQLite database of another program, a store that cannot
be written and a full disk each end in one :class:`~entmin.errors.DataError` line; ``readonly=True`` (what
``report`` uses) reads a store on a read-only disk or owned by someone else without touching it. Stores of
entmin 0.1 (keyed by domain) are migrated in place, in one transaction, the first time they are opened for
writing; read-only they are read as they are.
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..errors import DataError
from ..utils import atomic_torch_save, ensure_dir

__all__ = ["SCHEMA_VERSION", "ResultStore"]

SCHEMA_VERSION = 2
_TABLES = {"configs", "cells", "records"}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS configs (config_hash TEXT PRIMARY KEY, config TEXT NOT NULL, created REAL);
CREATE TABLE IF NOT EXISTS cells (
    config_hash TEXT NOT NULL, seed INTEGER NOT NULL, domain TEXT NOT NULL, position INTEGER NOT NULL,
    n INTEGER NOT NULL, correct INTEGER NOT NULL, accuracy REAL NOT NULL, metrics TEXT NOT NULL,
    wall_seconds REAL NOT NULL, finished REAL NOT NULL,
    PRIMARY KEY (config_hash, seed, position));
CREATE TABLE IF NOT EXISTS records (kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, finished REAL,
    PRIMARY KEY (kind, key));
"""
_MIGRATE_1_TO_2 = """
ALTER TABLE cells RENAME TO cells_v1;
CREATE TABLE cells (
    config_hash TEXT NOT NULL, seed INTEGER NOT NULL, domain TEXT NOT NULL, position INTEGER NOT NULL,
    n INTEGER NOT NULL, correct INTEGER NOT NULL, accuracy REAL NOT NULL, metrics TEXT NOT NULL,
    wall_seconds REAL NOT NULL, finished REAL NOT NULL,
    PRIMARY KEY (config_hash, seed, position));
INSERT OR IGNORE INTO cells SELECT * FROM cells_v1;
DROP TABLE cells_v1;
"""


class ResultStore:
    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.resume_dir = self.path.parent / (self.path.stem + "-resume")
        if readonly:
            if not self.path.is_file():
                raise FileNotFoundError(f"results store not found: {self.path}")
            self.conn = self._connect_readonly()
            self._check_tables(required=True)
            return
        if self.path.exists() and not os.access(self.path, os.W_OK):
            raise DataError(f"results store {self.path} is read-only; pass a writable --store (reading it with "
                            "`entmin report` works)")
        ensure_dir(self.path.parent, "folder of the results store")
        with self._errors("open"):
            self.conn = sqlite3.connect(self.path, timeout=60)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self._check_tables(required=False)
            with self.conn:
                self.conn.execute("BEGIN IMMEDIATE")  # one migrating/creating process at a time
                version = self.conn.execute("PRAGMA user_version").fetchone()[0]
                existing = self._tables()
                script = (_MIGRATE_1_TO_2 if "cells" in existing and version < SCHEMA_VERSION else "") + _SCHEMA
                for stmt in filter(str.strip, script.split(";")):  # not executescript: it would commit first
                    self.conn.execute(stmt)
                self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # ----- opening -------------------------------------------------------------------------------------------
    def _connect_readonly(self) -> sqlite3.Connection:
        uri = self.path.resolve().as_uri()
        with self._errors("open"):
            try:
                conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=60)
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return conn
            except sqlite3.OperationalError:  # a WAL store on a read-only disk: open it as immutable
                conn = sqlite3.connect(f"{uri}?immutable=1", uri=True)
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return conn

    def _tables(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}

    def _check_tables(self, *, required: bool) -> None:
        with self._errors("read"):
            tables = self._tables()
        if (tables or required) and not _TABLES & tables:
            raise DataError(f"{self.path} is an SQLite database but not an entmin results store "
                            f"(tables: {sorted(tables) or 'none'})")

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """SQLite failures as one line naming the store; the cells already written are never touched."""
        try:
            yield
        except sqlite3.DatabaseError as e:
            msg = str(e)
            if "file is not a database" in msg or "malformed" in msg:
                raise DataError(f"results store {self.path} is not a valid SQLite database ({msg})") from None
            if "readonly" in msg or "read-only" in msg:
                raise DataError(f"results store {self.path} is read-only ({msg})") from None
            if "full" in msg:
                raise DataError(f"cannot write to the results store {self.path}: {msg}; the cells finished "
                                "before are kept") from None
            raise DataError(f"cannot {action} the results store {self.path}: {msg}") from None

    def close(self) -> None:
        self.conn.close()

    # ----- configs & cells ---------------------------------------------------------------------------------
    def register(self, config_hash: str, config: dict[str, Any]) -> None:
        with self._errors("write"), self.conn:
            self.conn.execute("INSERT OR IGNORE INTO configs VALUES (?, ?, ?)",
                              (config_hash, json.dumps(config, sort_keys=True), time.time()))

    def done(self, config_hash: str, seed: int) -> set[int]:
        """Stream positions of the finished cells of (config, seed)."""
        with self._errors("read"):
            rows = self.conn.execute("SELECT position FROM cells WHERE config_hash=? AND seed=?",
                                     (config_hash, seed)).fetchall()
        return {r[0] for r in rows}

    def write_cell(self, config_hash: str, seed: int, domain: str, position: int, n: int, correct: int,
                   metrics: dict[str, Any], wall_seconds: float) -> None:
        with self._errors("write"), self.conn:
            self.conn.execute("INSERT OR IGNORE INTO cells VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                              (config_hash, seed, domain, position, n, correct, correct / max(n, 1),
                               json.dumps(metrics), wall_seconds, time.time()))

    def cells(self, config_hash: str | None = None) -> list[dict[str, Any]]:
        q = ("SELECT c.config_hash, c.seed, c.domain, c.position, c.n, c.correct, c.accuracy, c.metrics, "
             "c.wall_seconds, g.config FROM cells c JOIN configs g USING (config_hash)")
        args: tuple = ()
        if config_hash:
            q += " WHERE c.config_hash = ?"
            args = (config_hash,)
        out = []
        with self._errors("read"):
            rows = self.conn.execute(q + " ORDER BY c.config_hash, c.seed, c.position", args).fetchall()
        for r in rows:
            out.append({"config_hash": r[0], "seed": r[1], "domain": r[2], "position": r[3], "n": r[4],
                        "correct": r[5], "accuracy": r[6], "metrics": json.loads(r[7]), "wall_seconds": r[8],
                        "config": json.loads(r[9])})
        return out

    # ----- generic records (accuracy-estimation splits, ...) ----------------------------------------------
    def put_record(self, kind: str, key: str, value: dict[str, Any], *, replace: bool = False) -> None:
        """Write a record once (a second write of the same key is ignored), or overwrite it with ``replace``."""
        verb = "REPLACE" if replace else "IGNORE"
        with self._errors("write"), self.conn:
            self.conn.execute(f"INSERT OR {verb} INTO records VALUES (?, ?, ?, ?)",
                              (kind, key, json.dumps(value), time.time()))

    def get_records(self, kind: str) -> dict[str, dict[str, Any]]:
        with self._errors("read"):
            rows = self.conn.execute("SELECT key, value FROM records WHERE kind=?", (kind,)).fetchall()
        return {k: json.loads(v) for k, v in rows}

    # ----- resume states for continual streams -------------------------------------------------------------
    def _state_path(self, config_hash: str, seed: int) -> Path:
        return self.resume_dir / f"{config_hash}-seed{seed}.pt"

    def save_state(self, config_hash: str, seed: int, position: int, state: dict[str, Any]) -> None:
        atomic_torch_save({"position": position, "state": state}, self._state_path(config_hash, seed),
                          "resume state")

    def load_state(self, config_hash: str, seed: int) -> tuple[int, dict[str, Any]] | None:
        p = self._state_path(config_hash, seed)
        if not p.is_file():
            return None
        try:
            blob = torch.load(p, map_location="cpu", weights_only=True)
            return int(blob["position"]), blob["state"]
        except Exception:  # a corrupt resume file only costs recomputation
            return None

    def drop_state(self, config_hash: str, seed: int) -> None:
        p = self._state_path(config_hash, seed)
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
