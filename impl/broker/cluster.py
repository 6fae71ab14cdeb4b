"""DescribeCluster: the cluster id, the controller and the live brokers, from the metadata
cache (single-broker mode: this broker is all of them).  Only the brokers endpoint type is
served, as by a Kafka broker: asking it for controllers gets MISMATCHED_ENDPOINT_TYPE,
another endpoint type UNSUPPORTED_ENDPOINT_TYPE (KIP-919)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kio.schema.errors import ErrorCode as KioErrorCode

from impl.broker.kio_build import build, nested, response_class
from impl.broker.metadata import broker_entries, controller_id
from spec.errors import ErrorCode

if TYPE_CHECKING:
    from kio.static.protocol import Entity

    from impl.broker.context import BrokerContext
    from impl.wire.framing import RequestHeader

BROKERS_ENDPOINT = 1
CONTROLLERS_ENDPOINT = 2


async def handle_describe_cluster(
    ctx: BrokerContext, header: RequestHeader, request: Entity
) -> Entity | None:
    cls = response_class(request)
    endpoint_type = int(getattr(request, "endpoint_type", BROKERS_ENDPOINT))
    if endpoint_type != BROKERS_ENDPOINT:
        code = (
            KioErrorCode.mismatched_endpoint_type
            if endpoint_type == CONTROLLERS_ENDPOINT
            else KioErrorCode.unsupported_endpoint_type
        )
        response: Entity = build(
            cls,
            error_code=code,
            error_message=f"The request was sent to the broker endpoint, not {endpoint_type}.",
            endpoint_type=endpoint_type,
            cluster_id=ctx.topics.cluster_id,
            controller_id=-1,
            brokers=(),
        )
        return response
    response = build(
        cls,
        error_code=ErrorCode.NONE,
        error_message=None,
        endpoint_type=endpoint_type,
        cluster_id=ctx.topics.cluster_id,
        controller_id=controller_id(ctx),
        brokers=broker_entries(ctx, nested(cls, "DescribeClusterBroker")),
    )
    return response
