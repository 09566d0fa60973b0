"""Matrix user ids and server names (``core/ids.py``)."""

from __future__ import annotations

import pytest

from clearpost.core.errors import InvalidInput
from clearpost.core.ids import is_server_name, localpart, parse_user_id, room_id_for

S = "clearpost.localhost"


@pytest.mark.parametrize(
    "name",
    ["clearpost.localhost", "chat.example.org:8448", "1.2.3.4", "[::1]", "[1234:5678::abcd]:443",
     "localhost"],
)  # fmt: skip
def test_server_names(name: str) -> None:
    assert is_server_name(name)


@pytest.mark.parametrize(
    "name", ["", "a b", "host/path", "[::1", "[nope]", "host:", "host:123456", "x" * 201, "-a.b"]
)
def test_not_server_names(name: str) -> None:
    assert not is_server_name(name)


def test_user_ids_of_this_server() -> None:
    assert parse_user_id(f"@alice:{S}", S) == f"@alice:{S}"
    assert localpart(f"@alice:{S}") == "alice"
    assert room_id_for("c_abc", S) == f"!c_abc:{S}"


@pytest.mark.parametrize(
    "value",
    ["alice", "@alice", f"alice:{S}", f"@Alice:{S}", f"@al:{S}", f"@alice:{S}\n", "@:" + S, 5,
     None, "@alice:bad host"],
)  # fmt: skip
def test_not_user_ids(value: object) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_user_id(value, S)
    assert refused.value.code == "invalid_user_id"


@pytest.mark.parametrize("value", ["@bob:matrix.org", "@bob:[::1]:8448", f"@bob:{S}:8448"])
def test_other_servers_users_are_foreign(value: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_user_id(value, S)
    assert refused.value.code == "foreign_user_id"
    assert S in refused.value.message
