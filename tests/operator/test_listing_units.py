"""The operator's initial listing fetches a page at a time and follows continue tokens."""

from __future__ import annotations

from typing import Any

from bosun.controller import controller, store


class _Pages:
    """Answers list requests from fixed pages, recording each query."""

    def __init__(self, pages: list[list[str]]) -> None:
        self.pages = pages
        self.queries: list[dict[str, str]] = []

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        assert (method, path) == ("GET", "/apis/batch/v1/namespaces/n/jobs")
        query = dict(kwargs["query"])
        self.queries.append(query)
        index = int(query.get("continue", "0"))
        token = str(index + 1) if index + 1 < len(self.pages) else ""
        items = [{"metadata": {"name": name}} for name in self.pages[index]]
        return {"metadata": {"continue": token}, "items": items}


def test_the_listing_follows_every_page_in_order() -> None:
    rest = _Pages([["a", "b"], ["c"], ["d", "e"]])
    found = store.list_pages(rest, "batch/v1", "jobs", "n", "app=x", page_size=controller.LIST_PAGE)  # type: ignore[arg-type]
    assert [obj["metadata"]["name"] for obj in found] == ["a", "b", "c", "d", "e"]
    limit = str(controller.LIST_PAGE)
    assert rest.queries == [
        {"limit": limit, "labelSelector": "app=x"},
        {"limit": limit, "labelSelector": "app=x", "continue": "1"},
        {"limit": limit, "labelSelector": "app=x", "continue": "2"},
    ]
