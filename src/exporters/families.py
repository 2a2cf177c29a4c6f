"""Metric families and label sets: the data model every exporter declares its metrics in."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Optional, Union

from prometheus_client import Metric
from prometheus_client.samples import Sample

from ._render import label_block, render_rows


class LabelSet:
    """One label set (e.g. a scenario's labels), escaped and encoded once for every family."""

    __slots__ = ("_names", "_values", "block")

    def __init__(self, labels: Mapping[str, str], block: Optional[bytes] = None) -> None:
        self._names = tuple(labels)
        self._values = tuple(labels.values())
        if block is None:
            text = _label_block(tuple(zip(self._names, self._values)))
            if text is None:
                raise ValueError(f"label names must match [a-zA-Z_][a-zA-Z0-9_]*: {list(labels)}")
            block = text.encode("utf-8")
        self.block = block

    @property
    def values(self) -> tuple[str, ...]:
        """The label values in the order of the names."""
        return self._values

    @property
    def labels(self) -> dict[str, str]:
        """The label values by name (built on each access; rendering only needs ``block``)."""
        return dict(zip(self._names, self._values))


class LabelSchema:
    """Builds LabelSets of fixed label names: names checked and sorted once, values escaped."""

    def __init__(self, names: Sequence[str]) -> None:
        for name in names:
            if not _LEGACY_LABEL_NAME.match(name):
                raise ValueError(f"label name {name!r} must match [a-zA-Z_][a-zA-Z0-9_]*")
        if len(set(names)) != len(names):
            raise ValueError(f"repeated label name in {list(names)}")
        self.names = tuple(names)
        # generate_latest sorts label names; positions of the values in that order
        self._order = tuple(sorted(range(len(names)), key=lambda i: names[i]))
        # The encoded names and quotes around the values, written once here:
        # {a="  ",b="  ",c="  "} (generate_latest's layout).
        ordered = [names[i] for i in self._order]
        texts = ([f'{{{ordered[0]}="', *(f'",{name}="' for name in ordered[1:]), '"}']
                 if names else [""])
        self._parts = tuple(text.encode("ascii") for text in texts)

    def __call__(self, values: Sequence[str]) -> LabelSet:
        """The LabelSet of ``values`` (one str per name, in the schema's order)."""
        if len(values) != len(self.names):
            raise ValueError(f"expected {len(self.names)} label values, got {len(values)}")
        labels = LabelSet.__new__(LabelSet)
        labels._names = self.names
        labels._values = tuple(values)
        labels.block = label_block(self._parts, self._order, values)
        return labels


class TableFamily:
    """A gauge or counter family kept as rows of (LabelSet, value).

    The per-scenario families hold tens of thousands of samples; this keeps two list slots per
    sample instead of a Sample namedtuple and renders them in compiled code. ``samples`` builds
    prometheus_client Samples on demand (generate_latest, the tests' oracle, reads them).
    """

    __slots__ = ("documentation", "keys", "name", "type", "values")

    def __init__(self, name: str, documentation: str, typ: str = "gauge") -> None:
        if typ not in ("gauge", "counter") or not _LEGACY_METRIC_NAME.match(name):
            raise ValueError(f"unsupported family {name!r} of type {typ!r}")
        self.name = name
        self.documentation = documentation
        self.type = typ
        self.keys: list[LabelSet] = []
        self.values: list[float] = []

    def add(self, labels: LabelSet, value: float) -> None:
        """Append one sample (value in the family's unit)."""
        self.keys.append(labels)
        self.values.append(value)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def samples(self) -> list[Sample]:
        """The rows as prometheus_client Samples (built on each access)."""
        name = self.name + "_total" if self.type == "counter" else self.name
        return [Sample(name, key.labels, value) for key, value in zip(self.keys, self.values)]

    def render(self, blocks: Optional[list[bytes]] = None) -> bytes:
        """HELP, TYPE and sample lines in the text format 0.0.4 (as generate_latest writes).

        ``blocks``: the rows' label blocks when the caller has listed them already.
        """
        name = self.name + "_total" if self.type == "counter" else self.name
        doc = self.documentation.replace("\\", r"\\").replace("\n", r"\n")
        head = f"# HELP {name} {doc}\n# TYPE {name} {self.type}\n".encode()
        if blocks is None:
            blocks = [key.block for key in self.keys]
        return render_rows(name.encode("ascii"), blocks, self.values, head)


Family = Union[Metric, TableFamily]

#: One per-scenario family declared as data: (key, metric name, help). Braces in a help name
#: values filled in at compute time (``{currency}``).
FamilySpec = tuple[str, str, str]


def table_families(specs: Sequence[FamilySpec], **values: str) -> dict[str, TableFamily]:
    """A new, empty gauge TableFamily for each spec, by key (helps formatted with ``values``)."""
    return {key: TableFamily(name, text.format(**values)) for key, name, text in specs}


@dataclass(frozen=True)
class BodyBudget:
    """What the per-scenario (table) families of one exporter's body may hold: bytes of label
    blocks (``{a="x",...}``, one per sample: what makes a body big) and samples (series)."""

    label_bytes: int = 8 * 1024 * 1024
    series: int = 100_000


_BLOCK = attrgetter("block")


def within_budget(families: list[Family],
                  budget: BodyBudget) -> tuple[list[Family], dict[str, int]]:
    """The families with whole scenarios left out until the table families fit ``budget``, and
    the scenarios left out by reason (``label_budget``, ``series_budget``).

    A scenario is the label sets with one ``scenario`` label value (a label set without one is
    a scenario of its own); scenarios are taken in the order they first appear while they fit.
    Families within the budget are returned as they are; cut ones are new objects.
    """
    tables = [family for family in families if isinstance(family, TableFamily)]
    series = sum(len(table) for table in tables)
    if series <= budget.series and sum(
            sum(map(len, map(_BLOCK, table.keys))) for table in tables) <= budget.label_bytes:
        return families, {}  # the common case, at C speed: no row is looked at in Python
    # Label bytes and samples of each label set, then of each scenario, in order of appearance.
    per_set: dict[int, list] = {}
    for table in tables:
        for labels in table.keys:
            cost = per_set.get(id(labels))
            if cost is None:
                per_set[id(labels)] = [labels, len(labels.block), 1]
            else:
                cost[1] += len(labels.block)
                cost[2] += 1
    per_scenario: dict[object, list[int]] = {}
    scenario_of: dict[int, object] = {}
    for ident, (labels, size, rows) in per_set.items():
        name = dict(zip(labels._names, labels._values)).get("scenario", ident)
        scenario_of[ident] = name
        cost = per_scenario.setdefault(name, [0, 0])
        cost[0] += size
        cost[1] += rows
    kept: set[object] = set()
    used_bytes = used_series = 0
    left_out = {"label_budget": 0, "series_budget": 0}
    for name, (size, rows) in per_scenario.items():
        if used_bytes + size > budget.label_bytes:
            left_out["label_budget"] += 1
        elif used_series + rows > budget.series:
            left_out["series_budget"] += 1
        else:
            kept.add(name)
            used_bytes += size
            used_series += rows
    result: list[Family] = []
    for family in families:
        if isinstance(family, TableFamily):
            cut = TableFamily(family.name, family.documentation, family.type)
            for labels, value in zip(family.keys, family.values):
                if scenario_of[id(labels)] in kept:
                    cut.add(labels, value)
            family = cut
        result.append(family)
    return result, {reason: count for reason, count in left_out.items() if count}


_LEGACY_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LEGACY_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _label_block(items: tuple) -> Optional[str]:
    """Return '{a="x",b="y"}' (names sorted, values escaped), or None for non-legacy names."""
    if not items:
        return ""
    parts = []
    for key, value in sorted(items):
        if not _LEGACY_LABEL_NAME.match(key):
            return None
        parts.append(f'{key}="{_escape_label_value(value)}"')
    return "{" + ",".join(parts) + "}"

