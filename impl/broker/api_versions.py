"""ApiVersions: the API keys and version ranges this broker serves (apis.APIS).

A version this broker does not serve never reaches here: the server answers it with
UNSUPPORTED_VERSION in the v0 layout (``codec.api_versions_unsupported_v0``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
    from impl.broker.apis import supported_versions  # noqa: PLC0415 (apis imports this)

    cls = response_class(request)
    version_cls = nested(cls, "ApiVersion")
    keys = tuple(
        build(version_cls, api_key=key, min_version=low, max_version=high)
        for key, (low, high) in supported_versions().items()
    )
    response: Entity = build(cls, error_code=ErrorCode.NONE, api_keys=keys)
    return response
