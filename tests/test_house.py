"""The house as DESIGN.md draws it, held by reading every import of the packages.

- `capture/`, `verification/` and `storage/` import none of each other nor
  `supervisor/`; `config/` imports none of the four.
- Inside `supervisor/`, each wing (subpackage) and each module at its top level is a
  room with a floor; a room imports only rooms on lower floors (and itself).
- No module imports itself back through others: there is no import circle.
- At most 10 modules sit directly in `supervisor/`.

Every import counts: at module level, inside functions and under TYPE_CHECKING.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LEAVES = ("capture", "verification", "storage", "config")

# Lowest first. A room may import rooms listed before it. Rooms on one floor may not
# import each other.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("errors", "metrics", "web", "runtime"),
    # i18n reads the templates folder of `web` (its page environments) and is read by
    # every room that speaks to a person: subsidy (exports, the report), api, cli.
    ("auth", "i18n"),
    ("ledger",),
    ("rules",),
    ("checks",),
    ("context",),
    ("registry",),
    ("subsidy",),
    ("online",),
    ("classroom",),
    ("privacy",),
    ("inspect",),
    ("api",),
    ("app",),
    ("cli",),
)
FLOOR = {room: n for n, rooms in enumerate(FLOORS) for room in rooms}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module this file imports (absolute names; relative ones resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found.add(base)
            # `from pkg import module` imports the module too.
            for alias in node.names:
                found.add(f"{base}.{alias.name}")
    return found


def _package_files() -> dict[str, Path]:
    files: dict[str, Path] = {}
    for top in ("supervisor", *LEAVES):
        for path in (ROOT / top).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            files[_module_name(path)] = path
    return files


FILES = _package_files()


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in FILES.items():
        graph[name] = {m for m in _imports(path) if m in FILES and m != name}
    return graph


GRAPH = _graph()


def _room(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "supervisor" or len(parts) < 2:
        return None
    return parts[1]


def test_the_leaf_packages_stay_apart() -> None:
    wrong = []
    for name, deps in GRAPH.items():
        top = name.split(".")[0]
        if top not in LEAVES:
            continue
        allowed = {top} | ({"config"} if top != "config" else set())
        for dep in deps:
            if dep.split(".")[0] not in allowed:
                wrong.append(f"{name} imports {dep}")
    assert not wrong, "\n".join(sorted(wrong))


def test_every_room_of_supervisor_has_a_floor() -> None:
    rooms = {_room(n) for n in FILES if _room(n) is not None}
    assert rooms <= set(FLOOR), f"rooms without a floor: {sorted(rooms - set(FLOOR))}"


def test_a_wing_imports_only_wings_below_it() -> None:
    wrong = []
    for name, deps in GRAPH.items():
        room = _room(name)
        if room is None:
            continue
        for dep in deps:
            other = _room(dep)
            if other is None or other == room:
                continue
            if FLOOR[other] >= FLOOR[room]:
                wrong.append(f"{name} ({room}) imports {dep} ({other})")
    assert not wrong, "\n".join(sorted(wrong))


def test_there_is_no_import_circle() -> None:
    # Tarjan's strongly connected components over module imports; a package's
    # __init__ importing its own submodules is not a circle of rooms, so edges from a
    # package to its own children are left out.
    graph = {n: {d for d in deps if not d.startswith(n + ".")} for n, deps in GRAPH.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"


def test_at_most_ten_modules_sit_directly_in_supervisor() -> None:
    top = sorted(p.name for p in (ROOT / "supervisor").glob("*.py"))
    assert len(top) <= 10, top


def test_the_reader_sees_what_the_rules_would_catch() -> None:
    # The checks above must be able to fail: a made-up upward import is caught.
    graph = defaultdict(set, {k: set(v) for k, v in GRAPH.items()})
    graph["supervisor.rules.crediting"].add("supervisor.online.live")
    upward = [
        (n, d)
        for n, deps in graph.items()
        for d in deps
        if _room(n) and _room(d) and _room(n) != _room(d) and FLOOR[_room(d)] >= FLOOR[_room(n)]  # type: ignore[index]
    ]
    assert ("supervisor.rules.crediting", "supervisor.online.live") in upward
