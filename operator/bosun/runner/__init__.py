"""The runner: the data plane that executes one attempt of a Run inside its Job.

It is the only place a tool is ever called. It acquires the Run's Lease, replays the Run's
journal, then drives the agent loop (model call → governed tool calls → repeat) and reports
through the Run's status, Events, structured logs and its exit code (``contract.ExitCode``).
``python -m bosun.runner`` is the entrypoint; ``app.main`` wires the parts together.
"""

from __future__ import annotations
