"""One spelling per value (``app/inputs.py``) and 400s in words (``app/errors.py``), without a database.

A small Litestar app with the application's request class, guard and exception handlers
exercises them directly; the API's own routes are checked over HTTP in tests/security/ and
tests/integration/test_errors.py. The last tests keep every route of the app on these rails.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import msgspec
import msgspec.inspect
import pytest
from litestar import Litestar, get, post
from litestar.constants import RESERVED_KWARGS
from litestar.exceptions import ValidationException
from litestar.params import CookieParameter, FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter
from litestar.testing import TestClient

from app.errors import validation_error
from app.inputs import ID_WORDS, Id, StrictRequest, plain_values
from app.main import create_app
from app.settings import Settings
from tests.factories import other_spellings

SAMPLE = uuid.UUID("123e4567-e89b-12d3-a456-426614174000")


def test_an_id_is_the_canonical_spelling_in_either_case() -> None:
    assert Id(str(SAMPLE)) == SAMPLE
    assert Id(str(SAMPLE).upper()) == SAMPLE
    assert str(Id(str(SAMPLE).upper())) == str(SAMPLE)


@pytest.mark.parametrize(
    "text",
    [
        *other_spellings(SAMPLE).values(),
        f" {SAMPLE}",
        f"{SAMPLE}\n",
        str(SAMPLE).replace("-", "_"),
        str(SAMPLE)[:-1],
        f"{SAMPLE}0",
        str(SAMPLE).replace("a", "g"),
        "",
    ],
)
def test_every_other_spelling_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(ID_WORDS)):
        Id(text)


@pytest.mark.parametrize("value", [12345, None, b"123e4567-e89b-12d3-a456-426614174000", SAMPLE])
def test_an_id_is_made_from_text_only(value: Any) -> None:
    with pytest.raises(ValueError, match=re.escape(ID_WORDS)):
        Id(value)


class Item(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    ref: Id | None = None
    count: Annotated[int, msgspec.Meta(ge=1, le=5_000)] = 1
    tags: Annotated[list[str], msgspec.Meta(min_length=0, max_length=2)] = []
    label: Annotated[str, msgspec.Meta(min_length=2, max_length=3)] = "ab"


@post("/probe", guards=[plain_values], sync_to_thread=False)
def probe(
    data: JSONBody[dict[str, Any]],
    n: Annotated[int, QueryParameter(ge=1, le=9)] = 1,
    m: Annotated[int | None, QueryParameter(ge=0, name="em")] = None,
    version: Annotated[int | None, HeaderParameter(name="x-version")] = None,
    size: Annotated[int | None, CookieParameter(name="size")] = None,
    pages: Annotated[list[int] | None, QueryParameter()] = None,
    flag: FromQuery[bool] = False,
    kind: FromQuery[Literal["a", "b"]] = "a",
    choice: FromQuery[Literal["x", "y"] | None] = None,
) -> dict[str, Any]:
    return {"n": n, "m": m, "pages": pages, "flag": flag, "kind": kind, "version": version, "size": size}


class Items(msgspec.Struct, forbid_unknown_fields=True):
    items: list[Item]


@get("/pages/{page:str}/{at:int}", guards=[plain_values], sync_to_thread=False)
def pages(page: FromPath[int], at: FromPath[int], need: FromQuery[int]) -> list[int]:
    return [page, at, need]


@get("/custom", sync_to_thread=False)
def custom() -> None:
    raise ValidationException("words of its own")


@post("/items", sync_to_thread=False)
def items(data: JSONBody[Items]) -> int:
    return len(data.items)


@pytest.fixture(scope="module")
def http() -> Iterator[TestClient[Litestar]]:
    app = Litestar(
        [probe, items, pages, custom],
        request_class=StrictRequest,
        exception_handlers={ValidationException: validation_error},
    )
    with TestClient(app) as client:
        yield client


def send(
    http: TestClient[Litestar],
    params: dict[str, Any] | None = None,
    content: bytes = b"{}",
    headers: dict[str, Any] | None = None,
) -> Any:
    response = http.post(
        "/probe", params=params, content=content, headers={"Content-Type": "application/json", **(headers or {})}
    )
    return response.status_code, response.json()


def test_plain_values_pass(http: TestClient[Litestar]) -> None:
    status, body = send(
        http,
        {"n": "9", "em": "0", "pages": ["1", "20"], "flag": "true"},
        headers={"x-version": "12", "cookie": "size=30"},
    )
    assert status == 201, body
    assert body == {"n": 9, "m": 0, "pages": [1, 20], "flag": True, "kind": "a", "version": 12, "size": 30}


@pytest.mark.parametrize("text", ["1.0", "1e1", "\uff11"])
def test_headers_and_cookies_are_integers_too(http: TestClient[Litestar], text: str) -> None:
    status, body = send(http, headers={"x-version": text.encode()})
    assert (status, body["detail"]) == (400, "x-version must be a whole number"), body
    status, body = send(http, headers={"cookie": f"size={text}".encode()})
    assert (status, body["extra"]) == (400, [{"key": "size", "message": "must be a whole number", "source": "cookie"}])


@pytest.mark.parametrize("text", ["1.0", "1e0", "1E0", "+1", " 1", "01", "-0", "\uff11", "\u0661", "1_0", ""])
@pytest.mark.parametrize(
    ("name", "key", "words"),
    [
        ("n", "n", "must be a whole number from 1 to 9"),
        ("em", "em", "must be a whole number of at least 0"),
        ("pages", "pages", "must be a whole number"),
    ],
)
def test_other_spellings_of_an_integer_are_400(
    http: TestClient[Litestar], text: str, name: str, key: str, words: str
) -> None:
    params: dict[str, Any] = {name: ["2", text] if name == "pages" else text}
    status, body = send(http, params)
    assert status == 400, body
    assert body == {
        "status_code": 400,
        "detail": f"{key} {words}",
        "extra": [{"key": key, "message": words, "source": "query"}],
    }


def test_messages_in_words(http: TestClient[Litestar]) -> None:
    assert send(http, {"kind": "c"})[1]["detail"] == "kind must be one of a, b"
    assert send(http, {"n": "10"})[1]["detail"] == "n must be a whole number from 1 to 9"
    assert send(http, {"flag": "maybe"})[1]["detail"] == "flag must be true or false"
    assert send(http, {"choice": "z"})[1]["detail"] == "choice must be one of x, y"
    assert (
        send(http, {"n": "0", "kind": "c"})[1]["detail"]
        == "n must be a whole number from 1 to 9; kind must be one of a, b"
    )


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b'{"a": "\xe9"}', "the request body is not valid UTF-8"),
        (b"[" * 20_000 + b"]" * 20_000, "the request body is nested too deeply"),
        (b"{", "the request body is not valid JSON (Input data was truncated)"),
        (b"{]", "the request body is not valid JSON (JSON is malformed: object keys must be strings (byte 1))"),
        (b'{"a": {"b": ["x", "y\\u0000"]}}', "a.b[1] must not contain the NUL character (\\u0000)"),
        (b'{"a\\u0000b": 1}', "a\\u0000b must not contain the NUL character (\\u0000)"),
        (b'"\\u0000"', "the request body must not contain the NUL character (\\u0000)"),
        (b"[]", "the request body must be a JSON object"),
    ],
)
def test_bodies(http: TestClient[Litestar], content: bytes, detail: str) -> None:
    status, body = send(http, content=content)
    assert status == 400, body
    assert body["detail"] == detail


def test_a_body_that_nests_deeply_but_within_the_limit_is_read(http: TestClient[Litestar]) -> None:
    status, body = send(http, content=b'{"a": ' + b"[" * 200 + b'"\\u0000"' + b"]" * 200 + b"}")
    assert status == 400
    assert body["detail"] == "a" + "[0]" * 200 + " must not contain the NUL character (\\u0000)"


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b'{"items": [{"name": "x", "ref": "nope"}]}', f"items[0].ref {ID_WORDS}"),
        (b'{"items": [{"name": 1}]}', "items[0].name must be text"),
        (b'{"items": {}}', "items must be a list"),
        (b'{"items": [{"name": "x", "count": 0}]}', "items[0].count must be at least 1"),
        (b'{"items": [{"name": "x", "count": 5001}]}', "items[0].count must be at most 5,000"),
        (b'{"items": [{"name": "x", "tags": ["a", "b", "c"]}]}', "items[0].tags must hold at most 2 items"),
        (b'{"items": [{"name": "x", "label": "a"}]}', "items[0].label must be at least 2 characters"),
        (b'{"items": [{"name": "x", "label": "abcd"}]}', "items[0].label must be at most 3 characters"),
        (b'{"items": [{"ref": null}]}', "name is required"),
        (b'{"items": [], "other": 1}', "other is not a field of this request"),
    ],
)
def test_errors_deeper_in_a_body_name_their_path(http: TestClient[Litestar], content: bytes, detail: str) -> None:
    response = http.post("/items", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["detail"] == detail


def test_path_integers_required_parameters_and_plain_errors(http: TestClient[Litestar]) -> None:
    assert http.get("/pages/3/4", params={"need": "5"}).json() == [3, 4, 5]
    response = http.get("/pages/3.0/4", params={"need": "5"})
    assert (response.status_code, response.json()["extra"]) == (
        400,
        [{"key": "page", "message": "must be a whole number", "source": "path"}],
    )
    response = http.get("/pages/3/4")
    assert (response.status_code, response.json()["extra"]) == (
        400,
        [{"key": "need", "message": "is required", "source": "query"}],
    )
    assert http.get("/custom").json() == {"status_code": 400, "detail": "words of its own"}


# --- every route of the application stays on these rails ----------------------------------------


def _has_plain_uuid(node: Any) -> bool:
    """True when a msgspec type description holds a ``uuid.UUID`` that is not ``Id`` (anywhere inside)."""
    if isinstance(node, msgspec.inspect.UUIDType):
        return True
    if isinstance(node, tuple):
        return any(_has_plain_uuid(item) for item in node)
    if isinstance(node, msgspec.Struct):
        return any(_has_plain_uuid(value) for value in msgspec.structs.astuple(node))
    return False


def _api_handlers() -> Iterator[tuple[Any, Any]]:
    for route in create_app(Settings(app_env="development")).routes:
        for handler in getattr(route, "route_handlers", ()):
            yield route, handler


def test_every_id_a_client_sends_is_an_id() -> None:
    """A plain ``UUID`` in a route's parameters or body would accept Unicode digits and other spellings again."""
    checked = 0
    for route, handler in _api_handlers():
        dependencies = handler.resolve_dependencies()
        for name, field in handler.parsed_fn_signature.parameters.items():
            if name in dependencies or (name in RESERVED_KWARGS and name != "data"):
                continue
            checked += 1
            assert not _has_plain_uuid(msgspec.inspect.type_info(field.annotation)), (route.path, name)
    assert checked >= 20


def test_every_api_path_parameter_reaches_the_app_as_text() -> None:
    """Litestar's ``:uuid``/``:int`` converters use Python's lax parsing (and turn a bad value into a 404)."""
    paths = {route.path: route for route, _ in _api_handlers() if route.path.startswith("/api/")}
    assert len(paths) >= 4
    for path, route in paths.items():
        assert {p.type for p in route.path_parameters.values()} == {str}, path
