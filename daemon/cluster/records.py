"""The coordinator's durable cluster records in `state.db`: join tokens and machines.

Tables `cluster_tokens` and `cluster_machines` (daemon/store.py's schema). A token is kept
by its admission *public* key only: the secret half lives in the printed token and nowhere
on the coordinator, so a copy of `state.db` admits nobody.
"""

from __future__ import annotations

import sqlite3

import attrs

from daemon.model.errors import StateWriteFailed
from daemon.store import Store


@attrs.frozen
class MachineRecord:
    name: str
    public_key: str
    address: str | None
    admitted: float
    state: str


def _write(store: Store, sql: str, params: tuple[object, ...]) -> int:
    try:
        return store.db.execute(sql, params).rowcount
    except sqlite3.Error as exc:
        raise StateWriteFailed(f"cluster records: {exc}") from exc


def add_token(store: Store, token_id: str, admission_key: str, now: float, expires: float) -> None:
    _write(
        store,
        "INSERT INTO cluster_tokens (id, admission_key, created, expires) VALUES (?, ?, ?, ?)",
        (token_id, admission_key, now, expires),
    )


def revoke_token(store: Store, ref: str, now: float) -> str | None:
    """Revoke the live token whose id (or admission key) is `ref`; its id, or None."""
    row = store.db.execute(
        "SELECT id FROM cluster_tokens WHERE (id = ? OR admission_key = ?) AND revoked IS NULL",
        (ref, ref),
    ).fetchone()
    if row is None:
        return None
    _write(store, "UPDATE cluster_tokens SET revoked = ? WHERE id = ?", (now, row["id"]))
    return str(row["id"])


def live_admission_keys(store: Store, now: float) -> dict[str, str]:
    """Admission public key -> token id, of every token neither revoked nor expired."""
    rows = store.db.execute(
        "SELECT id, admission_key FROM cluster_tokens WHERE revoked IS NULL AND expires > ?",
        (now,),
    )
    return {str(row["admission_key"]): str(row["id"]) for row in rows}


def machines(store: Store) -> list[MachineRecord]:
    rows = store.db.execute(
        "SELECT name, public_key, address, admitted, state FROM cluster_machines ORDER BY name"
    )
    return [MachineRecord(**dict(row)) for row in rows]


def admit(store: Store, record: MachineRecord) -> None:
    _write(
        store,
        "INSERT OR REPLACE INTO cluster_machines (name, public_key, address, admitted, state)"
        " VALUES (?, ?, ?, ?, ?)",
        (record.name, record.public_key, record.address, record.admitted, record.state),
    )


def set_state(store: Store, name: str, state: str, address: str | None) -> None:
    _write(
        store,
        "UPDATE cluster_machines SET state = ?, address = COALESCE(?, address) WHERE name = ?",
        (state, address, name),
    )


def remove(store: Store, name: str) -> bool:
    return _write(store, "DELETE FROM cluster_machines WHERE name = ?", (name,)) > 0
