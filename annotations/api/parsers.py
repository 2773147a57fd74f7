"""The API's JSON parser, bounded before anything is built: nesting depth and number length are checked
without recursion, so a hostile body is a 400 rather than a RecursionError or an OverflowError deep in a
serializer. `POST /api/v1/auth/token` parses bodies from anyone. The body's size is Django's
DATA_UPLOAD_MAX_MEMORY_SIZE (DRF reads JSON through `request.body`; annotations.api.errors answers 413).

Imports nothing from this package: DRF's APIView loads the parser classes when it is defined."""

from __future__ import annotations

import json
import re

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding

MAX_DEPTH = 32  # our deepest body is an object of lists of objects: 3
MAX_NUMBER_DIGITS = 50  # a float has 17 significant digits; 50 leaves room for any honest spelling

# A JSON string (escapes included) and the brackets outside strings: scanned by the regex engine in one
# pass, never by recursion.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def json_depth_check(text: str, *, max_depth: int = MAX_DEPTH) -> None:
    """Raise ParseError when arrays/objects nest deeper than `max_depth`."""
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub('""', text)):
        if match.group() in "[{":
            depth += 1
            if depth > max_depth:
                raise ParseError(f"JSON nests deeper than {max_depth} levels")
        else:
            depth -= 1


def _number_check(text: str) -> None:
    if len(text) > MAX_NUMBER_DIGITS:
        raise ParseError(f"a JSON number has more than {MAX_NUMBER_DIGITS} characters ({text[:20]}…)")


def _bounded_int(text: str) -> int:
    _number_check(text)
    return int(text)


def _bounded_float(text: str) -> float:
    _number_check(text)
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ParseError(f"the JSON number {text} is too large")
    return value


def _refuse_constant(name: str):
    raise ParseError(f"{name} is not a JSON number")


class BoundedJSONParser(JSONParser):
    """DRF's JSONParser with the bounds above."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = get_encoding(parser_context or {})
        body = stream.read()
        try:
            text = body.decode(encoding)
        except UnicodeDecodeError as error:
            raise ParseError(
                f"the body is not {encoding} text ({error.reason} at byte {error.start})"
            ) from error
        json_depth_check(text)
        try:
            return json.loads(
                text, parse_int=_bounded_int, parse_float=_bounded_float, parse_constant=_refuse_constant
            )
        except ValueError as error:
            raise ParseError(f"JSON parse error - {error}") from error
