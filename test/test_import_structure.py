"""The import structure of the two packages, read with ``ast`` (nothing is imported):

(a) no cycle among the project's modules, through any import: at module level or inside a
    function (so no cycle can hide in a function);
(b) no project module imported inside a function or method, except the modules of
    ``LAZY_ALLOWED``: each imports an optional heavy library (torch) at its top, and is imported
    late so that importing ``superpoint_ros`` or a backend does not import torch (the backend
    facade). The test checks that each of them really imports that library at its top, so the
    list cannot rot. Lazy imports of optional third-party libraries (torch, onnxruntime,
    tensorrt, rclpy...) themselves stay allowed.

The scanner is tested too, on a tiny package written to a temporary folder, so a test that
cannot fail is not what guards the real tree.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("superpoint_ros", "superpoint_training")

# module -> (the optional library it imports at its top, why it is imported inside functions)
LAZY_ALLOWED = {
    "superpoint_ros.model.weights": (
        "torch",
        "checkpoints and the network: the torch backend loads it when it opens a model",
    ),
    "superpoint_ros.frontend.postprocess": (
        "torch",
        "the exportable post-processing: only the torch backend and the ONNX export run it",
    ),
    "superpoint_ros.onnx_export": (
        "torch",
        "weights -> ONNX: the loader exports only when given a .pt for a graph backend",
    ),
}


def module_files(root: Path, packages=PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under the packages."""
    out = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names (relative levels resolved)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _project_targets(name: str, modules: dict[str, Path]) -> list[str]:
    """The project modules an imported dotted ``name`` loads: the longest known module it
    starts with, and the packages above it (their ``__init__`` runs)."""
    parts = name.split(".")
    if parts[0] not in {m.split(".")[0] for m in modules}:
        return []
    out = []
    for k in range(1, len(parts) + 1):
        prefix = ".".join(parts[:k])
        if prefix in modules:
            out.append(prefix)
    return out


def imports_of(module: str, path: Path, modules: dict[str, Path]):
    """``(top_level, inside_functions)``: project modules imported at module level (incl. under
    ``if``/``try``, excluding ``if TYPE_CHECKING:``), and ``(line, function, target)`` for those
    imported inside a function or method."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_package = path.name == "__init__.py"
    top: set[str] = set()
    inner: list[tuple[int, str, str]] = []

    def targets(node) -> list[str]:
        found: list[str] = []
        if isinstance(node, ast.Import):
            for alias in node.names:
                found += _project_targets(alias.name, modules)
        else:
            base = _resolve(module, is_package, node)
            found += _project_targets(base, modules)
            for alias in node.names:  # `from pkg import submodule`
                sub = f"{base}.{alias.name}"
                if sub in modules:
                    found.append(sub)
        # A package above the importing module is already being imported: not a dependency.
        ancestors = {".".join(module.split(".")[:k]) for k in range(1, module.count(".") + 1)}
        if is_package:
            ancestors.add(module)
        return [t for t in found if t != module and t not in ancestors]

    def visit(node, scope: str, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                name = getattr(child, "name", "<lambda>")
                visit(child, f"{scope}.{name}" if scope else name, True)
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{scope}.{child.name}" if scope else child.name, in_function)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for sub in child.orelse:
                    visit(ast.Module(body=[sub], type_ignores=[]), scope, in_function)
            elif isinstance(child, (ast.Import, ast.ImportFrom)):
                found = targets(child)
                if in_function:  # one line per statement: its deepest module
                    for t in sorted(
                        {max((f for f in found if t.startswith(f)), key=len) for t in found}
                        - {p for f in found for p in found if f != p and f.startswith(p + ".")}
                    ):
                        inner.append((child.lineno, scope, t))
                else:
                    top.update(found)
            else:
                visit(child, scope, in_function)

    visit(tree, "", False)
    return top, inner


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (or a module importing itself),
    each as a sorted list (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1 or node in graph.get(node, ()):
                    out.append(sorted(comp))
    return out


def top_level_libraries(path: Path) -> set[str]:
    """The top-level names of what ``path`` imports at module level (absolute imports only,
    ``if TYPE_CHECKING:`` blocks excluded)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out: set[str] = set()

    def visit(nodes) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                out.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                out.add(node.module.split(".")[0])
            elif isinstance(node, ast.If) and _is_type_checking(node.test):
                visit(node.orelse)
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body + node.orelse + getattr(node, "finalbody", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(tree.body)
    return out


def scan(root: Path, packages=PACKAGES, allowed=()):
    """``(cycles, inner_imports)`` of the packages under ``root``: cycles through all imports,
    and the imports inside functions of project modules not in ``allowed``."""
    modules = module_files(root, packages)
    graph: dict[str, set[str]] = {}
    inner: list[str] = []
    for module, path in modules.items():
        top, lazy = imports_of(module, path, modules)
        graph[module] = top | {target for _, _, target in lazy}
        inner += [
            f"{path.relative_to(root)}:{line}: {fn} imports {target}"
            for line, fn, target in lazy
            if target not in allowed
        ]
    return find_cycles(graph), inner


# ----------------------------------------------------------------------------- the scanner


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def test_scanner_finds_a_cycle_and_an_import_inside_a_function(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from .b import f\n",
            "pkg/b.py": "import pkg.c\n\ndef f():\n    return 1\n",
            "pkg/c.py": "from pkg import a\nimport os\n",
            "pkg/d.py": (
                "def g():\n    import numpy\n    from . import a\n    return a\n\n"
                "class K:\n    def m(self):\n        from pkg.sub import e\n"
            ),
            "pkg/sub/__init__.py": "",
            "pkg/sub/e.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import d\n"
                "from .. import b\n"
            ),
        },
    )
    cycles, inner = scan(tmp_path, ("pkg",))
    assert cycles == [["pkg.a", "pkg.b", "pkg.c"]]
    assert inner == [
        "pkg/d.py:3: g imports pkg.a",
        "pkg/d.py:8: K.m imports pkg.sub.e",
    ]


