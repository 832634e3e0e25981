"""The client's persistent state: one SQLite file per identity, secrets sealed at rest."""

from e2echat.store.atrest import Sealer, StoreKeyError
from e2echat.store.schema import SCHEMA_VERSION, SchemaError, migrate
from e2echat.store.store import (
    MEMORY,
    HistoryItem,
    OutboxItem,
    QueuedDirect,
    ReadState,
    RoomRecord,
    Store,
    StoreLockedError,
)

__all__ = [
    "MEMORY",
    "SCHEMA_VERSION",
    "HistoryItem",
    "OutboxItem",
    "QueuedDirect",
    "ReadState",
    "RoomRecord",
    "SchemaError",
    "Sealer",
    "Store",
    "StoreKeyError",
    "StoreLockedError",
    "migrate",
]
