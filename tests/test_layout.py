"""The package's layout rules from the style guide, checked on the source: small modules, each
with a docstring and a truthful ``__all__`` (or a private name)."""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "operator" / "bosun"
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)
MAX_LINES = 500
NOT_EXPORTED = {"log"}  # every module's logger


def _ids(paths: list[pathlib.Path]) -> list[str]:
    return [str(p.relative_to(PACKAGE)) for p in paths]


def _top_level_names(tree: ast.Module) -> tuple[list[str], list[str] | None]:
    """The names a module binds at its top level, and its ``__all__`` (None when it has none)."""
    names: list[str] = []
    exported: list[str] | None = None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            targets = [node.name]
        elif isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            targets = [node.target.id]
        else:
            continue
        for target in targets:
            if target == "__all__":
                value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
                assert value is not None
                exported = list(ast.literal_eval(value))
            else:
                names.append(target)
    return names, exported


@pytest.mark.parametrize("path", MODULES, ids=_ids(MODULES))
def test_modules_stay_small(path: pathlib.Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines; split it by concern"


@pytest.mark.parametrize("path", MODULES, ids=_ids(MODULES))
def test_every_module_says_its_job_and_exports_truthfully(path: pathlib.Path) -> None:
    tree = ast.parse(path.read_text())
    names, exported = _top_level_names(tree)
    if path.name != "__init__.py" or tree.body:
        assert ast.get_docstring(tree), f"{path.name} opens without a docstring"
    public = [n for n in names if not n.startswith("_") and n not in NOT_EXPORTED]
    if path.name == "__main__.py" or (path.stem.startswith("_") and path.stem != "__init__"):
        return
    if exported is None:
        assert not public, f"public names without an __all__: {public}"
        return
    assert sorted(set(public) - set(exported)) == [], "public names missing from __all__"
    bound = set(names) | {
        alias.asname or alias.name.split(".")[0]
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert sorted(set(exported) - bound) == [], "__all__ names what the module does not define"
