"""The shape of the code: imports run one way, and modules stay small."""

import ast
from pathlib import Path

import gramkd

PACKAGE = Path(gramkd.__file__).parent
MAX_LINES = 300


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imported(path: Path, known: set[str]) -> set[str]:
    """gramkd modules that `path` imports, deferred (in-function) imports included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module for alias in node.names}
    return {name for name in found if name in known}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import circles (depth-first search), ignoring a package's own __init__ re-exporting its modules."""
    found, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append(trail[trail.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    return found


def import_graph() -> dict[str, set[str]]:
    known = modules()
    graph = {}
    for name, path in known.items():
        targets = imported(path, set(known))
        is_package = path.name == "__init__.py"
        # `import gramkd.x.y` also runs gramkd/x/__init__; a package's __init__ importing its own
        # modules is how it re-exports them, not an edge back into the code that imports it.
        graph[name] = {t for t in targets if t != name and not (not is_package and name.startswith(t + "."))}
    return graph


def test_no_import_circle_in_gramkd():
    assert cycles(import_graph()) == []


def test_the_walk_finds_a_circle_when_there_is_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_training_imports_run_one_way():
    graph = import_graph()
    assert "gramkd.train" in graph["gramkd.cli"]
    for below in ("gramkd.teacher", "gramkd.resume", "gramkd.run_cache", "gramkd.identity"):
        assert "gramkd.train" not in _reachable(graph, below), f"{below} reaches back into gramkd.train"
    assert _reachable(graph, "gramkd.run_cache") & {"gramkd.teacher", "gramkd.resume", "gramkd.identity"} == set()


def test_no_module_is_over_300_lines():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_files_make_test_starts_first_exist():
    from conftest import LONGEST_FILES

    tests = Path(__file__).parent
    assert [name for name in LONGEST_FILES if not (tests / name).is_file()] == []  # a renamed file would quietly start last
