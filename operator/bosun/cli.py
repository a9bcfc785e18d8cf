"""The ``bosun`` command line: thin click commands over the package's modules.

Each command parses its options, calls one function elsewhere in the package and turns known
errors into a one-line message and a non-zero exit code; no logic lives here.
"""

from __future__ import annotations

import pathlib
import sys

import click

from bosun.dev import cluster, daemon, demo, provision

__all__ = ["main"]


def _fail(message: str) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def app() -> None:
    """Bosun: run AI agents on Kubernetes as governed, retried, observable Runs."""


@app.group()
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
@_DIR_OPTION
def dev_status(folder: pathlib.Path) -> None:
    """Report whether the local control plane runs, and its processes."""
    state = daemon.read_state(folder.resolve())
    if state is None:
        click.echo(f"No control plane running in {folder.resolve()}")
        sys.exit(3)
    click.echo(f"Running: supervisor pid {state.pid}, API server {state.server}")
    click.echo(f"Kubeconfig: {state.kubeconfig}")
    for name, pid in state.components.items():
        alive = pathlib.Path(f"/proc/{pid}").exists()
        click.echo(f"  {name:<24} pid {pid:<8} {'running' if alive else 'EXITED'}")
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


@app.command("demo")
@_DIR_OPTION
def demo_command(folder: pathlib.Path) -> None:
    """Everything a newcomer needs on a bare machine: control plane, CRDs, examples, a run."""
    root = pathlib.Path.cwd()
    try:
        code = demo.run(folder, root, log=click.echo)
    except (cluster.StartError, provision.ProvisionError, RuntimeError) as err:
        _fail(str(err))
    sys.exit(code)


@app.command("operator")
@click.option("--kubeconfig", default=None, help="Kubeconfig to use (default: KUBECONFIG).")
@click.option("--verbose", is_flag=True, help="Log debug details, kopf's included.")
def operator_command(kubeconfig: str | None, verbose: bool) -> None:
    """Run the operator against the current kubeconfig (what the Helm chart runs)."""
    from bosun import kube
    from bosun.controller import main as operator_main

    try:
        sys.exit(operator_main.run(kubeconfig, verbose))
    except kube.ConfigError as err:
        _fail(str(err))


@app.command("crds")
def crds() -> None:
    """Print Bosun's CustomResourceDefinitions as YAML (for kubectl apply -f -)."""
    from bosun.api import crdgen

    click.echo(crdgen.render_stream(), nl=False)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bosun`` console script."""
    app.main(args=argv, prog_name="bosun", standalone_mode=True)
    return 0
