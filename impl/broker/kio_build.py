"""Building kio response entities of whatever version a request came in.

kio has one generated class per API version, with fields added and renamed across
versions.  The data-path handlers write each answer once: ``build`` keeps the fields the
version's class has and drops the rest, and ``nested`` finds a version's nested class
(``PartitionData`` of Fetch v12, ...) by name.
"""

from __future__ import annotations

import datetime
import sys
from typing import Any

from kio.index import load_response_from_request
from kio.schema.errors import ErrorCode as KioErrorCode
from kio.static.primitive import i32Timedelta
from kio.static.protocol import Entity

from spec.errors import ErrorCode

_NO_THROTTLE = i32Timedelta.parse(datetime.timedelta(0))


_FIELDS: dict[type[Any], frozenset[str]] = {}
_NESTED: dict[tuple[type[Any], str], type[Any]] = {}
_RESPONSES: dict[type[Any], type[Any]] = {}


def _field_names(cls: type[Any]) -> frozenset[str]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = frozenset(cls.__dataclass_fields__)
    return names


def response_class(request: Entity) -> type[Any]:
    """The response class of the request's API and version (kio resolves it by module
    path on every call: looked up once per request class here)."""
    request_cls = type(request)
    found = _RESPONSES.get(request_cls)
    if found is None:
        found = _RESPONSES[request_cls] = load_response_from_request(request_cls)  # type: ignore[arg-type]
    return found


def nested(cls: type[Any], name: str) -> type[Any]:
    """The class ``name`` defined beside ``cls`` (the same API, version and direction)."""
    found = _NESTED.get((cls, name))
    if found is None:
        found = _NESTED[cls, name] = getattr(sys.modules[cls.__module__], name)
    return found


def kio_error(code: ErrorCode) -> KioErrorCode:
    return KioErrorCode(int(code))


def build(cls: type[Any], **values: Any) -> Any:
    """An instance of ``cls`` from the values its version has; spec error codes become
    kio's, and a missing ``throttle_time`` is zero."""
    names = _field_names(cls)
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        if name in names:
            kwargs[name] = kio_error(value) if isinstance(value, ErrorCode) else value
    if "throttle_time" in names and "throttle_time" not in kwargs:
        kwargs["throttle_time"] = _NO_THROTTLE
    return cls(**kwargs)
