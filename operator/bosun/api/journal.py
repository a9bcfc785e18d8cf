"""The RunJournal Kind: one chunk of a Run's durable journal, readable only where granted.

A Run's journal (model responses, tool results, every governance decision) is written by its
runner as chunks ``bosun-journal-<run>-<k>``, each owned (controller reference) by the Run.
They are a Kind of their own, not ConfigMaps, so the built-in `view` and `edit` roles, which
read every ConfigMap of a namespace, do not reach them: the operator, the Run's runner and
whoever is granted the chart's journal-reader role read them. `binaryData` holds the chunk's
segments (zlib-compressed JSON lines, base64), as a ConfigMap's would; the annotations carry
the writer's fencing epoch. Not in the `bosun` category: `kubectl get bosun` lists what people
write, not the runners' records. Journals written before this Kind existed are ConfigMaps of
the same name, still read (see ``bosun.runner.journal_chunks``).
"""

from __future__ import annotations

from typing import Annotated, Literal

import pydantic

from bosun import constants
from bosun.api import common

__all__ = ["KIND", "RunJournal", "RunJournalSpec", "RunJournalStatus"]

_SEGMENT = Annotated[str, pydantic.Field(max_length=2_000_000)]


class RunJournalSpec(common.Model):
    """Which Run this chunk belongs to; written once by the runner that creates it."""

    model_config = pydantic.ConfigDict(json_schema_extra=common.immutable_fields())

    run_name: common.DNSSubdomain
    """Name of the Run whose journal this is."""
    run_uid: str = pydantic.Field(alias="runUID", min_length=1, max_length=64)
    """UID of that Run (as in the controller owner reference)."""
    chunk: int = pydantic.Field(ge=0, lt=constants.JOURNAL_MAX_CHUNKS)
    """Position of this chunk in the journal, from 0."""


class RunJournalStatus(common.Status):
    """Unused: a journal chunk is data, and nothing observes it."""


class RunJournal(common.Resource):
    """One chunk of a Run's journal, written only by that Run's runner."""

    kind: Literal["RunJournal"] = "RunJournal"
    """Kind of the object: RunJournal."""
    spec: RunJournalSpec
    """The Run this chunk belongs to."""
    binary_data: dict[str, _SEGMENT] = pydantic.Field(default_factory=dict, max_length=4096)
    """The chunk's segments by key (`s000000`, …): compressed records, base64."""
    status: RunJournalStatus = pydantic.Field(default_factory=RunJournalStatus)
    """Unused."""


KIND = common.KindInfo(
    model=RunJournal,
    plural="runjournals",
    short_names=("rj",),
    columns=(
        common.PrinterColumn("Run", ".spec.runName", description="The Run"),
        common.PrinterColumn("Chunk", ".spec.chunk", type="integer", description="Position"),
        common.AGE_COLUMN,
    ),
)
