"""Exception handlers: a 400 says in words which field is wrong; a 500 is logged and never explained.

Litestar's shape stays: ``{status_code, detail, extra?}``. For a 400, ``extra`` lists the
problems as ``{key, message, source}`` and ``detail`` joins them into one sentence a frontend
can show as is (``limit must be a whole number from 1 to 100``), instead of msgspec's
``Expected `int` <= 100`` or a regex.
"""

from __future__ import annotations

import ast
import logging
import re
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import msgspec
from litestar import MediaType, Request, Response
from litestar.datastructures import State
from litestar.exceptions import ValidationException
from litestar.handlers.base import BaseRouteHandler

from app.inputs import PATTERN_WORDS, integer_words, is_integer

log = logging.getLogger("app")

TYPE_WORDS = {
    "int": "a whole number",
    "str": "text",
    "bool": "true or false",
    "object": "a JSON object",
    "array": "a list",
    "null": "null",
}


def _types(expected: str) -> str:
    return " or ".join(TYPE_WORDS.get(name, name) for name in expected.split(" | "))


def _count(number: str, unit: str = "") -> str:
    text = f"{int(number):,}" if number.isdigit() else number
    return f"{text} {unit}".rstrip()


# msgspec's and Litestar's messages, and the words shown instead (a match's groups fill them in).
MESSAGE_WORDS: list[tuple[re.Pattern[str], Any]] = [
    (re.compile(r"Expected `(.+)`, got `.+`"), lambda expected: f"must be {_types(expected)}"),
    (re.compile(r"Expected `\w+` >= (.+)"), lambda n: f"must be at least {_count(n)}"),
    (re.compile(r"Expected `\w+` <= (.+)"), lambda n: f"must be at most {_count(n)}"),
    (re.compile(r"Expected `str` of length >= 1"), lambda: "must not be empty"),
    (re.compile(r"Expected `str` of length >= (\d+)"), lambda n: f"must be at least {_count(n, 'characters')}"),
    (re.compile(r"Expected `str` of length <= (\d+)"), lambda n: f"must be at most {_count(n, 'characters')}"),
    (re.compile(r"Expected `array` of length >= (\d+)"), lambda n: f"must hold at least {_count(n, 'items')}"),
    (re.compile(r"Expected `array` of length <= (\d+)"), lambda n: f"must hold at most {_count(n, 'items')}"),
    (
        re.compile(r"Expected `str` matching regex (.+)"),
        lambda pattern: PATTERN_WORDS.get(ast.literal_eval(pattern), "is not in the expected format"),
    ),
    (re.compile(r"Invalid enum value .+"), lambda: "is not one of the allowed values"),
]
# Messages that name their field themselves (msgspec reports these two on the whole object).
FIELD_MESSAGES = [
    (re.compile(r"Object missing required field `(?P<key>.+)`"), "is required"),
    (re.compile(r"Object contains unknown field `(?P<key>.+)`"), "is not a field of this request"),
    (re.compile(r"Missing required (?P<source>\w+) parameter '(?P<key>.+)' for path .*"), "is required"),
]


def _choices(annotation: Any) -> tuple[Any, ...] | None:
    """The values of a ``Literal`` inside ``annotation`` (through ``Annotated`` and ``| None``)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _choices(get_args(annotation)[0])
    if origin is Literal:
        return get_args(annotation)
    if origin in (Union, types.UnionType):
        return next((found for arg in get_args(annotation) if (found := _choices(arg))), None)
    return None


def _structs(annotation: Any) -> list[type[msgspec.Struct]]:
    """The structs inside a body's annotation (through ``Annotated`` and unions)."""
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        return [annotation]
    return [struct for arg in get_args(annotation) for struct in _structs(arg)]


def _body_field(annotation: Any, key: str) -> Any:
    """The declared type of the top-level field ``key`` of a body, or None."""
    fields = (field for struct in _structs(annotation) for field in msgspec.structs.fields(struct))
    return next((field.type for field in fields if field.encode_name == key), None)


def _words(handler: BaseRouteHandler | None, key: str, source: str | None, message: str) -> str:
    """What the client is told about field ``key``: from its declared type first, else from the message."""
    parameters = handler.parsed_fn_signature.parameters if handler else {}
    if source == "body":
        declared = _body_field(parameters["data"].raw, key) if "data" in parameters else None
    else:
        field = parameters.get(key)
        if field is not None and is_integer(field):
            return integer_words(field)
        declared = field.raw if field is not None else None
    if (choices := _choices(declared)) is not None:
        return "must be one of " + ", ".join(str(choice) for choice in choices)
    for pattern, words in MESSAGE_WORDS:
        if match := pattern.fullmatch(message):
            return str(words(*match.groups()))
    return message


def _problem(handler: BaseRouteHandler | None, problem: dict[str, Any]) -> dict[str, Any]:
    """One entry of ``extra`` in words: ``{key, message, source}`` (no key: the body as a whole)."""
    message, source = str(problem.get("message", "")), problem.get("source")
    key = str(problem.get("key", ""))
    for pattern, words in FIELD_MESSAGES:
        if match := pattern.fullmatch(message):
            return {"key": match["key"], "message": words, "source": match.groupdict().get("source", source)}
    if key == "data" and source == "body":  # msgspec's error is about the body itself
        return {"message": _words(None, "", None, message), "source": "body"}
    return {**problem, "message": _words(handler, key, source, message)}


def validation_error(
    request: Request[object, object, State], error: ValidationException
) -> Response[dict[str, object]]:
    """400 whose ``detail`` names each offending field in words; ``extra`` lists them one by one."""
    handler = request.scope.get("route_handler")
    raw = [p for p in error.extra if isinstance(p, dict)] if isinstance(error.extra, list) else []
    if not raw and error.detail.startswith("Missing required"):  # Litestar says this one in ``detail`` only
        raw = [{"message": error.detail}]
    problems = [_problem(handler, p) for p in raw]
    sentences = [f"{p['key']} {p['message']}" if p.get("key") else f"the request body {p['message']}" for p in problems]
    body: dict[str, object] = {"status_code": 400, "detail": "; ".join(sentences) or error.detail}
    if problems:
        body["extra"] = problems
    return Response(body, status_code=400, media_type=MediaType.JSON)


def internal_error(request: Request[object, object, State], error: Exception) -> Response[dict[str, object]]:
    """Any error without a handler of its own: its traceback goes to the log, the client gets a bare 500."""
    log.error("unhandled error in %s %s", request.method, request.url.path, exc_info=error)
    return Response({"status_code": 500, "detail": "Internal Server Error"}, status_code=500, media_type=MediaType.JSON)
