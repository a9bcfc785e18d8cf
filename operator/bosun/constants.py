"""Names shared by every part of Bosun: the API group, labels, annotations and condition types.

One place for every string that two parts of the system must agree on, so that the operator,
the runner, the chart and the dev tooling never drift apart.
"""

from __future__ import annotations

GROUP = "bosun.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

KINDS = ("Agent", "Tool", "Policy", "Run", "Approval")
CATEGORY = "bosun"

# Labels and annotations.
LABEL_DEAD_LETTER = f"{GROUP}/dead-letter"
LABEL_RUN = f"{GROUP}/run"
LABEL_ATTEMPT = f"{GROUP}/attempt"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"

# The node emulator (dev tooling) reads this annotation on pods as its fault hook.
ANNOTATION_EMULATOR_FAULT = f"emulator.{GROUP}/fault"
EMULATOR_NODE_NAME = "bosun-emulator"
EMULATOR_SERVICEACCOUNT_DIR_ENV = "BOSUN_SERVICEACCOUNT_DIR"
EMULATOR_TERMINATION_LOG_ENV = "BOSUN_TERMINATION_LOG"
"""Where the emulator's container writes its termination message (a kubelet mounts
``terminationMessagePath``, /dev/termination-log, instead)."""
