"""``bosun dev`` and ``bosun demo``: the local control plane and the newcomer's demo.

Loaded by the top-level group only when one of these commands runs, because they need the dev
tooling (``bosun.dev``) and its dependencies, which the images do not ship.
"""

from __future__ import annotations

import pathlib
import sys

import click

from bosun.cli import _common
from bosun.dev import cluster, daemon, demo, imagebuild, provision

__all__ = [
    "COMMANDS",
    "demo_command",
    "dev",
    "dev_down",
    "dev_images",
    "dev_provision",
    "dev_status",
    "dev_up",
]

_fail = _common.fail


@click.group()
def dev() -> None:
    """The local control plane: etcd, kube-apiserver, kube-controller-manager, node emulator."""


_DIR_OPTION = click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=pathlib.Path),
    default=daemon.DEFAULT_DIR,
    show_default=True,
    help="Folder for the control plane's state, logs and kubeconfig.",
)


@dev.command("up")
@_DIR_OPTION
def dev_up(folder: pathlib.Path) -> None:
    """Start the local control plane in the background (harmless when already running)."""
    try:
        state = daemon.up(folder, log=click.echo)
    except (cluster.StartError, provision.ProvisionError) as err:
        _fail(str(err))
    click.echo(f"export KUBECONFIG={state.kubeconfig}")


@dev.command("down")
@_DIR_OPTION
def dev_down(folder: pathlib.Path) -> None:
    """Stop the local control plane and every process it started."""
    daemon.down(folder, log=click.echo)


@dev.command("status")
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=pathlib.Path),
    default=None,
    help=f"Folder of the control plane (default: {daemon.DEFAULT_DIR} here, else the last"
    " one `bosun dev up` started).",
)
def dev_status(folder: pathlib.Path | None) -> None:
    """Report whether the local control plane runs, its processes and the demo's operator."""
    state, looked = daemon.locate(folder)
    if state is None:
        click.echo("No control plane running; looked in " + ", ".join(map(str, looked)))
        sys.exit(3)
    click.echo(f"Running: supervisor pid {state.pid}, API server {state.server}")
    click.echo(f"Kubeconfig: {state.kubeconfig}")
    for name, pid in state.components.items():
        alive = pathlib.Path(f"/proc/{pid}").exists()
        click.echo(f"  {name:<24} pid {pid:<8} {'running' if alive else 'EXITED'}")
    operator = daemon.operator_info(state.folder)
    if operator is not None:
        where = (
            f"pid {operator['pid']:<8}"
            if operator.get("pid") is not None
            else f"release {operator['namespace']}/{operator['release']}"
        )
        click.echo(
            f"  {'operator':<24} {where} running;"
            f" metrics {operator['metrics']}/metrics, health {operator['health']}/healthz"
        )
    click.echo(f"Logs: {state.logs}")


@dev.command("provision")
@click.option("--all", "everything", is_flag=True, help="Also build helm and kubeconform.")
def dev_provision(everything: bool) -> None:
    """Locate or build the control-plane binaries into the cache."""
    names = provision.ALL_BINARIES if everything else provision.CORE_BINARIES
    try:
        found = provision.ensure(names, log=click.echo)
    except provision.ProvisionError as err:
        _fail(str(err))
    for name, path in found.items():
        click.echo(f"{name:<24} {path}")


@dev.command("images")
def dev_images() -> None:
    """Build the operator and runner images (cached by content) for the node emulator."""
    try:
        imagebuild.build_all()
    except imagebuild.BuildError as err:
        _fail(str(err))


@click.command("demo")
@_DIR_OPTION
def demo_command(folder: pathlib.Path) -> None:
    """Everything a newcomer needs on a bare machine: control plane, CRDs, examples, a run."""
    root = pathlib.Path.cwd()
    try:
        code = demo.run(folder, root, log=click.echo)
    except (cluster.StartError, provision.ProvisionError, RuntimeError) as err:
        _fail(str(err))
    sys.exit(code)


COMMANDS: dict[str, click.Command] = {"dev": dev, "demo": demo_command}
