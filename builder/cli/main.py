"""The `meshexp-build` group: every verb module's commands, and library errors turned
into click's one-line message and their exit code."""

from __future__ import annotations

from typing import Any

import click

from builder import __version__
from builder.cli import apiserver, build, catalog, check, identity, run
from builder.cli.cluster import cluster
from builder.cli.lab import lab
from builder.cli.registrar import registrar
from builder.core.errors import MeshexpError
from builder.core.files import path_problem


class MeshexpGroup(click.Group):
    """A group that maps the library's MeshexpError to click's output and exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MeshexpError as exc:
            raise as_click_error(exc) from exc
        except OSError as exc:
            # The last net for the file system (a path under a file, a read-only or
            # full disk): one line naming the path, never a traceback.
            where = exc.filename or "a file"
            raise click.ClickException(
                bounded(f"{where}: {path_problem(exc)}; check the path and its permissions")
            ) from exc


def as_click_error(error: MeshexpError) -> click.ClickException:
    """click's exception for a library error: its message, printed as "Error: ...", and its
    exit code (click keeps the code on the class)."""
    kind: type[click.ClickException] = type(
        type(error).__name__, (click.ClickException,), {"exit_code": error.exit_code}
    )
    return kind(bounded(error.message))


MAX_LINE = 4000  # a net: the messages themselves quote values cut short


def bounded(message: str) -> str:
    """A message whose every line is at most about MAX_LINE characters: a value quoted
    whole (a megabyte name in a catalog entry) is cut in the middle, saying how much
    went. Lines (a build log's last ones) are kept."""
    return "\n".join(_bounded_line(line) for line in message.split("\n"))


def _bounded_line(line: str) -> str:
    if len(line) <= MAX_LINE:
        return line
    cut = len(line) - MAX_LINE
    return f"{line[: MAX_LINE - 500]} ... ({cut} characters cut) ... {line[-500:]}"


@click.group(cls=MeshexpGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="meshexp-build")
def main() -> None:
    """Build and check images that bring outside workloads into a Linkerd mesh."""


for command in (
    catalog.workloads,
    catalog.schema_command,
    build.render,
    identity.certs,
    run.manifests,
    build.base,
    identity.node_cert,
    build.image,
    build.publish,
    check.doctor,
    identity.spire_server,
    run.run,
    run.keep_ready,
    run.register,
    run.stop,
    apiserver.apiserver,
    check.check,
    lab,
    cluster,
    registrar,
):
    main.add_command(command)


if __name__ == "__main__":  # pragma: no cover
    main()
