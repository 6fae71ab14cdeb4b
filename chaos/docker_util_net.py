"""Networks for chaos clusters: a private subnet, and partitions made with iptables.

A cluster's network is a Docker bridge network of its own, ``internal`` (its containers
reach each other and this host, nothing beyond), with a /24 subnet chosen here so that
every node has a fixed address (:func:`create_network`): a restarted container comes back
at the same address, which keeps advertised listeners, ``zookeeper.connect`` and
partition rules valid.

Partitions are Jepsen's *grudges*: ``{node: the nodes it no longer hears from}``.  Each
grudge is a set of ``iptables -A INPUT -s <address> -j DROP`` rules inside the node's
own network namespace (the containers have the NET_ADMIN capability); a symmetric split
is every node holding a grudge against every node on the other side.  Healing flushes
those chains.  :func:`complete_grudge` turns a list of components into a grudge.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import struct
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["complete_grudge", "create_network", "host_routes", "iptables_script"]

CANDIDATE_SPACE = ipaddress.IPv4Network("10.231.0.0/16")
"""Where the /24 subnets of chaos networks are taken from."""


def host_routes(path: Path = Path("/proc/net/route")) -> list[ipaddress.IPv4Network]:
    """The destinations of this host's IPv4 routes, except the default route."""
    routes = []
    try:
        lines = path.read_text(encoding="ascii").splitlines()[1:]
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        dest = socket.inet_ntoa(struct.pack("<I", int(fields[1], 16)))
        mask = socket.inet_ntoa(struct.pack("<I", int(fields[7], 16)))
        network = ipaddress.IPv4Network(f"{dest}/{mask}", strict=False)
        if network.prefixlen > 0:
            routes.append(network)
    return routes


def _docker_subnets(client: Any) -> list[ipaddress.IPv4Network]:
    """The IPv4 subnets of every Docker network."""
    found = []
    for network in client.networks.list():
        for config in (network.attrs.get("IPAM") or {}).get("Config") or []:
            subnet = config.get("Subnet")
            network_ = ipaddress.ip_network(subnet, strict=False) if subnet else None
            if isinstance(network_, ipaddress.IPv4Network):
                found.append(network_)
    return found


def create_network(client: Any, name: str, labels: Mapping[str, str]) -> tuple[Any, str]:
    """Create the internal bridge network ``name`` on a free /24 of CANDIDATE_SPACE (not
    overlapping this host's routes nor another Docker network; another process taking
    the same one meanwhile makes Docker refuse, and the next is tried).  Returns the
    network and its subnet."""
    from docker.errors import APIError  # noqa: PLC0415 - optional dependency
    from docker.types import IPAMConfig, IPAMPool  # noqa: PLC0415

    candidates = list(CANDIDATE_SPACE.subnets(new_prefix=24))
    start = random.randrange(len(candidates))
    taken = [*host_routes(), *_docker_subnets(client)]
    last_error: Exception | None = None
    for i in range(len(candidates)):
        subnet = candidates[(start + i) % len(candidates)]
        if any(subnet.overlaps(t) for t in taken):
            continue
        try:
            network = client.networks.create(
                name,
                driver="bridge",
                internal=True,
                labels=dict(labels),
                ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=str(subnet))]),
            )
        except APIError as exc:
            if "overlap" not in str(exc).lower():
                raise
            last_error = exc
            continue
        return network, str(subnet)
    raise RuntimeError(f"no free /24 subnet left in {CANDIDATE_SPACE}: {last_error}")


def address(subnet: str, host: int) -> str:
    """The ``host``-th address of ``subnet`` (``address("10.0.0.0/24", 5)`` = 10.0.0.5)."""
    return str(ipaddress.ip_network(subnet)[host])


def complete_grudge(
    components: Sequence[Collection[str]], everyone: Iterable[str]
) -> dict[str, frozenset[str]]:
    """Every node grudges every node outside its component.  Nodes in no component form
    one more component together ("the rest of the cluster")."""
    everyone = list(everyone)
    listed = {n for c in components for n in c}
    unknown = listed - set(everyone)
    if unknown:
        raise ValueError(f"unknown nodes in a partition: {sorted(unknown)}")
    rest = [n for n in everyone if n not in listed]
    groups = [set(c) for c in components] + ([set(rest)] if rest else [])
    grudge: dict[str, frozenset[str]] = {}
    for group in groups:
        others = frozenset(n for n in everyone if n not in group)
        for node in group:
            grudge[node] = others
    return grudge


def iptables_script(sources: Iterable[str]) -> str:
    """A shell script that replaces the INPUT chain's rules with drops of ``sources``."""
    lines = ["set -e", "iptables -w -F INPUT"]
    lines += [f"iptables -w -A INPUT -s {ipaddress.ip_address(a)} -j DROP" for a in sources]
    return "\n".join(lines)
