"""Imports run one way: no cycle among aejax's modules, whether the import sits at the top of a module or
inside a function (a function-level import that dodges a cycle is still a cycle). A package's
`__init__` counts as a module: a submodule that imports its own package's `__init__` while that
`__init__` imports it is a cycle too."""

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "aejax"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
                    # Importing a submodule runs its packages' __init__ first.
                    parent = target.rpartition(".")[0]
                    while parent and not name.startswith(parent + ".") and parent != name:
                        graph[name].add(parent)
                        parent = parent.rpartition(".")[0]
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
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

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


# The layers of the README's "The tree", lowest first: a module imports only from its own layer or below.
LAYERS = {
    "settings": ["aejax.errors", "aejax.settings", "aejax.paths", "aejax.tasks"],
    "data and networks": ["aejax.data", "aejax.nets", "aejax.objectives", "aejax.selection", "aejax.sae_metrics", "aejax.figures",
                          "aejax.sae_figures", "aejax.frechet"],
    "families": ["aejax.families"],
    "config and builders": ["aejax.model_spec", "aejax.optim", "aejax.config", "aejax.settings_help", "aejax.models", "aejax.population",
                            "aejax.schedule"],
    "engine": ["aejax.train", "aejax.shuffle", "aejax.evaluate", "aejax.checkpoint"],
    "running": ["aejax.rundir", "aejax.resume", "aejax.provenance", "aejax.loggers", "aejax.progress",
                "aejax.latents", "aejax.metrics", "aejax.disentanglement", "aejax.restore",
                "aejax.run", "aejax.run_figures", "aejax.slurm_launcher", "aejax.cli"],
    "after training": ["aejax.trained", "aejax.results", "aejax.wandb_records"],
    "studies": ["aejax.studies"],
}


def layer_of(module: str) -> int | None:
    for depth, prefixes in enumerate(LAYERS.values()):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return depth
    return None


def test_every_module_has_a_layer_and_imports_point_down():
    graph = import_graph()
    unplaced = sorted(m for m in graph if m != "aejax" and layer_of(m) is None)
    assert not unplaced, f"modules in no layer of tests/test_imports.py (and the README's tree): {unplaced}"
    upward = [f"{m} -> {t}" for m, targets in graph.items() for t in targets
              if m != "aejax" and layer_of(t) is not None and layer_of(t) > layer_of(m)]
    assert not upward, f"imports from a lower layer to a higher one: {upward}"


def test_the_readme_tree_names_every_layer():
    readme = (REPO / "README.md").read_text()
    tree = readme[readme.index("## The tree"):readme.index("\n## ", readme.index("## The tree") + 1)]
    for name in LAYERS:
        assert f"| {name} |" in tree, f"the README's tree has no row for the layer {name!r}"
