"""The static import walk (importgraph) that the image tests rely on, on a package made here."""

from __future__ import annotations

import pathlib
import textwrap

import importgraph
import pytest

FILES = {
    "bosun/__init__.py": "import x_package\n",
    "bosun/a.py": """
        from __future__ import annotations
        import json
        from typing import TYPE_CHECKING
        import x_eager.sub
        from . import b
        if TYPE_CHECKING:
            import x_typing
        else:
            import x_not_typing
        try:
            import x_optional
        except ImportError:
            x_optional = None
        def later():
            import x_lazy
            from bosun import c
        """,
    "bosun/b.py": "import os\nfrom x_b import thing\nfrom bosun.sub import d\n",
    "bosun/c.py": "import x_c\n",
    "bosun/sub/__init__.py": "",
    "bosun/sub/d.py": "from .. import c\nfrom . import e\n",
    "bosun/sub/e.py": "import x_e\n",
    "bosun/unused.py": "import x_unused\n",
}


@pytest.fixture
def root(tmp_path: pathlib.Path) -> pathlib.Path:
    for name, text in FILES.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path


def test_walk_follows_lazy_relative_and_parent_imports(root: pathlib.Path) -> None:
    graph = importgraph.walk("bosun.a", root=root)
    assert graph.modules == {
        "bosun",
        "bosun.a",
        "bosun.b",
        "bosun.c",
        "bosun.sub",
        "bosun.sub.d",
        "bosun.sub.e",
    }
    assert graph.third_party == {
        "x_package",
        "x_eager",
        "x_not_typing",
        "x_lazy",
        "x_b",
        "x_c",
        "x_e",
    }
    assert graph.optional == {"x_optional"}
    assert graph.importers["x_c"] == {"bosun.c"}


def test_eager_walk_stops_at_function_bodies(root: pathlib.Path) -> None:
    graph = importgraph.walk("bosun.a", lazy=False, root=root)
    assert "x_lazy" not in graph.third_party
    # bosun.c is still reached, eagerly, through bosun.sub.d.
    assert "bosun.c" in graph.modules
    assert "x_c" in graph.third_party


def test_unknown_entry_point_is_an_error(root: pathlib.Path) -> None:
    with pytest.raises(LookupError):
        importgraph.walk("bosun.missing", root=root)
