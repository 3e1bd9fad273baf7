"""Packages under ``dynamictrl/`` import only downward (the code map in docs/architecture.md).

Every module is parsed (no import runs); every ``import``/``from ... import`` of ``dynamictrl`` — at module level,
inside functions and under ``TYPE_CHECKING`` alike, relative ones resolved — is mapped to its package (the first
name below ``dynamictrl``) and must go to the same package or to one in a lower layer. Packages in one layer are
independent of each other. The package-level import graph must have no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "dynamictrl"

#: Lowest first. A package may import itself and any package of a lower layer; nothing in its own layer or above.
#: Keep in step with the code map in docs/architecture.md; a new package needs a line in both.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "devices", "_lazy", "assets"),  # foundations: no dynamictrl imports; assets: the shipped files
    ("data", "models"),  # formats, IO and datasets; the transformer
    ("pose", "acceleration"),  # keypoints, rendering, extraction; inference speed-ups applied to a pipeline object
    ("pipelines", "preprocess", "puppet"),  # inference; captions and masks; the synthetic puppet world
    ("eval",),  # metrics and the evaluation runner
    ("training",),  # config, model spec, trainer
    ("cli",),  # the commands (dynamictrl-*; scripts/ and tools/ are thin wrappers of them)
)

#: Modules that belong to another layer than their folder says, with the reason. They are checked as that layer.
MODULE_LAYER: dict[str, str] = {}

RANK = {package: rank for rank, layer in enumerate(LAYERS) for package in layer}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[str, int]]:
    """``(absolute dynamictrl module, line)`` for every import of ``dynamictrl`` anywhere in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: strip the module's own name (unless a package), then level - 1 more
                base = module.split(".")[: None if is_package else -1]
                base = base[: len(base) - (node.level - 1)]
            else:
                base = []
            target = ".".join(base + ([node.module] if node.module else []))
            if node.module and target != "dynamictrl":
                found.append((target, node.lineno))
            else:  # ``from . import x`` / ``from dynamictrl import x``: x may be a submodule
                found += [(f"{target}.{alias.name}", node.lineno) for alias in node.names]
    return [(name, line) for name, line in found if name.split(".")[0] == "dynamictrl"]


def package_of(module: str) -> str:
    """The layer unit of a module: its override, else the first name below ``dynamictrl``."""
    if module in MODULE_LAYER:
        return MODULE_LAYER[module]
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "dynamictrl"


def edges_of_tree(root: Path = ROOT) -> list[tuple[str, str, int]]:
    """``(importer module, imported module, line)`` for every dynamictrl import in the package."""
    edges = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        source = path.read_text(encoding="utf-8")
        edges += [
            (module, target, line) for target, line in imported_modules(source, module, path.name == "__init__.py")
        ]
    return edges


def layer_violations(edges: list[tuple[str, str, int]]) -> list[str]:
    """One message per import that goes sideways, up, or to a package missing from LAYERS."""
    bad = []
    for importer, target, line in edges:
        src, dst = package_of(importer), package_of(target)
        if src == dst:
            continue
        if src not in RANK or dst not in RANK:
            unknown = src if src not in RANK else dst
            bad.append(f"{importer}:{line} -> {target}: package {unknown!r} is not in LAYERS")
        elif RANK[dst] >= RANK[src]:
            bad.append(
                f"{importer}:{line} -> {target}: {src} (layer {RANK[src]}) may not import {dst} (layer {RANK[dst]})"
            )
    return bad


def package_cycles(edges: list[tuple[str, str, int]]) -> list[list[str]]:
    """Cycles of the package graph (each found once per starting package, by depth-first search)."""
    graph: dict[str, set[str]] = {}
    for importer, target, _ in edges:
        src, dst = package_of(importer), package_of(target)
        if src != dst:
            graph.setdefault(src, set()).add(dst)
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


# ---------------------------------------------------------------- the tree


def test_every_package_under_dynamictrl_has_a_layer():
    packages = {
        p.stem for p in ROOT.iterdir() if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()
    }
    assert sorted(packages - set(RANK)) == [], "add the package to LAYERS here and to docs/architecture.md"


