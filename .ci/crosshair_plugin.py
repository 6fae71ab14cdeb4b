"""CrossHair plugin for kafkaref's spec: how to make a symbolic ``FrozenMap``.

CrossHair builds a value of a class it does not know by calling the class's ``__init__``
with symbolic arguments.  ``FrozenMap.__init__`` takes ``Mapping[K, V] | Iterable[tuple[K,
V]]``; with the type variables unbound CrossHair can only ever build the empty map, so
state held in a ``FrozenMap`` (the partitioner's counters and sticky partitions) would go
unexplored.

This plugin builds a map over a few fixed keys (``""`` and ``"t"`` for ``str`` keys,
``0``, ``1``, ``2`` for ``int`` keys), each present or not, with symbolic values of the
map's value type; other key types get the empty map.  Fixed keys, because a map around a
``dict`` with symbolic keys makes CrossHair fail with "NotDeterministic: Found a different
execution paths after making the same decisions" on the partitioner's methods.  A
symbolic argument (a topic name, a broker id) still takes any value, these keys among them.

Loaded with ``crosshair check --extra_plugin=.ci/crosshair_plugin.py`` (``.ci/crosshair.sh``
and ``tests/spec/test_crosshair.py`` do).  CrossHair calls the creator with tracing off,
hence the map filled in without ``FrozenMap.__init__`` (which would copy symbolic values).
"""

from __future__ import annotations

from typing import Any


def _install() -> None:
    # CrossHair exec()s this file inside a function: names defined at the top level are
    # not globals of the functions defined here.  A closure sees them.
    from crosshair import SymbolicFactory, register_type  # noqa: PLC0415

    from spec.fmap import FrozenMap  # noqa: PLC0415

    keys: dict[type, tuple[object, ...]] = {str: ("", "t"), int: (0, 1, 2)}

    def symbolic_frozen_map(
        factory: SymbolicFactory, key_type: Any = object, value_type: Any = object
    ) -> FrozenMap[Any, Any]:
        items = {k: factory(value_type) for k in keys.get(key_type, ()) if factory(bool)}
        fmap: FrozenMap[Any, Any] = FrozenMap.__new__(FrozenMap)
        fmap._d = items
        fmap._h = None
        return fmap

    register_type(FrozenMap, symbolic_frozen_map)


_install()