def test_scanner_finds_a_cycle_hidden_in_a_function_and_honours_the_allowlist(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/x.py": "from . import y\n",
            "pkg/y.py": "def f():\n    from pkg import x\n    return x\n",
            "pkg/heavy.py": "import torch\n",
            "pkg/z.py": "def g():\n    from .heavy import torch\n    return torch\n",
        },
    )
    cycles, inner = scan(tmp_path, ("pkg",), allowed={"pkg.heavy"})
    assert cycles == [["pkg.x", "pkg.y"]]
    assert inner == ["pkg/y.py:2: f imports pkg.x"]
    assert top_level_libraries(tmp_path / "pkg" / "heavy.py") == {"torch"}
    assert top_level_libraries(tmp_path / "pkg" / "z.py") == set()


def test_scanner_accepts_a_tree_without_either(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from .a import x\n",
            "pkg/a.py": "x = 1\n\ndef f():\n    import torch\n    return torch\n",
            "pkg/b.py": "from pkg.a import x\nfrom pkg import a\n",
        },
    )
    assert scan(tmp_path, ("pkg",)) == ([], [])


# ----------------------------------------------------------------------------- the project


@pytest.fixture(scope="module")
def project():
    return scan(ROOT, allowed=set(LAZY_ALLOWED))


@pytest.mark.parametrize("module", sorted(LAZY_ALLOWED))
def test_each_allowed_lazy_module_imports_its_library_at_its_top(module):
    library, _ = LAZY_ALLOWED[module]
    path = module_files(ROOT)[module]
    assert library in top_level_libraries(path), (
        f"{module} no longer imports {library} at its top: remove it from LAZY_ALLOWED and "
        "import it at the top of the modules that use it"
    )


def test_no_import_cycle_among_project_modules(project):
    cycles, _ = project
    assert not cycles, "import cycles (imports at module level or in functions):\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


def test_no_project_import_inside_a_function(project):
    _, inner = project
    assert not inner, (
        "project modules imported inside functions (move them to the module's top; only the "
        "modules of LAZY_ALLOWED may be imported late):\n" + "\n".join(inner)
    )
