"""What an entry point of the package imports: the third-party top-level modules it reaches.

A static walk of the import statements (``ast``, nothing is executed) from one module of
``bosun`` through every ``bosun`` module it imports, at module level or inside a function, the
parent packages included. Imports under ``if TYPE_CHECKING:`` are skipped: they never run.
What an image must carry is what this walk reaches from the image's entry point; the lock tests
compare it with the extras of pyproject.toml. Run it as a script to print the sets:

    python tests/chart/importgraph.py bosun.runner.__main__ bosun.controller.main
"""

from __future__ import annotations

import ast
import dataclasses
import pathlib
import sys

__all__ = ["Graph", "walk"]

SOURCE_ROOT = pathlib.Path(__file__).resolve().parents[2] / "operator"
PACKAGE = "bosun"


@dataclasses.dataclass(frozen=True)
class Graph:
    """The ``bosun`` modules an entry point reaches and the third-party modules they import."""

    modules: frozenset[str]
    third_party: frozenset[str]
    # third-party top-level module -> the bosun modules that import it
    importers: dict[str, frozenset[str]]
    # imported inside ``try: ... except ImportError``: used when present, never required
    optional: frozenset[str]


def _module_file(name: str, root: pathlib.Path) -> pathlib.Path | None:
    base = root.joinpath(*name.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    caught = handler.type
    names = caught.elts if isinstance(caught, ast.Tuple) else [caught]
    return any(
        isinstance(name, ast.Name) and name.id in {"ImportError", "ModuleNotFoundError"}
        for name in names
    )


@dataclasses.dataclass(frozen=True)
class _Import:
    name: str
    lazy: bool  # inside a function: runs when the function is called, not on import
    optional: bool  # inside ``try`` with an ``except ImportError``


def _imports(tree: ast.AST, module: str, is_package: bool) -> list[_Import]:
    """Absolute names of everything imported, ``from a import b`` giving both a and a.b."""
    found: list[_Import] = []
    package = module if is_package else module.rpartition(".")[0]

    def visit(node: ast.AST, lazy: bool, optional: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child, lazy, optional)
            return
        if isinstance(node, ast.Try) and any(map(_catches_import_error, node.handlers)):
            for child in node.body:
                visit(child, lazy, True)
            for rest in (*node.handlers, *node.orelse, *node.finalbody):
                visit(rest, lazy, optional)
            return
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{node.module}" if node.module else anchor
            else:
                base = node.module or ""
            names = [base, *(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")]
        found.extend(_Import(name, lazy, optional) for name in names)
        inner = lazy or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for nested in ast.iter_child_nodes(node):
            visit(nested, inner, optional)

    visit(tree, lazy=False, optional=False)
    return found


def walk(*entry_points: str, lazy: bool = True, root: pathlib.Path = SOURCE_ROOT) -> Graph:
    """The import graph reached from ``entry_points`` (dotted names of bosun modules).

    With ``lazy=False`` imports inside functions are not followed: the graph is what importing
    the entry points runs, before any of their functions is called.
    """
    stdlib = sys.stdlib_module_names
    seen: set[str] = set()
    importers: dict[str, set[str]] = {}
    optional: set[str] = set()
    todo = list(entry_points)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_file(name, root)
        if path is None:
            # ``from bosun.x import name`` where name is not a module: nothing more to read.
            if name in entry_points:
                raise LookupError(f"no module {name} under {root}")
            continue
        seen.add(name)
        # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        tree = ast.parse(path.read_text(), filename=str(path))
        for imported in _imports(tree, name, path.name == "__init__.py"):
            if imported.lazy and not lazy:
                continue
            top = imported.name.partition(".")[0]
            if top == PACKAGE:
                todo.append(imported.name)
            elif not top or top in stdlib:
                continue
            elif imported.optional:
                optional.add(top)
            else:
                importers.setdefault(top, set()).add(name)
    return Graph(
        modules=frozenset(seen),
        third_party=frozenset(importers),
        importers={top: frozenset(users) for top, users in importers.items()},
        optional=frozenset(optional - importers.keys()),
    )


def main(argv: list[str]) -> int:
    eager = "--eager" in argv
    for entry in (arg for arg in argv if arg != "--eager"):
        graph = walk(entry, lazy=not eager)
        print(f"{entry}: {len(graph.modules)} bosun modules")
        for top in sorted(graph.third_party):
            users = ", ".join(sorted(graph.importers[top]))
            print(f"  {top:<20} {users}")
        for top in sorted(graph.optional):
            print(f"  {top:<20} (optional)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
