"""Keys given twice in one mapping of a pipeline file. YAML loaders keep the last one without a word, so a
second `runtime:` or `source:` pasted into a step would silently replace the first."""

from __future__ import annotations

import yaml

from ..errors import Problem

NAMED = {"nodes": "node", "triggers": "trigger", "notes": "note"}


def duplicate_keys(root: yaml.Node | None) -> list[Problem]:
    """One problem per key repeated in the same mapping, naming the node, trigger or note it is in."""
    problems: list[Problem] = []
    if not isinstance(root, yaml.MappingNode):
        return problems
    _check(root, "", problems)
    for key, value in root.value:
        if isinstance(value, yaml.SequenceNode):
            for i, item in enumerate(value.value):
                _walk(item, _where(key.value, i, item), problems)
        else:
            _walk(value, f"field `{key.value}`", problems)
    return problems


def _where(section: str, index: int, item: yaml.Node) -> str:
    kind = NAMED.get(section)
    if kind and isinstance(item, yaml.MappingNode):
        for k, v in item.value:
            if k.value == "id" and isinstance(v, yaml.ScalarNode) and v.value:
                return f"{kind} `{v.value}`"
    if section == "edges" and isinstance(item, yaml.MappingNode):
        ends = {k.value: v.value for k, v in item.value if isinstance(v, yaml.ScalarNode)}
        if "from" in ends and "to" in ends:
            return f"edge `{ends['from']} -> {ends['to']}`"
    return f"{section}[{index}]"


def _walk(node: yaml.Node, where: str, problems: list[Problem]) -> None:
    stack = [node]
    while stack:
        here = stack.pop()
        if isinstance(here, yaml.MappingNode):
            _check(here, where, problems)
            stack.extend(v for _, v in here.value)
        elif isinstance(here, yaml.SequenceNode):
            stack.extend(here.value)


def _check(mapping: yaml.MappingNode, where: str, problems: list[Problem]) -> None:
    first: dict[str, int] = {}
    for key, _ in mapping.value:
        if not isinstance(key, yaml.ScalarNode):
            continue
        line = key.start_mark.line + 1
        if key.value in first:
            field = f"field `{key.value}`"
            lines = f" (lines {first[key.value]} and {line})" if first[key.value] != line else ""
            problems.append(Problem(f"{where}, {field}" if where else field,
                                    f"given twice{lines}; only the last would count, so keep one", line))
        else:
            first[key.value] = line
