"""labkit's imports go one way: no cycles (function-local imports counted), the lesson library
never reaches the instructor tools, the quiz package never reaches the course's exercises, and
``import labkit`` stays light."""

import ast
import subprocess
import sys
from pathlib import Path

LABKIT = Path(__file__).resolve().parent.parent / "labkit"


def module_name(path: Path) -> str:
    parts = path.relative_to(LABKIT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in LABKIT.rglob("*.py")}


def imported_modules(name: str) -> set[str]:
    """Every labkit module that ``name`` imports anywhere in its file, in functions too."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from .bank import y
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from labkit import distributed` imports the module labkit.distributed
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                       for alias in node.names]
        else:
            continue
        found |= {target for target in targets if target in MODULES and target != name}
    return found


GRAPH = {name: imported_modules(name) for name in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_import_graph_sees_function_local_and_relative_imports():
    assert "labkit.instructor.doctor" in GRAPH["labkit"]  # imported inside __getattr__
    assert len(MODULES) > 20 and sum(map(len, GRAPH.values())) > 20


def test_no_import_cycle_among_labkit_modules():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_lesson_library_never_imports_the_instructor_tools():
    allowed = {"labkit", "labkit.__main__"}  # the lazy labkit.doctor and the command line
    offenders = {name: sorted(m for m in imports if m.startswith("labkit.instructor"))
                 for name, imports in GRAPH.items()
                 if not name.startswith("labkit.instructor") and name not in allowed}
    assert not {k: v for k, v in offenders.items() if v}


def test_the_quiz_package_knows_nothing_of_the_exercises():
    offenders = {name: sorted(m for m in imports if m.startswith("labkit.exercises"))
                 for name, imports in GRAPH.items() if name.startswith("labkit.quiz")}
    assert not {k: v for k, v in offenders.items() if v}


def test_import_labkit_is_light():
    code = ("import sys, labkit; heavy = [m for m in ('torch', 'ipywidgets', 'IPython', "
            "'labkit.instructor.doctor', 'matplotlib') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
