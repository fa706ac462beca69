"""SQLite state store: the embedded default, one file, every write in a transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bursting.cycle import CycleRecord
from bursting.model import Action, ActionKind, Instance, InstanceState, ReasonCode
from bursting.policy.backoff import Backoff

SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    id TEXT PRIMARY KEY, cloud TEXT NOT NULL, flavor TEXT NOT NULL, cpus INTEGER NOT NULL,
    memory_mb INTEGER NOT NULL, price_per_hour REAL NOT NULL, state TEXT NOT NULL,
    state_since REAL NOT NULL, created_at REAL NOT NULL, worker_missing INTEGER NOT NULL,
    idle_since REAL, reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    instance_id TEXT NOT NULL, at REAL NOT NULL, from_state TEXT NOT NULL,
    to_state TEXT NOT NULL, reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions (
    at REAL NOT NULL, kind TEXT NOT NULL, cloud TEXT NOT NULL, instance_id TEXT NOT NULL,
    flavor TEXT NOT NULL, reason TEXT NOT NULL, code TEXT NOT NULL DEFAULT 'demand'
);
CREATE TABLE IF NOT EXISTS backoff (
    cloud TEXT NOT NULL, flavor TEXT NOT NULL, failures INTEGER NOT NULL, until REAL NOT NULL,
    PRIMARY KEY (cloud, flavor)
);
CREATE INDEX IF NOT EXISTS history_by_instance ON history (instance_id);
CREATE TABLE IF NOT EXISTS cycles (id INTEGER PRIMARY KEY, at REAL NOT NULL, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS spend (at REAL NOT NULL, cloud TEXT NOT NULL, amount REAL NOT NULL);
CREATE INDEX IF NOT EXISTS spend_by_time ON spend (at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value REAL NOT NULL);
"""
COLUMNS = (
    "id, cloud, flavor, cpus, memory_mb, price_per_hour, state, state_since, created_at, "
    "worker_missing, idle_since, reason"
)


CYCLES_KEPT = 1000


def open_store(url: str) -> SQLiteStore:
    """`sqlite:///path` (a ~ is expanded) or `sqlite://` for an in-memory store."""
    if not url.startswith("sqlite://"):
        raise ValueError(f"store.url: only sqlite:/// URLs are supported here, got {url!r}")
    path = url.removeprefix("sqlite://").removeprefix("/")
    return SQLiteStore(Path(path).expanduser() if path else None)


def _row(instance: Instance) -> tuple[object, ...]:
    return (
        instance.id,
        instance.cloud,
        instance.flavor,
        instance.cpus,
        instance.memory_mb,
        instance.price_per_hour,
        instance.state.value,
        instance.state_since,
        instance.created_at,
        instance.worker_missing,
        instance.idle_since,
        instance.reason,
    )


def _instance(row: Sequence[Any]) -> Instance:
    return Instance(
        id=str(row[0]),
        cloud=str(row[1]),
        flavor=str(row[2]),
        cpus=int(row[3]),
        memory_mb=int(row[4]),
        price_per_hour=float(row[5]),
        state=InstanceState(row[6]),
        state_since=float(row[7]),
        created_at=float(row[8]),
        worker_missing=int(row[9]),
        idle_since=None if row[10] is None else float(row[10]),
        reason=str(row[11]),
    )


