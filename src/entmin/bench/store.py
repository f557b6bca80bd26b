"""SQLite results store keyed by (configuration hash, seed, domain).

Each finished cell is written in one transaction (``INSERT OR IGNORE`` on the primary key), so a rerun
skips finished cells and a run killed at any instant leaves no partial or duplicate row. Continual runs
also save the adapter state after every finished domain (``resume/``), so a killed stream restarts where
it stopped instead of recomputing its prefix; the state is saved atomically and loaded with
``weights_only=True``.
"""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import torch

from ..utils import atomic_torch_save

__all__ = ["ResultStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS configs (config_hash TEXT PRIMARY KEY, config TEXT NOT NULL, created REAL);
CREATE TABLE IF NOT EXISTS cells (
    config_hash TEXT NOT NULL, seed INTEGER NOT NULL, domain TEXT NOT NULL, position INTEGER NOT NULL,
    n INTEGER NOT NULL, correct INTEGER NOT NULL, accuracy REAL NOT NULL, metrics TEXT NOT NULL,
    wall_seconds REAL NOT NULL, finished REAL NOT NULL,
    PRIMARY KEY (config_hash, seed, domain));
CREATE TABLE IF NOT EXISTS records (kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, finished REAL,
    PRIMARY KEY (kind, key));
"""


class ResultStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(self.path, timeout=60)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise ValueError(f"results store {self.path} is not a valid SQLite database: {e}") from None
        self.resume_dir = self.path.parent / (self.path.stem + "-resume")

    def close(self) -> None:
        self.conn.close()

    # ----- configs & cells ---------------------------------------------------------------------------------
    def register(self, config_hash: str, config: dict[str, Any]) -> None:
        with self.conn:
            self.conn.execute("INSERT OR IGNORE INTO configs VALUES (?, ?, ?)",
                              (config_hash, json.dumps(config, sort_keys=True), time.time()))

    def done(self, config_hash: str, seed: int) -> set[str]:
        rows = self.conn.execute("SELECT domain FROM cells WHERE config_hash=? AND seed=?", (config_hash, seed))
        return {r[0] for r in rows}

    def write_cell(self, config_hash: str, seed: int, domain: str, position: int, n: int, correct: int,
                   metrics: dict[str, Any], wall_seconds: float) -> None:
        with self.conn:
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
        for r in self.conn.execute(q + " ORDER BY c.config_hash, c.seed, c.position", args):
            out.append({"config_hash": r[0], "seed": r[1], "domain": r[2], "position": r[3], "n": r[4],
                        "correct": r[5], "accuracy": r[6], "metrics": json.loads(r[7]), "wall_seconds": r[8],
                        "config": json.loads(r[9])})
        return out

    # ----- generic records (accuracy-estimation splits, ...) ----------------------------------------------
    def put_record(self, kind: str, key: str, value: dict[str, Any], *, replace: bool = False) -> None:
        """Write a record once (a second write of the same key is ignored), or overwrite it with ``replace``."""
        verb = "REPLACE" if replace else "IGNORE"
        with self.conn:
            self.conn.execute(f"INSERT OR {verb} INTO records VALUES (?, ?, ?, ?)",
                              (kind, key, json.dumps(value), time.time()))

    def get_records(self, kind: str) -> dict[str, dict[str, Any]]:
        return {k: json.loads(v) for k, v in self.conn.execute("SELECT key, value FROM records WHERE kind=?", (kind,))}

    # ----- resume states for continual streams -------------------------------------------------------------
    def _state_path(self, config_hash: str, seed: int) -> Path:
        return self.resume_dir / f"{config_hash}-seed{seed}.pt"

    def save_state(self, config_hash: str, seed: int, position: int, state: dict[str, Any]) -> None:
        atomic_torch_save({"position": position, "state": state}, self._state_path(config_hash, seed))

    def load_state(self, config_hash: str, seed: int) -> tuple[int, dict[str, Any]] | None:
        p = self._state_path(config_hash, seed)
        if not p.is_file():
            return None
        try:
            blob = torch.load(p, map_location="cpu", weights_only=True)
        except Exception:  # a corrupt resume file only costs recomputation
            return None
        return int(blob["position"]), blob["state"]

    def drop_state(self, config_hash: str, seed: int) -> None:
        p = self._state_path(config_hash, seed)
        if p.exists():
            p.unlink()
