"""One spelling for each value a client sends: ids, integers and JSON bodies.

Python's ``uuid.UUID`` accepts any Unicode decimal digit, braces, ``urn:uuid:`` and no
hyphens; msgspec reads ``10.0`` and ``1e1`` as the integer 10. A proxy, cache or log keyed on
the raw request would then see several strings for one tenant, session or page. Here:

- an id is a UUID written 8-4-4-4-12 in ASCII hex digits, either case (``Id``);
- an integer parameter is ASCII digits with no sign, no leading zero, no point, no exponent;
- a boolean is ``true`` or ``false`` (a query parameter in those letters, a body field a JSON
  boolean), not ``1``, ``-0``, ``"yes"`` or ``"true"`` in quotes, which msgspec's lax decoding takes;
- a JSON body is UTF-8, not nested past Python's recursion limit, and no string in it holds NUL
  (PostgreSQL text cannot store one).

Anything else is a 400 naming the field (or the body), before a handler runs.
"""

from __future__ import annotations

import functools
import re
from typing import Any, get_args
from uuid import UUID

import msgspec
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.enums import ParamType
from litestar.exceptions import SerializationException, ValidationException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import ParameterKwarg

UUID_PATTERN = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
PLAIN_INTEGER = re.compile(r"0|[1-9][0-9]*")
PLAIN_BOOLEAN = re.compile(r"true|false")
BOOLEAN_WORDS = "must be true or false"
# The largest offset: the largest integer a JSON number (a double) holds exactly, so the OpenAPI
# document's maximum is the server's (2**63 - 1 reads back as 2**63 in every JSON client).
OFFSET_MAX = 2**53 - 1
ID_WORDS = "must be a UUID such as 123e4567-e89b-12d3-a456-426614174000"
NUL_WORDS = "must not contain the NUL character (\\u0000)"
# Patterns of text fields (they document the rule in the OpenAPI document too), with the words a
# client is shown when a value does not match. NUL is refused for the whole body before any field
# is read (``StrictRequest``), so a blank text is the only thing NOT_BLANK still catches.
WITHOUT_NUL = r"^[^\x00]*$"
NOT_BLANK = r"^\s*[^\s\x00][^\x00]*$"
PATTERN_WORDS = {WITHOUT_NUL: NUL_WORDS, NOT_BLANK: "must not be blank"}


class Id(UUID):
    """A UUID a client sent, in its canonical spelling; anything else raises ``ValueError``.

    Annotate every id that comes from a request (path, query, body) with ``Id``: Litestar
    builds it from the raw string, so a malformed one is a 400 naming the field.
    """

    __slots__ = ()

    def __init__(self, text: str) -> None:
        if not isinstance(text, str) or not UUID_PATTERN.fullmatch(text):
            raise ValueError(ID_WORDS)
        super().__init__(text)


def invalid(key: str, words: str, source: str) -> ValidationException:
    """A 400 for one field, shaped like Litestar's own (``extra``: key, message, source)."""
    return ValidationException(detail=f"{key} {words}", extra=[{"key": key, "message": words, "source": source}])


def body_error(words: str) -> ValidationException:
    """A 400 about the request body as a whole."""
    return ValidationException(detail=f"the request body {words}", extra=[{"message": words, "source": "body"}])


def _nul_path(value: Any) -> str | None:
    """Where a string holding NUL is in a decoded JSON value (``title``, ``ids[2]``, or ``""`` for the top)."""
    pending: list[tuple[str, Any]] = [("", value)]  # iterative: a body may nest hundreds of levels
    while pending:
        path, item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return path
        elif isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{path}.{key}" if path else key
                if "\x00" in key:
                    return child_path.replace("\x00", "\\u0000")
                pending.append((child_path, child))
        elif isinstance(item, list):
            pending.extend((f"{path}[{index}]", child) for index, child in enumerate(item))
    return None


