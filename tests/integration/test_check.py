"""`meshexp-build check` against every catalog workload built offline, and a failing image."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import pytest
from click.testing import CliRunner

from builder.build.image import build_workload_image
from builder.check.checks import check_image
from builder.cli import main
from builder.config.catalog import find_workload, load_catalog

EXPECTED_CHECKS = {
    "metadata",
    "contents: no private key in any layer",
    "readiness",
    "workload readiness: the image's probe passes",
    "contents: binaries and their users",
    "identity",
    "capture: rules",
    "capture: inbound through the proxy",
    "capture: IPv6 never reaches the workload unmeshed",
    "capture: outbound through the proxy",
    "least privilege",
    "stop",
}


@pytest.mark.parametrize("workload", sorted(load_catalog()))
def test_every_catalog_workload_passes_check(build, workload: str) -> None:
    image = build(workload)
    report = check_image(image=image.reference)
    failures = [f"{r.name}: {r.detail}" for r in report.results if not r.passed]
    assert not failures, "\n".join(failures)
    assert {result.name for result in report.results} == EXPECTED_CHECKS
    # Tried for real: the check's network is dual-stack on CI's engine.
    ipv6 = next(r for r in report.results if r.name.startswith("capture: IPv6"))
    assert ipv6.detail.startswith("[fd"), ipv6.detail


INVENTORY = """\
name: inventory
namespace: shop
ports:
  - {name: http, port: 8080, app_protocol: http}
user: {name: inventory, uid: 2400}
debian: {packages: [busybox]}
command: [/bin/busybox, httpd, -f, -p, "8080", -h, /etc]
"""


def test_a_workload_of_ones_own_catalog_builds_runs_and_passes_check(
    offline_settings, tmp_path: Path
) -> None:
    """Not in the built-in catalog: an entry in a folder of one's own (--catalog)."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "inventory.yaml").write_text(INVENTORY)
    assert "inventory" not in load_catalog()
    settings = offline_settings.with_(catalog=(folder,)).check()
    workload = find_workload("inventory", settings.catalog)
    image = build_workload_image(workload=workload, settings=settings)
    report = check_image(image=image.reference)
    failures = [f"{r.name}: {r.detail}" for r in report.results if not r.passed]
    assert not failures, "\n".join(failures)
    identity = next(r for r in report.results if r.name == "identity")
    assert "/ns/shop/externalworkload/inventory" in identity.detail


def test_check_cli_json_and_junit(smiley_image, tmp_path: Path) -> None:
    junit = tmp_path / "check.xml"
    result = CliRunner().invoke(
        main,
        ["check", smiley_image.reference, "-o", "json", "--junit", str(junit)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # the JSON alone: the summary line went to stderr
    assert f"{smiley_image.reference}: all {len(EXPECTED_CHECKS)} checks passed" in result.stderr
    assert data["passed"] is True
    suite = ElementTree.parse(junit).getroot()
    assert suite.get("failures") == "0"
    assert len(suite.findall("testcase")) == len(EXPECTED_CHECKS)


def test_a_failing_image_fails_check_with_exit_5(engine, smiley_image, tmp_path: Path) -> None:
    """An image whose proxy runs as root: least privilege and capture must fail."""
    broken = f"{smiley_image.reference.split(':')[0]}:broken"
    context = tmp_path / "broken"
    context.mkdir()
    (context / "Dockerfile").write_text(
        f"FROM {smiley_image.reference}\n"
        "LABEL io.meshexp.proxy-uid=0\n"
        "COPY key.pem /etc/leaked.pem\n"
    )
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (context / "key.pem").write_bytes(key)
    engine.images.build(path=str(context), tag=broken, rm=True)
    try:
        result = CliRunner().invoke(main, ["check", broken], catch_exceptions=False)
    finally:
        engine.images.remove(broken, force=True)
    assert result.exit_code == 5
    lines = {
        line.split("  ", 1)[1].split("  ")[0].strip(): line
        for line in result.output.splitlines()
        if line.startswith(("PASS", "FAIL"))
    }
    assert lines["contents: no private key in any layer"].startswith("FAIL")
    assert "/etc/leaked.pem" in lines["contents: no private key in any layer"]
    assert lines["capture: rules"].startswith("FAIL")  # no --uid-owner 0 exemption exists
    assert lines["readiness"].startswith("PASS")
    assert "failed" in result.output


def test_multicall_spire_image_passes_check(engine, offline_settings) -> None:
    """The opt-in single SPIRE binary (server, agent, certcheck) meets the contract too."""

    from builder.build.image import build_workload_image
    from builder.config.catalog import find_workload

    settings = offline_settings.with_(
        spire_multicall=True, image_name="meshexp-test/multicall-{workload}"
    ).check()
    image = build_workload_image(workload=find_workload("smiley"), settings=settings)
    assert image.labels["io.meshexp.spire-multicall"] == "true"
    report = check_image(image=image.reference)
    failures = [f"{r.name}: {r.detail}" for r in report.results if not r.passed]
    assert not failures, "\n".join(failures)
