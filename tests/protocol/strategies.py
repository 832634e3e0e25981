"""Hypothesis strategies for valid frames, derived from the msgspec types themselves.

Deriving them from ``msgspec.inspect`` keeps the generators in step with every bound the
frames declare, so a new field or a changed limit is exercised without editing this file.
"""

from typing import Any

import msgspec
import msgspec.inspect as mi
from hypothesis import strategies as st

from e2echat.protocol import ClientFrame, RelayFrame
from e2echat.protocol.statements import pack_name_statement

# Lower-case letters satisfy every name rule (user, room, description, status).
_SAFE_TEXT = "abcdefghijklmnopqrstuvwxyz0123456789"


def _text(info: mi.StrType) -> st.SearchStrategy[str]:
    low = max(info.min_length or 1, 1)
    high = info.max_length if info.max_length is not None else 40
    return st.text(_SAFE_TEXT, min_size=low, max_size=min(high, 40)).map(
        lambda s: s if s[0].isalnum() else "a" + s[1:]
    )


def _value(info: mi.Type) -> st.SearchStrategy[Any]:
    if isinstance(info, mi.StructType):
        return _struct(info)
    if isinstance(info, mi.UnionType):
        return st.one_of([_value(t) for t in info.types])
    if isinstance(info, mi.NoneType):
        return st.none()
    if isinstance(info, mi.BoolType):
        return st.booleans()
    if isinstance(info, mi.IntType):
        return st.integers(min_value=info.ge, max_value=info.le)
    if isinstance(info, mi.FloatType):
        low = info.gt if info.gt is not None else info.ge
        return st.floats(
            min_value=low,
            max_value=info.le if info.le is not None else 1e6,
            exclude_min=info.gt is not None,
            allow_nan=False,
            allow_infinity=False,
        )
    if isinstance(info, mi.BytesType):
        low = info.min_length or 0
        high = info.max_length if info.max_length is not None else 64
        return st.binary(min_size=low, max_size=min(high, max(low, 300)))
    if isinstance(info, mi.StrType):
        return _text(info)
    if isinstance(info, mi.LiteralType):
        return st.sampled_from(info.values)
    if isinstance(info, mi.EnumType):
        return st.sampled_from(list(info.cls))
    if isinstance(info, mi.ListType):
        return st.lists(_value(info.item_type), max_size=3)
    raise NotImplementedError(f"no strategy for {info!r}")


def _struct(info: mi.StructType) -> st.SearchStrategy[Any]:
    fields = {
        field.name: _value(field.type) if field.required else st.one_of(_value(field.type))
        for field in info.fields
    }
    return st.fixed_dictionaries(fields).map(lambda kw: info.cls(**_consistent(kw)))


def _consistent(fields: dict[str, Any]) -> dict[str, Any]:
    """A name statement must name the frame's ``name`` (its signature is not checked)."""
    if fields.get("name_statement") is not None:
        fields["name_statement"] = pack_name_statement(1, bytes(64), fields["name"])
    return fields


def frames(union: Any) -> st.SearchStrategy[msgspec.Struct]:
    """Any valid frame of ``union`` (ClientFrame or RelayFrame)."""
    return _value(mi.type_info(union))


client_frames = frames(ClientFrame)
relay_frames = frames(RelayFrame)
