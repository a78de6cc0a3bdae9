"""`check` and `doctor`: an image against the mesh contract, and what a build needs."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from builder.check.doctor import diagnose, e2e_findings, registry_findings
from builder.check.walkthrough.kind import kind_e2e_config, kind_inputs, kind_online_config
from builder.check.walkthrough.run import run_e2e
from builder.check.walkthrough.steps import E2EConfig
from builder.check.walkthrough.walk import E2EResult
from builder.cli.display import display
from builder.cli.options import (
    emit_json,
    lab_option,
    output_option,
    parse_env,
    pull_options,
    setting_options,
    settings_from,
)
from builder.cluster.providers import PROVIDERS
from builder.cluster.registry_hosts import check_node_mirrors
from builder.config.settings import Settings
from builder.core.errors import CheckError, MeshexpError
from builder.lab.check import check_image_in_lab
from builder.lab.layout import LabError
from builder.lab.programs import linkerd_version as cli_release

F = TypeVar("F", bound=Callable[..., Any])


def cluster_option(help_text: str) -> Callable[[F], F]:
    """`--cluster k3d|kind` (default k3d), as check and doctor take it."""
    return click.option(
        "--cluster",
        "cluster_provider",
        type=click.Choice(PROVIDERS),
        default="k3d",
        show_default=True,
        help=help_text,
    )


def walkthrough_release(settings: Settings) -> Settings:
    """The external workloads' proxy is of the release the linkerd CLI on PATH installs
    (`linkerd version --client`), unless --linkerd-version or the settings file names one;
    without that CLI, the prerequisites say so."""
    linkerd = shutil.which("linkerd")
    if "linkerd_version" in settings.model_fields_set or linkerd is None:
        return settings
    try:
        release = cli_release(Path(linkerd))
    except LabError as exc:
        raise CheckError("e2e: " + exc.message.removeprefix("lab: ")) from None
    return settings.with_(linkerd_version=release).check()


def e2e_online(cluster_provider: str, keep: bool, pulls: dict[str, Any]) -> E2EResult:
    """The walk-through with upstream's images, tools and chart (registry access, or the
    mirrors of `pulls`, --pull and --mirror, or the settings file's), the external
    workloads' proxy of the linkerd CLI's release unless `pulls` names one."""
    settings = walkthrough_release(settings_from(dict(pulls)))
    if settings.mirrors and cluster_provider != "kind":
        raise click.UsageError(
            "mirrors reach the walk-through's cluster on kind (--cluster kind); for k3d give "
            "its nodes a registries.yaml yourself and drop --mirror"
        )
    check_node_mirrors(settings.mirrors)
    findings = e2e_findings(diagnose(settings=settings), cluster_provider, settings.mirrors)
    missing = [finding.fix for finding in findings if not finding.ok]
    if missing:
        raise CheckError("the end-to-end test cannot run here: " + "; ".join(missing))
    config = E2EConfig(keep=keep, linkerd_version=settings.linkerd_version)
    with display("auto", verbose=False) as progress:
        if cluster_provider == "kind":
            config = kind_online_config(config, settings=settings, progress=progress)
        return run_e2e(config=config, settings=settings, progress=progress)


def e2e_offline_kind(
    keep: bool, linkerd_dir: Path, faces_dir: Path, proxy: Path, release: str | None = None
) -> E2EResult:
    """The walk-through on kind with every image made here from the given programs."""
    settings = settings_from({"offline": True, "proxy_file": proxy, "linkerd_version": release})
    inputs = kind_inputs(linkerd_dir=linkerd_dir, faces_dir=faces_dir, proxy=proxy)
    with display("auto", verbose=False) as progress:
        config = kind_e2e_config(E2EConfig(keep=keep), progress=progress, **inputs)
        return run_e2e(config=config, settings=settings, progress=progress)


def run_walkthrough(
    cluster_provider: str,
    keep: bool,
    linkerd_dir: Path | None,
    faces_dir: Path | None,
    proxy: Path | None,
    pulls: dict[str, Any],
) -> E2EResult:
    """Offline on kind when all three program inputs are given, else online (through
    the mirrors and pull policy of `pulls`)."""
    given = [linkerd_dir, faces_dir, proxy]
    if not any(path is not None for path in given):
        return e2e_online(cluster_provider, keep, pulls)
    if pulls["pull"] is not None or pulls["mirrors"]:
        raise click.UsageError(
            "--pull and --mirror are for the online walk-through; the offline one "
            "(--linkerd-programs, --faces-programs, --proxy-file) pulls nothing"
        )
    if cluster_provider != "kind" or linkerd_dir is None or faces_dir is None or proxy is None:
        raise click.UsageError(
            "the offline walk-through runs on kind and needs all of --linkerd-programs DIR, "
            "--faces-programs DIR and --proxy-file FILE (nothing is pulled: every image is "
            "made from them); give none of them to use upstream's images"
        )
    return e2e_offline_kind(keep, linkerd_dir, faces_dir, proxy, pulls.get("linkerd_version"))


@click.command()
@click.argument("image_ref", metavar="IMAGE", required=False)
@click.option(
    "--e2e",
    "for_e2e",
    is_flag=True,
    help="Run the end-to-end walk-through instead, on a throwaway cluster.",
)
@cluster_option(
    "With --e2e: k3d (needs registry access) or kind (online with upstream's images, "
    "or offline with every image made here from --linkerd-programs, --faces-programs and "
    "--proxy-file)."
)
@click.option(
    "--linkerd-programs",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="With --e2e --cluster kind, offline: Linkerd's programs built from source (controller, "
    "linkerd-policy-controller, proxy-identity, proxy-init, linkerd).",
)
@click.option(
    "--faces-programs",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="With --e2e --cluster kind, offline: the Faces programs (smiley, color, face, gui), "
    "gui-assets/index.html and faces-chart-2.0.0.tgz.",
)
@click.option(
    "--proxy-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="With --e2e --cluster kind, offline: the linkerd2-proxy for every image.",
)
@click.option(
    "--linkerd-version",
    help="With --e2e: the Linkerd release of the external workloads' proxy (a line or an "
    "edge release). Default: the settings file's, else the release of the linkerd CLI that "
    "installs the control plane.",
)
@click.option("--keep", is_flag=True, help="With --e2e: keep the cluster for debugging.")
@click.option(
    "--certs",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Certificates to mount (default: a fresh set from `certs`).",
)
@click.option("--env", "env_pairs", multiple=True, help="NAME=VALUE for the container (repeat).")
@click.option(
    "--timeout",
    type=float,
    default=120,
    show_default=True,
    help="Seconds the image may take to come up.",
)
@click.option(
    "--junit",
    "junit_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the results as JUnit XML.",
)
@lab_option(
    "Also check outbound through the control plane of the lab in this folder: a "
    "call to a second instance completes over mTLS."
)
@click.option(
    "--catalog",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="With --lab: a folder of your own entries, where the image's workload is.",
)
@pull_options
@output_option
def check(
    image_ref: str | None,
    for_e2e: bool,
    cluster_provider: str,
    linkerd_programs: Path | None,
    faces_programs: Path | None,
    proxy_file: Path | None,
    linkerd_version: str | None,
    keep: bool,
    certs: Path | None,
    env_pairs: tuple[str, ...],
    timeout: float,
    junit_file: Path | None,
    lab_dir: Path | None,
    catalog: tuple[Path, ...],
    pull: str | None,
    mirrors: tuple[str, ...],
    output_format: str,
) -> None:
    """Start IMAGE as the field does and check it against the mesh contract."""
    if for_e2e:
        outcome = run_walkthrough(
            cluster_provider,
            keep,
            linkerd_programs,
            faces_programs,
            proxy_file,
            {"pull": pull, "mirrors": mirrors or None, "linkerd_version": linkerd_version},
        )
        emit_json(dataclasses.asdict(outcome))
        return
    if image_ref is None:
        raise click.UsageError("give IMAGE (or --e2e)")
    report = check_image_in_lab(
        image=image_ref,
        certs=certs,
        env=parse_env(env_pairs),
        timeout=timeout,
        lab_dir=lab_dir,
        catalog=catalog,
    )
    if junit_file is not None:
        junit_file.write_text(report.junit() + "\n", encoding="utf-8")
    if output_format == "json":
        emit_json(dataclasses.asdict(report) | {"passed": report.passed})
    else:
        for result in report.results:
            mark = "PASS" if result.passed else "FAIL"
            click.echo(f"{mark}  {result.name:<38} {result.detail}")
    failed = [result.name for result in report.results if not result.passed]
    if failed:
        raise CheckError(f"{image_ref} failed {len(failed)} check(s): {', '.join(failed)}")
    # With -o json, stdout holds the one JSON document and nothing else.
    click.echo(f"{image_ref}: all {len(report.results)} checks passed", err=output_format == "json")


@click.command()
@click.option(
    "--e2e", "for_e2e", is_flag=True, help="Also what the online end-to-end walk-through needs."
)
@click.option(
    "--registries",
    "registries_only",
    is_flag=True,
    help="Only whether the online profile's registries (or their mirrors) answer now: "
    "exit 0 where all do (make demo's choice between online and offline).",
)
@cluster_option("With --e2e: the cluster provider it would run on.")
@output_option
@setting_options
def doctor(
    for_e2e: bool,
    registries_only: bool,
    cluster_provider: str,
    output_format: str,
    **options: Any,
) -> None:
    """Report what a build needs and what is missing, with the fix for each."""
    settings = settings_from(options)
    findings = registry_findings(settings) if registries_only else diagnose(settings=settings)
    if for_e2e:
        findings += e2e_findings(findings, cluster_provider, settings.mirrors)
    if output_format == "json":
        emit_json([dataclasses.asdict(finding) for finding in findings])
    else:
        for finding in findings:
            mark = "ok  " if finding.ok else "FAIL"
            fix = f"\n       fix: {finding.fix}" if finding.fix and not finding.ok else ""
            click.echo(f"{mark} {finding.what:<13} {finding.detail}{fix}")
    if not all(finding.ok for finding in findings):
        if registries_only:
            raise MeshexpError("the online profile's registries do not all answer: see above")
        raise MeshexpError("a build could not succeed: fix the FAIL lines above")