class StrictRequest(Request[Any, Any, Any]):
    """The application's request: its JSON body is decoded strictly (see the module docstring).

    Litestar lets undecodable UTF-8 and deep nesting escape its JSON decoding as
    ``UnicodeDecodeError``/``RecursionError`` (500s); here every route's body gets a 400.
    """

    async def json(self) -> Any:
        """The decoded body; 400 naming the body (or the field) when it is not acceptable JSON."""
        try:
            value = await super().json()
        except UnicodeDecodeError as error:
            raise body_error("is not valid UTF-8") from error
        except RecursionError as error:
            raise body_error("is nested too deeply") from error
        except SerializationException as error:
            raise body_error(f"is not valid JSON ({error.detail})") from error
        path = _nul_path(value)
        if path:
            raise invalid(path, NUL_WORDS, "body")
        if path is not None:
            raise body_error(NUL_WORDS)
        for key in _boolean_body_fields(self.route_handler):
            if isinstance(value, dict) and key in value and not isinstance(value[key], bool):
                raise invalid(key, BOOLEAN_WORDS, "body")
        return value


def _is_boolean(annotation: Any) -> bool:
    """True for ``bool``, also inside ``Annotated`` or a union (``bool | UnsetType``)."""
    return annotation is bool or any(_is_boolean(arg) for arg in get_args(annotation))


@functools.cache
def _boolean_body_fields(handler: BaseRouteHandler) -> tuple[str, ...]:
    """The names of the boolean fields of the route's body struct(s), once per route."""
    pending = [field.annotation for name, field in handler.parsed_fn_signature.parameters.items() if name == "data"]
    found: list[str] = []
    while pending:
        annotation = pending.pop()
        if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
            found += [f.encode_name for f in msgspec.structs.fields(annotation) if _is_boolean(f.type)]
        else:
            pending.extend(get_args(annotation))
    return tuple(found)


def is_integer(field: Any) -> bool:
    """True for a parameter declared ``int`` (also optional, or a list of them); ``bool`` is not one."""
    return field.annotation is int or any(is_integer(inner) for inner in field.inner_types)


def is_boolean(field: Any) -> bool:
    """True for a parameter declared ``bool`` (also optional)."""
    return field.annotation is bool or any(is_boolean(inner) for inner in field.inner_types)


def integer_words(field: Any) -> str:
    """How an integer parameter must be written, with its range (``must be a whole number from 1 to 100``)."""
    kwarg = field.kwarg_definition
    low = getattr(kwarg, "ge", None)
    high = getattr(kwarg, "le", None)
    if low is not None and high is not None:
        return f"must be a whole number from {low} to {high}"
    if low is not None:
        return f"must be a whole number of at least {low}"
    return "must be a whole number"


def _raw_values(connection: ASGIConnection[Any, Any, Any, Any], key: str, kind: ParamType) -> list[Any]:
    """The values a client sent for parameter ``key`` (a path parameter arrives already converted if not ``:str``)."""
    if kind is ParamType.PATH or key in connection.path_params:
        return [connection.path_params[key]]
    if kind is ParamType.HEADER:
        return connection.headers.getall(key, [])
    if kind is ParamType.COOKIE:
        return [connection.cookies[key]] if key in connection.cookies else []
    return connection.query_params.getall(key, [])


@functools.cache
def _plain_parameters(handler: BaseRouteHandler) -> tuple[tuple[str, ParamType, re.Pattern[str], str], ...]:
    """The route's integer and boolean parameters once: (name sent by the client, where, its one spelling,
    the words of its 400)."""
    found = []
    for name, field in handler.parsed_fn_signature.parameters.items():
        if is_integer(field) or is_boolean(field):
            kwarg = field.kwarg_definition if isinstance(field.kwarg_definition, ParameterKwarg) else None
            key, kind = (kwarg.name or name, kwarg.param_type) if kwarg else (name, ParamType.QUERY)
            spelling, words = (
                (PLAIN_INTEGER, integer_words(field)) if is_integer(field) else (PLAIN_BOOLEAN, BOOLEAN_WORDS)
            )
            found.append((key, kind, spelling, words))
    return tuple(found)


def plain_values(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Guard: each integer parameter of the route (path, query, header, cookie) is plain ASCII digits (``10``),
    each boolean ``true`` or ``false``."""
    for key, kind, spelling, words in _plain_parameters(handler):
        if any(isinstance(v, str) and not spelling.fullmatch(v) for v in _raw_values(connection, key, kind)):
            raise invalid(key, words, kind.value)
