"""protocol.md section 2, "Absent versus null": an optional field whose absence means
"none" takes `null` too; one with a default value refuses `null` (bad_frame)."""

import msgspec
import msgspec.inspect as mi
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from e2echat.protocol import ClientFrame, ErrorCode, ProtocolError, decode_client_frame
from tests.protocol.strategies import frames


def _optional_fields() -> list[tuple[type, mi.Field]]:
    union = mi.type_info(ClientFrame)
    assert isinstance(union, mi.UnionType)
    found = []
    for struct in union.types:
        assert isinstance(struct, mi.StructType)
        found += [(struct.cls, field) for field in struct.fields if not field.required]
    return found


OPTIONAL = _optional_fields()


def test_the_fields_with_a_default_value_are_the_ones_the_spec_lists() -> None:
    defaulted = {
        (cls.__struct_config__.tag, field.encode_name)
        for cls, field in OPTIONAL
        if field.default is not None
    }
    assert defaulted == {
        ("create_room", "description"),
        ("create_room", "listed"),
        ("log", "after"),
    }


@pytest.mark.parametrize(
    ("cls", "field"),
    OPTIONAL,
    ids=[f"{c.__struct_config__.tag}.{f.encode_name}" for c, f in OPTIONAL],
)
@settings(max_examples=5, deadline=None)
@given(data=st.data())
def test_null_means_absent_only_where_absent_means_none(
    cls: type, field: mi.Field, data: st.DataObject
) -> None:
    frame = data.draw(frames(cls))
    fields = msgspec.json.decode(msgspec.json.encode(frame))
    fields[field.encode_name] = None
    encoded = msgspec.json.encode(fields)
    if field.default is None:
        assert getattr(decode_client_frame(encoded), field.name) is None
    else:
        with pytest.raises(ProtocolError) as refused:
            decode_client_frame(encoded)
        assert refused.value.code is ErrorCode.BAD_FRAME
