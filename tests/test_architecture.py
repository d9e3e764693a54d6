"""The dependency rules of docs/decisions/0016-dependency-direction.md, checked on the source.

Standard library only (``ast``), no database, well under a second. Each test prints the
offending lines, so a failure says exactly what to move.

1. no import cycle between callfleet modules, counting imports inside functions;
2. no callfleet import inside a function (the CLI's start-up excepted);
3. layers: a module imports its own layer or below; leaves may be imported from anywhere;
4. domain behaviour never imports the HTTP layer, the runtime, the worker or the app, and
   nothing under ``calls/`` imports the conversation;
5. tenancy: a team filter (``<x>.team_id == ...``) is written only in the team scope
   (``teams/principal.py``) unless the line is marked ``# tenancy: system``;
6. no ``_private`` name of a callfleet module is used from another module.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PKG = SRC / "callfleet"

# Layers, low to high. A module belongs to the layer of the longest prefix listed here;
# a module that matches none fails ``test_every_module_has_a_layer``.
KIT, TEAMS, DOMAIN, CAMPAIGNS, CALLS, RUNTIME, EDGE = range(7)
LAYER_NAMES = ["kit", "teams", "domain", "campaigns", "calls", "runtime", "edge"]
LAYERS: dict[str, int] = {
    # kit
    "callfleet": KIT, "callfleet.config": KIT, "callfleet.clock": KIT, "callfleet.ids": KIT,
    "callfleet.errors": KIT, "callfleet.secrets": KIT, "callfleet.logging": KIT,
    "callfleet.outbound": KIT, "callfleet.wakeup": KIT, "callfleet.csvio": KIT,
    "callfleet.recordings": KIT,
    "callfleet.db": KIT, "callfleet.webhooks.outbox": KIT, "callfleet.webhooks.signing": KIT,
    "callfleet.webhooks.retry": KIT, "callfleet.webhooks.metrics": KIT,
    "callfleet.dialer.rules": KIT, "callfleet.crm.fields": KIT, "callfleet.carriers.base": KIT,
    "callfleet.jobs": KIT,
    # teams
    "callfleet.teams": TEAMS,
    # the domains under campaigns
    "callfleet.crm": DOMAIN, "callfleet.assistants": DOMAIN, "callfleet.numbers": DOMAIN,
    "callfleet.compliance": DOMAIN, "callfleet.webhooks": DOMAIN,
    "callfleet.carriers": DOMAIN,
    "callfleet.campaigns": CAMPAIGNS,
    "callfleet.calls": CALLS,
    # runtime
    "callfleet.dialer": RUNTIME, "callfleet.conversation": RUNTIME,
    "callfleet.webhooks.sender": RUNTIME, "callfleet.voice": RUNTIME,
    # edge
    "callfleet.app": EDGE, "callfleet.cli": EDGE, "callfleet.worker": EDGE,
    "callfleet.testing": EDGE,
    "callfleet.demo": EDGE, "callfleet.api": EDGE, "callfleet.web": EDGE,
    "callfleet.campaigns.run": EDGE,
}
EDGE_SUFFIXES = (".routes", ".schemas")  # HTTP modules of a domain sit at the edge

# Leaves: importable from anywhere; they import only other leaves and the kit.
LEAF_SUFFIXES = (".models", ".views", ".events")
# compliance.duties is pure (no callfleet import): the call model judges its greeting with it
# (docs/decisions/0048-greeting-judged-when-written.md).
LEAF_MODULES = {"callfleet.calls.timeline", "callfleet.compliance.duties"}

# What domain behaviour must never import (rule 4).
FORBIDDEN_FOR_DOMAINS = ("callfleet.api", "callfleet.conversation", "callfleet.dialer.engine",
                         "callfleet.dialer.outcomes", "callfleet.worker", "callfleet.app",
                         "callfleet.voice", "callfleet.web")

SCOPE_MODULE = "callfleet.teams.principal"
TENANCY_MARK = "# tenancy: system"
LAZY_IMPORTS_ALLOWED = {"callfleet.cli"}


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module
    line: int
    nested: bool  # inside a function body
    names: tuple[str, ...]  # names taken with ``from target import ...``


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PKG.rglob("*.py"))
                            if "migrations" not in p.parts}
TREES: dict[str, ast.Module] = {m: ast.parse(p.read_text(), str(p)) for m, p in MODULES.items()}


def _resolve(name: str) -> str | None:
    """The callfleet module an imported dotted name refers to (longest existing prefix)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def _imports(module: str, tree: ast.Module) -> list[Import]:
    found: list[Import] = []

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef
                                         | ast.Lambda)
            if isinstance(child, ast.Import):
                for alias in child.names:
                    target = _resolve(alias.name)
                    if alias.name.startswith("callfleet") and target:
                        found.append(Import(module, target, child.lineno, nested, ()))
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                if not child.module.startswith("callfleet"):
                    continue
                for alias in child.names:
                    sub = _resolve(f"{child.module}.{alias.name}")
                    if sub == f"{child.module}.{alias.name}":  # a module
                        found.append(Import(module, sub, child.lineno, nested, ()))
                    else:
                        target = _resolve(child.module)
                        if target:
                            found.append(Import(module, target, child.lineno, nested,
                                                (alias.name,)))
            visit(child, inner)

    visit(tree, False)
    return found


