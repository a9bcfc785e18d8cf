"""Writes ``v1-output-rejected.json``: the first journal with an ``outputRejected`` record.

Run against the runner of the commit that added ``Agent.spec.outputSchema`` (records carry
``formatVersion`` 1 by then), from the repository root::

    PYTHONPATH=operator:tests .venv/bin/python tests/runner/golden/make_output_rejected.py

A scripted Agent with an ``outputSchema`` answers in prose, then JSON missing a field, then
valid JSON: two answers rejected, then the Run finished. The file holds the stored records and
what this runner's ``replay.State`` and ``runtrace.render`` made of them (``expected``), as the
version-1 files do. Kept for the record of how the file was made; it is not run by the tests.
"""

from __future__ import annotations

import json
import pathlib

from bosun.runner import conversation, replay, runtrace
from bosun.runner import records as kinds
from runner import test_loop

SCHEMA = {
    "type": "object",
    "properties": {"category": {"enum": ["billing", "bug"]}, "urgent": {"type": "boolean"}},
    "required": ["category", "urgent"],
}
SCRIPT = [
    {"reply": "It is about billing."},
    {"reply": '{"category": "billing"}'},
    {"reply": '{"category": "billing", "urgent": false}'},
]


def main() -> None:
    world = test_loop.World(SCRIPT, outputSchema=SCHEMA)
    world.execute()
    stored = list(world.store.records)
    journaled = kinds.read_all(stored)
    state = replay.State.build(journaled)
    told = [m for m in state.messages("go") if isinstance(m, conversation.ToolResults)]
    last = state.last_turn()
    expected = {
        "output": state.finished.output if state.finished else None,
        "usage": state.usage(),
        "done": [[o.call_id, o.content, o.is_error] for m in told for o in m.outcomes],
        "open": [[c.call.id, c.unknown] for c in state.open_calls()],
        "answered": bool(last and last[1].is_final),
        "trace": runtrace.render(journaled, "run").splitlines(),
        "rejected": {str(step): problems for step, problems in state.rejected.items()},
    }
    out = pathlib.Path(__file__).parent / "v1-output-rejected.json"
    scenario = "outputSchema: two answers rejected and returned to the model, then finished"
    document = {"scenario": scenario, "records": stored, "expected": expected}
    out.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
