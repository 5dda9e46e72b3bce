"""The package layout docs/architecture.md draws, enforced: no import cycles between modules, each
package imports only what it may, and the kernels import nothing of the application.

Imports are read from the source (function-level ones included; ``if TYPE_CHECKING:`` blocks
excluded, they never run).
"""

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP = {"servopt": ROOT / "src" / "servopt", "servopt_kernels": ROOT / "kernels" / "servopt_kernels"}

# What each servopt package may import (besides itself, the package root and the kernels). cli is
# the composition root and may import anything.
BASE = {"errors", "limits", "resources", "backends", "hardware", "error_bands"}
ALLOWED = {
    "errors": set(),
    "limits": {"errors"},
    "resources": {"errors", "cache_store"},
    "backends": set(),
    "error_bands": set(),
    "hardware": {"errors", "resources"},
    "cache_store": {"errors"},
    "perf_db": BASE | {"cache_store"},
    "search": BASE,
    "models": BASE,
    "evaluate": BASE | {"models", "perf_db", "search"},  # search.options: the input type search takes
    "config": BASE | {"models", "perf_db"},  # perf_db: config.catalog only (test below)
    # The typed result of a search run; its field types (config, evaluate, models, search) are
    # imported for type checkers only, so at run time it stands on the base alone.
    "run_result": BASE,
    "report": BASE | {"run_result"},
    # calibrate: the profile whose adjustments the search's worker tables carry.
    "pipeline": BASE
    | {"calibrate", "config", "evaluate", "models", "perf_db", "report", "run_result", "search", "sizing"},
    "simulate": BASE | {"evaluate", "models", "perf_db", "search"},
    "sizing": BASE | {"evaluate", "models", "perf_db", "search", "simulate"},
    "calibrate": BASE | {"evaluate", "models", "perf_db", "search", "simulate"},
    "emulate": BASE | {"simulate"},
    # sizing: the form's load fields are checked by the CLI's own rules (sizing.cost's prices).
    "webapp": BASE | {"config", "models", "perf_db", "pipeline", "report", "search", "sizing"},
}


def modules() -> dict[str, Path]:
    out = {}
    for name, root in TOP.items():
        for path in root.rglob("*.py"):
            parts = (name, *path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def import_graph() -> dict[str, set[str]]:
    mods = modules()

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in mods.items():
        tree = ast.parse(path.read_text())
        skip = _type_checking_lines(tree)
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skip:
                continue
            targets = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for target in targets:
                if target.split(".")[0] in TOP:
                    hit = resolve(target)
                    if hit and hit != name:
                        graph[name].add(hit)
    return graph


def test_no_import_cycles():
    graph = import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(modules()):
        if v not in index:
            visit(v)
    assert cycles == []


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "servopt" and len(parts) > 1 else None


def test_packages_import_only_what_the_architecture_allows():
    graph = import_graph()
    wrong = []
    for source, targets in graph.items():
        if source.startswith("servopt_kernels"):
            wrong += [f"{source} -> {t}" for t in targets if not t.startswith("servopt_kernels")]
            continue
        pkg = _package(source)
        if pkg in (None, "cli", "__main__"):
            continue
        allowed = ALLOWED.get(pkg)
        assert allowed is not None, f"package {pkg} has no import rule: add it to ALLOWED and the docs"
        for target in targets:
            tpkg = _package(target)
            if tpkg is None or tpkg == pkg or target.startswith("servopt_kernels"):
                continue
            if tpkg not in allowed:
                wrong.append(f"{source} -> {target}")
    assert wrong == []


def test_the_checker_sees_a_cycle_and_a_forbidden_import(tmp_path, monkeypatch):
    # The rules can fail: a two-module cycle and an upward import are reported.
    pkg = tmp_path / "servopt"
    (pkg / "report").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "report" / "__init__.py").write_text("")
    (pkg / "report" / "a.py").write_text("from servopt.report import b\nfrom servopt.pipeline import run\n")
    (pkg / "report" / "b.py").write_text("def f():\n    from servopt.report import a\n")
    (pkg / "pipeline.py").write_text("def run(): ...\n")
    monkeypatch.setitem(TOP, "servopt", pkg)
    monkeypatch.setitem(TOP, "servopt_kernels", tmp_path / "none")
    graph = import_graph()
    assert graph["servopt.report.a"] == {"servopt.report.b", "servopt.pipeline"}
    assert graph["servopt.report.b"] == {"servopt.report.a"}


def test_config_never_opens_a_perf_database():
    """Config learns what it needs from outside only through its Catalog protocol: the one module
    that asks the real owners (and may open a database for large-EP coverage) is config.catalog."""
    graph = import_graph()
    reach = {
        f"{source} -> {target}"
        for source, targets in graph.items()
        if source.startswith("servopt.config.") and source != "servopt.config.catalog"
        for target in targets
        if target.startswith("servopt.perf_db")
    }
    assert reach == set()


# The rows of the one-screen diagram in docs/architecture.md, top to bottom: a package imports only
# packages of lower rows (the base's modules may import each other, as ALLOWED says).
LAYERS = [
    {"webapp"},
    {"pipeline"},
    {"sizing", "calibrate", "emulate"},
    {"simulate"},
    {"report"},
    {"run_result"},
    {"evaluate"},
    {"search"},
    {"config"},
    {"models", "perf_db"},
    BASE | {"cache_store"},
]


def test_packages_import_only_lower_layers():
    row = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}
    assert set(ALLOWED) == set(row), "every package has a row in LAYERS (and the diagram)"
    base = row["errors"]
    wrong = set()
    for source, targets in import_graph().items():
        pkg = _package(source)
        if pkg not in row or row[pkg] == base:
            continue
        for target in targets:
            tpkg = _package(target)
            if tpkg in row and tpkg != pkg and row[tpkg] <= row[pkg]:
                wrong.add(f"{source} -> {target}")
    assert wrong == set()