IMPORTS: list[Import] = [i for m, t in TREES.items() for i in _imports(m, t)]


def layer_of(module: str) -> int | None:
    if module.endswith(EDGE_SUFFIXES):
        return EDGE
    parts = module.split(".")
    while parts:
        layer = LAYERS.get(".".join(parts))
        if layer is not None:
            return layer
        parts.pop()
    return None


def is_leaf(module: str) -> bool:
    return module.endswith(LEAF_SUFFIXES) or module in LEAF_MODULES


def is_domain_behaviour(module: str) -> bool:
    layer = layer_of(module)
    return layer is not None and TEAMS <= layer <= CALLS and not module.endswith(EDGE_SUFFIXES)


def _report(problems: list[str]) -> str:
    return "\n".join(sorted(problems))


def test_every_module_has_a_layer() -> None:
    missing = [m for m in MODULES if layer_of(m) is None]
    assert not missing, "add these modules to LAYERS in tests/test_architecture.py:\n" + \
        _report(missing)


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for imp in IMPORTS:
        if imp.target != imp.source:
            graph[imp.source].add(imp.target)
    # Tarjan's strongly connected components, iteratively.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0
    for root in sorted(MODULES):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_no_nested_callfleet_imports() -> None:
    nested = [f"{i.source}:{i.line} imports {i.target} inside a function" for i in IMPORTS
              if i.nested and i.source not in LAZY_IMPORTS_ALLOWED]
    assert not nested, _report(nested)


def test_imports_point_down() -> None:
    problems = []
    for imp in IMPORTS:
        src, dst = layer_of(imp.source), layer_of(imp.target)
        if src is None or dst is None or imp.target == imp.source:
            continue
        if is_leaf(imp.source):
            if not (is_leaf(imp.target) or dst == KIT):
                problems.append(f"{imp.source}:{imp.line} (a leaf) imports {imp.target}")
            continue
        if is_leaf(imp.target):
            continue
        if dst > src:
            problems.append(f"{imp.source}:{imp.line} ({LAYER_NAMES[src]}) imports "
                            f"{imp.target} ({LAYER_NAMES[dst]})")
        elif (imp.target.endswith(EDGE_SUFFIXES) and not imp.source.endswith(EDGE_SUFFIXES)
              and src != EDGE):
            problems.append(f"{imp.source}:{imp.line} imports the HTTP module {imp.target}")
    assert not problems, _report(problems)


def test_domain_behaviour_stays_out_of_http_and_runtime() -> None:
    problems = [f"{i.source}:{i.line} imports {i.target}" for i in IMPORTS
                if is_domain_behaviour(i.source)
                and any(i.target == f or i.target.startswith(f + ".")
                        for f in FORBIDDEN_FOR_DOMAINS)]
    problems += [f"{i.source}:{i.line} imports {i.target}" for i in IMPORTS
                 if i.source.startswith("callfleet.calls")
                 and i.target.startswith("callfleet.conversation")]
    assert not problems, _report(problems)


def test_no_private_names_across_modules() -> None:
    problems = [f"{i.source}:{i.line} imports {name} from {i.target}" for i in IMPORTS
                for name in i.names if name.startswith("_") and not name.startswith("__")]
    for module, tree in TREES.items():
        aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.startswith("callfleet"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    if full in MODULES:
                        aliases[alias.asname or alias.name] = full
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in MODULES and alias.asname:
                        aliases[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                problems.append(f"{module}:{node.lineno} uses {aliases[node.value.id]}."
                                f"{node.attr}")
    assert not problems, _report(problems)


def _team_filters(tree: ast.Module) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.Eq | ast.NotEq):
            operands = [node.left, *node.comparators]
            if any(isinstance(o, ast.Attribute) and o.attr == "team_id" for o in operands):
                lines.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr == "filter_by" and any(k.arg == "team_id" for k in node.keywords):
            lines.append(node.lineno)
    return lines


def test_team_filters_only_in_the_team_scope() -> None:
    problems = []
    for module, tree in TREES.items():
        if module == SCOPE_MODULE:
            continue
        source = MODULES[module].read_text().splitlines()
        for line in _team_filters(tree):
            if TENANCY_MARK not in source[line - 1]:
                problems.append(f"{module}:{line}: {source[line - 1].strip()}")
    assert not problems, ("team filters outside teams/principal.py (use the TeamScope, or mark a "
                          f"cross-team system path with '{TENANCY_MARK}'):\n"
                          + _report(problems))


def test_the_guard_sees_what_it_guards() -> None:
    """The checks above would pass vacuously on an empty graph: make sure they see code."""
    assert len(MODULES) > 50 and len(IMPORTS) > 300
    assert any(i.source == "callfleet.app" for i in IMPORTS)
    sample = ast.parse("def f():\n    from callfleet.crm import service\n")
    assert [i.nested for i in _imports("callfleet.x", sample)] == [True]
    assert _team_filters(ast.parse("select(A).where(A.team_id == t)")) == [1]
