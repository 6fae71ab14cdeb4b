"""DescribeCluster against a running broker."""

from __future__ import annotations

import pytest

from tests.impl import kio_requests as k
from tests.impl.conftest import BrokerProcess

MISMATCHED_ENDPOINT_TYPE = 114


@pytest.mark.parametrize("version", [0, 1])
def test_describes_this_broker(broker: BrokerProcess, version: int) -> None:
    with broker.client() as client:
        response = client.request(k.describe_cluster(version))
        metadata = client.request(k.metadata(None))
    assert response.error_code == 0
    assert response.cluster_id == metadata.cluster_id
    assert response.controller_id == 1
    assert [(b.broker_id, b.host, b.port) for b in response.brokers] == [
        (1, broker.host, broker.port)
    ]


def test_controllers_endpoint_is_not_served_by_a_broker(broker: BrokerProcess) -> None:
    with broker.client() as client:
        response = client.request(k.describe_cluster(1, endpoint_type=2))
    assert response.error_code == MISMATCHED_ENDPOINT_TYPE
