"""ApiVersions: the API keys and version ranges this broker serves (apis.APIS).

A version this broker does not serve never reaches here: the server answers it with
UNSUPPORTED_VERSION in the v0 layout (``codec.api_versions_unsupported_v0``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from impl.broker.kio_build import build, nested, response_class
from spec.errors import ErrorCode

if TYPE_CHECKING:
    from kio.static.protocol import Entity

    from impl.broker.context import BrokerContext
    from impl.wire.framing import RequestHeader


async def handle_api_versions(
    ctx: BrokerContext, header: RequestHeader, request: Entity
) -> Entity | None:
    """The supported version of every API this broker serves."""
    cls = response_class(request)
    cached = _ANSWERS.get(cls)
    if cached is None:
        cached = _ANSWERS[cls] = _response(cls)
    return cached


_ANSWERS: dict[type[Any], Entity] = {}
"""The answer per response version: the same for every request, so built once (every
client connection starts with ApiVersions)."""


def _response(cls: type[Any]) -> Entity:
    from impl.broker.apis import supported_versions  # noqa: PLC0415 (apis imports this)

    version_cls = nested(cls, "ApiVersion")
    keys = tuple(
        build(version_cls, api_key=key, min_version=low, max_version=high)
        for key, (low, high) in supported_versions().items()
    )
    response: Entity = build(cls, error_code=ErrorCode.NONE, api_keys=keys)
    return response
