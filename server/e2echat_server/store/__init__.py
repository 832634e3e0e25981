"""Where the relay keeps what must outlive a connection: see base.Store for the contract."""

from e2echat_server.store.base import (
    Envelope,
    LogMovedError,
    MemberRecord,
    Retraction,
    RoomDeletionRecord,
    RoomExistsError,
    RoomRecord,
    Snapshot,
    Store,
    UserRecord,
)
from e2echat_server.store.memory import MemoryStore
from e2echat_server.store.redis import RedisStore
from e2echat_server.store.sqlite import SqliteStore

__all__ = [
    "Envelope",
    "LogMovedError",
    "MemberRecord",
    "MemoryStore",
    "RedisStore",
    "Retraction",
    "RoomDeletionRecord",
    "RoomExistsError",
    "RoomRecord",
    "Snapshot",
    "SqliteStore",
    "Store",
    "UserRecord",
]
