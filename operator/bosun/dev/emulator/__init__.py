"""Play kubelet for one emulated Node: run pods' containers as local processes.

No kubelet can run on these machines, so the local control plane registers a Node and this
package stands in for its kubelet (``python -m bosun.dev.emulator``): it binds pending pods to
the Node (there is no scheduler), starts each container's command as a local process group (see
``bosun.dev.images``) with the environment the kubelet would give it (``bosun.dev.podenv``) plus
in-cluster credentials (the API address, a real bound service-account token and the CA in a
folder named by ``BOSUN_SERVICEACCOUNT_DIR``), and reports ``Running`` then
``Succeeded``/``Failed`` with the real exit code and termination message. It honours deletion
(SIGTERM, then SIGKILL after the grace period), ``activeDeadlineSeconds`` and restart policies,
and offers a fault hook: the pod annotation ``emulator.bosun.dev/fault`` set to ``kill`` kills
the pod's processes abruptly and reports the failure, ``vanish`` kills them and reports nothing
more (a lost node: the pod stays Running in the API), ``pause`` stops them and ``resume``
continues. By concern: ``node`` (the Node, its heartbeat, bindings and the pod watch),
``supervisor`` (process groups), ``pods`` (the pure state machine), ``reporter`` (pod-level
API calls), ``kubelet`` (the loop that ties them together) and ``clock``.
"""

from __future__ import annotations

from bosun.dev.emulator.kubelet import Emulator

__all__ = ["Emulator"]