class SQLiteStore:
    def __init__(self, path: Path | None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(
            str(path) if path else ":memory:",
            timeout=30,
            isolation_level=None,
            check_same_thread=False,
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(decisions)")}
        if "code" not in columns:  # a store written before reason codes existed
            self._db.execute("ALTER TABLE decisions ADD COLUMN code TEXT NOT NULL DEFAULT 'demand'")

    def close(self) -> None:
        self._db.close()

    def instances(self, include_gone: bool = False) -> list[Instance]:
        where = "" if include_gone else " WHERE state != 'gone'"
        rows = self._db.execute(f"SELECT {COLUMNS} FROM instances{where} ORDER BY created_at, id")
        return [_instance(row) for row in rows]

    def save(self, instances: Iterable[Instance], now: float) -> None:
        with self._transaction():
            for instance in instances:
                old = self._db.execute(
                    "SELECT state FROM instances WHERE id = ?", (instance.id,)
                ).fetchone()
                before = old[0] if old else "new"
                if before != instance.state.value:
                    self._db.execute(
                        "INSERT INTO history VALUES (?, ?, ?, ?, ?)",
                        (instance.id, now, before, instance.state.value, instance.reason),
                    )
                self._db.execute(
                    f"INSERT OR REPLACE INTO instances ({COLUMNS}) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    _row(instance),
                )

    def record(self, actions: Sequence[Action], now: float) -> None:
        with self._transaction():
            self._db.executemany(
                "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (now, a.kind.value, a.cloud, a.instance_id, a.flavor, a.reason, a.code.value)
                    for a in actions
                ],
            )

    def decisions(self, limit: int = 20) -> list[tuple[float, Action]]:
        rows = self._db.execute(
            "SELECT at, kind, cloud, instance_id, flavor, reason, code FROM decisions "
            "ORDER BY rowid DESC LIMIT ?",
            (limit,),
        )
        return [
            (
                float(at),
                Action(ActionKind(kind), cloud, instance_id, flavor, reason, code=ReasonCode(code)),
            )
            for at, kind, cloud, instance_id, flavor, reason, code in rows
        ]

    def backoffs(self) -> dict[tuple[str, str], Backoff]:
        rows = self._db.execute("SELECT cloud, flavor, failures, until FROM backoff")
        return {(cloud, flavor): Backoff(int(n), float(until)) for cloud, flavor, n, until in rows}

    def set_backoff(self, cloud: str, flavor: str, backoff: Backoff | None) -> None:
        with self._transaction():
            if backoff is None:
                self._db.execute(
                    "DELETE FROM backoff WHERE cloud = ? AND flavor = ?", (cloud, flavor)
                )
            else:
                self._db.execute(
                    "INSERT OR REPLACE INTO backoff VALUES (?, ?, ?, ?)",
                    (cloud, flavor, backoff.failures, backoff.until),
                )

    def history(self, instance_id: str) -> list[tuple[float, str, str, str]]:
        rows = self._db.execute(
            "SELECT at, from_state, to_state, reason FROM history WHERE instance_id = ? "
            "ORDER BY rowid",
            (instance_id,),
        )
        return [(float(at), str(a), str(b), str(r)) for at, a, b, r in rows]

    # ----- cycle records -----
    def save_cycle(self, record: CycleRecord, keep: int = CYCLES_KEPT) -> None:
        with self._transaction():
            self._db.execute(
                "INSERT INTO cycles (at, record) VALUES (?, ?)",
                (record.started_at, record.to_json()),
            )
            self._db.execute(
                "DELETE FROM cycles WHERE id <= (SELECT MAX(id) FROM cycles) - ?", (keep,)
            )

    def cycles(self, limit: int = 1) -> list[CycleRecord]:
        """The newest cycle records first."""
        rows = self._db.execute("SELECT record FROM cycles ORDER BY id DESC LIMIT ?", (limit,))
        return [CycleRecord.from_json(str(text)) for (text,) in rows]

    # ----- spend -----
    def accrue(self, amounts: Mapping[str, float], now: float) -> None:
        """Add what each cloud's instances cost since the last accrual, and remember `now`."""
        with self._transaction():
            self._db.executemany(
                "INSERT INTO spend VALUES (?, ?, ?)",
                [(now, cloud, amount) for cloud, amount in amounts.items() if amount > 0],
            )
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('spend_accrued_at', ?)", (now,))

    def accrued_at(self) -> float | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'spend_accrued_at'").fetchone()
        return None if row is None else float(row[0])

    def spent(self, since: float | None = None) -> dict[str, float]:
        """Accrued spend per cloud, in all or since `since`."""
        rows = self._db.execute(
            "SELECT cloud, SUM(amount) FROM spend WHERE at > ? GROUP BY cloud",
            (-1.0 if since is None else since,),
        )
        return {str(cloud): float(total) for cloud, total in rows}

    # ----- health -----
    def write_problem(self) -> str | None:
        """Take and release the write lock through a connection of its own (so any thread may
        ask): None if a write would go through, else why not."""
        if self.path is None:
            return None
        try:
            probe = sqlite3.connect(f"file:{self.path}?mode=rw", uri=True, timeout=2)
        except sqlite3.Error as exc:
            return f"{self.path}: {exc}"
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
        except sqlite3.Error as exc:
            return f"{self.path}: {exc}"
        finally:
            probe.close()
        return None

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