def test_layer_overrides_name_existing_modules():
    modules = {module_name(path) for path in ROOT.rglob("*.py")}
    assert sorted(set(MODULE_LAYER) - modules) == []


def test_dynamictrl_imports_only_go_down_the_layers():
    edges = edges_of_tree()
    assert len(edges) > 100  # the walk sees the tree (module- and function-level imports)
    assert layer_violations(edges) == []


def test_dynamictrl_package_import_graph_has_no_cycle():
    assert package_cycles(edges_of_tree()) == []


# ---------------------------------------------------------------- the checker catches what it must


def test_checker_flags_a_function_level_relative_import_back_up_a_layer():
    source = (
        "import numpy\nfrom .io import read_video\n\ndef f():\n    from ..pipelines.conditioning import encode_video\n"
    )
    edges = [("dynamictrl.data.dataset", t, line) for t, line in imported_modules(source, "dynamictrl.data.dataset")]
    assert edges == [
        ("dynamictrl.data.dataset", "dynamictrl.data.io", 2),
        ("dynamictrl.data.dataset", "dynamictrl.pipelines.conditioning", 5),
    ]
    assert layer_violations(edges) == [
        "dynamictrl.data.dataset:5 -> dynamictrl.pipelines.conditioning: data (layer 1) may not import pipelines (layer 3)"
    ]


def test_checker_flags_a_sideways_import_and_an_unknown_package():
    source = "from dynamictrl.puppet import make_sample\nfrom dynamictrl import newthing\nimport dynamictrl.errors\n"
    edges = [("dynamictrl.pipelines.x", t, line) for t, line in imported_modules(source, "dynamictrl.pipelines.x")]
    assert layer_violations(edges) == [
        "dynamictrl.pipelines.x:1 -> dynamictrl.puppet: pipelines (layer 3) may not import puppet (layer 3)",
        "dynamictrl.pipelines.x:2 -> dynamictrl.newthing: package 'newthing' is not in LAYERS",
    ]


def test_checker_resolves_relative_imports_of_a_package_init():
    source = "from . import runner\nfrom .image_metrics import psnr\nfrom ..data import io\n"
    found = imported_modules(source, "dynamictrl.eval", is_package=True)
    assert found == [("dynamictrl.eval.runner", 1), ("dynamictrl.eval.image_metrics", 2), ("dynamictrl.data", 3)]


@pytest.mark.parametrize(
    ("edges", "cycle"),
    [
        (
            [("dynamictrl.data.a", "dynamictrl.pose.b", 1), ("dynamictrl.pose.b", "dynamictrl.data.c", 1)],
            ["data", "pose", "data"],
        ),  # fmt: skip
        (
            [
                ("dynamictrl.eval.a", "dynamictrl.training.b", 1),
                ("dynamictrl.training.b", "dynamictrl.cli", 1),
                ("dynamictrl.cli", "dynamictrl.eval", 1),
            ],
            ["cli", "eval", "training", "cli"],
        ),  # fmt: skip
    ],
)
def test_checker_finds_a_package_cycle(edges, cycle):
    assert package_cycles(edges) == [cycle]


def test_checker_finds_no_cycle_in_a_chain():
    edges = [("dynamictrl.cli", "dynamictrl.training.a", 1), ("dynamictrl.training.a", "dynamictrl.data.b", 1)]
    assert package_cycles(edges) == []


def test_checker_flags_a_back_up_import_added_to_a_package_tree(tmp_path):
    root = tmp_path / "dynamictrl"
    for package, source in {
        "data": "def load():\n    from dynamictrl.training.trainer import Trainer\n",  # back up: data -> training
        "pose": "from ..data import io\n",  # down: fine
    }.items():
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
        (root / package / "mod.py").write_text(source)
    edges = edges_of_tree(root)
    assert edges == [
        ("dynamictrl.data.mod", "dynamictrl.training.trainer", 2),
        ("dynamictrl.pose.mod", "dynamictrl.data", 1),
    ]
    assert layer_violations(edges) == [
        "dynamictrl.data.mod:2 -> dynamictrl.training.trainer: data (layer 1) may not import training (layer 5)"
    ]
