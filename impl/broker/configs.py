"""DescribeConfigs for topics and this broker, with Kafka's names and values: every topic
config with its effective value (the topic's override, else the broker-level default),
and every broker property (set explicitly, else Kafka's default; unknown keys from the
properties file too).  Config source, synonyms and types as the request's version has them.

This broker has no dynamic configuration (no AlterConfigs), so broker entries are
read-only; topic entries are not, as in Kafka."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from impl.broker.config import BROKER_PROPERTIES, TOPIC_CONFIGS, BrokerConfig
from impl.broker.kio_build import build, nested, response_class
from spec.admin import valid_topic_name
from spec.errors import ErrorCode

if TYPE_CHECKING:
    from kio.static.protocol import Entity

    from impl.broker.context import BrokerContext
    from impl.wire.framing import RequestHeader

TOPIC = 2  # ConfigResource.Type
BROKER = 4

# DescribeConfigsResponse.ConfigSource
TOPIC_CONFIG = 1
STATIC_BROKER_CONFIG = 4
DEFAULT_CONFIG = 5

# DescribeConfigsResponse.ConfigType
_CONFIG_TYPES = {"boolean": 1, "string": 2, "int": 3, "long": 5, "list": 7, "password": 9}


Synonym = tuple[str, str | None, int]  # name, value, config source


class _Entry:
    """One config as it is reported, before it becomes a kio entity."""

    __slots__ = ("config_type", "name", "read_only", "sensitive", "source", "synonyms", "value")

    def __init__(
        self,
        *,
        name: str,
        value: str | None,
        source: int,
        read_only: bool,
        kind: str,
        synonyms: list[Synonym],
    ) -> None:
        self.name = name
        self.sensitive = kind == "password"
        self.value = None if self.sensitive else value
        self.source = source
        self.read_only = read_only
        self.config_type = _CONFIG_TYPES.get(kind, 0)
        self.synonyms = synonyms


def _broker_synonyms(config: BrokerConfig, names: Iterable[str]) -> list[Synonym]:
    found: list[Synonym] = []
    for prop in names:
        if prop in config.explicit:
            found.append((prop, config.explicit[prop], STATIC_BROKER_CONFIG))
    for prop in names:
        definition = BROKER_PROPERTIES.get(prop)
        if definition is not None and definition.default is not None:
            found.append((prop, definition.default, DEFAULT_CONFIG))
    return found


def topic_entries(ctx: BrokerContext, overrides: dict[str, str]) -> list[_Entry]:
    config = ctx.config
    entries = []
    for name, value in sorted(config.topic_config(overrides).items()):
        broker_names = config.topic_synonyms(name)
        synonyms = _broker_synonyms(config, broker_names)
        if name in overrides:
            synonyms.insert(0, (name, overrides[name], TOPIC_CONFIG))
        source = synonyms[0][2] if synonyms else DEFAULT_CONFIG
        entries.append(
            _Entry(
                name=name,
                value=value,
                source=source,
                read_only=False,
                kind=TOPIC_CONFIGS[name].kind,
                synonyms=synonyms,
            )
        )
    return entries


def broker_entries(config: BrokerConfig) -> list[_Entry]:
    entries = []
    names = sorted(set(BROKER_PROPERTIES) | set(config.explicit))
    for name in names:
        definition = BROKER_PROPERTIES.get(name)
        kind = definition.kind if definition is not None else "string"
        source = STATIC_BROKER_CONFIG if name in config.explicit else DEFAULT_CONFIG
        synonyms = _broker_synonyms(config, (name,))
        if definition is None:
            synonyms = [(name, config.explicit[name], STATIC_BROKER_CONFIG)]
        entries.append(
            _Entry(
                name=name,
                value=config.get(name),
                source=source,
                read_only=True,
                kind=kind,
                synonyms=synonyms,
            )
        )
    return entries


async def handle_describe_configs(
    ctx: BrokerContext, header: RequestHeader, request: Entity
) -> Entity | None:
    cls = response_class(request)
    result_cls = nested(cls, "DescribeConfigsResult")
    entry_cls = nested(cls, "DescribeConfigsResourceResult")
    synonym_cls = nested(cls, "DescribeConfigsSynonym")
    include_synonyms = bool(getattr(request, "include_synonyms", False))
    results = []
    resource: Any
    for resource in request.resources:  # type: ignore[attr-defined]
        kind = int(resource.resource_type)
        name: str = resource.resource_name
        code, message, entries = ErrorCode.NONE, None, []
        if kind == TOPIC:
            info = ctx.topics.get(name)
            if not valid_topic_name(name):
                code, message = ErrorCode.INVALID_TOPIC_EXCEPTION, f"Topic name {name!r} is illegal"
            elif info is None:
                code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                message = f"Topic {name} does not exist."
            else:
                entries = topic_entries(ctx, dict(info.configs))
        elif kind == BROKER:
            if name == "":
                entries = []  # cluster-wide dynamic defaults: this broker has none
            elif name != str(ctx.broker_id):
                code = ErrorCode.INVALID_REQUEST
                message = f"Unexpected broker id, expected {ctx.broker_id} but received {name}"
            else:
                entries = broker_entries(ctx.config)
        else:
            code, message = ErrorCode.INVALID_REQUEST, f"Unsupported resource type {kind}"
        keys = resource.configuration_keys
        if keys is not None:
            wanted = set(keys)
            entries = [e for e in entries if e.name in wanted]
        configs = tuple(
            build(
                entry_cls,
                name=e.name,
                value=e.value,
                read_only=e.read_only,
                config_source=e.source,
                is_sensitive=e.sensitive,
                synonyms=tuple(
                    build(synonym_cls, name=s_name, value=s_value, source=s_source)
                    for s_name, s_value, s_source in (e.synonyms if include_synonyms else [])
                ),
                config_type=e.config_type,
                documentation=None,
            )
            for e in entries
        )
        results.append(
            build(
                result_cls,
                error_code=code,
                error_message=message,
                resource_type=kind,
                resource_name=name,
                configs=configs,
            )
        )
    response: Entity = build(cls, results=tuple(results))
    return response
