"""The lab's pure parts: addresses, the proxy's environment, EndpointSlices, DNS."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from builder.cli import main
from builder.cluster.apiserver import linkerd_crds
from builder.lab.dns import dns_records
from builder.lab.layout import (
    Addresses,
    Lab,
    LabError,
    LabSources,
    ipv6_subnet_beside,
    pick_subnet,
)
from builder.lab.objects import endpoint_slice
from builder.lab.pods import PodPlan, proxy_environment
from builder.lab.programs import entrypoint_program, linkerd_version, program_images
from harness import equipment
from tests.conftest import need


def test_subnet_avoids_every_network_the_engine_holds() -> None:
    assert pick_subnet(["172.17.0.0/16"]) == "10.213.0.0/24"
    assert pick_subnet(["10.213.0.0/24", "10.213.1.0/25"]) == "10.213.2.0/24"
    with pytest.raises(LabError, match="no free /24"):
        pick_subnet(["10.213.0.0/16"])


def test_a_dual_stack_lab_takes_the_ipv6_subnet_named_after_its_ipv4_one() -> None:
    subnet = ipv6_subnet_beside("10.213.7.0/24", ["172.17.0.0/16", "fd00:10:213:6::/64"])
    assert subnet == "fd00:10:213:7::/64"
    with pytest.raises(LabError, match="without --ipv6"):
        ipv6_subnet_beside("10.213.7.0/24", ["fd00:10:213::/48"])


def test_the_labs_state_keeps_its_ipv6_subnet(tmp_path: Path) -> None:
    for ipv6 in ("", "fd00:10:213:7::/64"):
        lab = Lab("l", tmp_path, "l", Addresses("10.213.7.0/24", ipv6), tmp_path / "kubeconfig")
        lab.save()
        assert Lab.load(tmp_path).addresses == lab.addresses


def test_fixed_addresses_sit_below_the_engines_own_range() -> None:
    addresses = Addresses("10.213.4.0/24")
    assert (addresses.gateway, addresses.apiserver, addresses.dns) == (
        "10.213.4.1",
        "10.213.4.2",
        "10.213.4.3",
    )
    assert set(addresses.pods.values()) == {"10.213.4.10", "10.213.4.11"}
    assert addresses.dynamic == "10.213.4.128/25"


def test_proxy_environment_is_what_a_kubelet_would_give() -> None:
    spec = {
        "containers": [],
        "initContainers": [
            {
                "name": "linkerd-proxy",
                "env": [
                    {
                        "name": "_pod_ns",
                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                    },
                    {
                        "name": "_pod_name",
                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                    },
                    {
                        "name": "_pod_sa",
                        "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}},
                    },
                    {"name": "IPS", "valueFrom": {"fieldRef": {"fieldPath": "status.podIPs"}}},
                    {"name": "WORKLOAD", "value": '{"ns":"$(_pod_ns)", "pod":"$(_pod_name)"}'},
                    {"name": "LOCAL", "value": "$(_pod_sa).$(_pod_ns).serviceaccount.identity"},
                    {"name": "LATER", "value": "$(NOT_YET)"},
                    {"name": "NOT_YET", "value": "x"},
                    {
                        "name": "ANCHORS",
                        "valueFrom": {"configMapKeyRef": {"name": "roots", "key": "ca-bundle.crt"}},
                    },
                ],
            }
        ],
    }
    plan = PodPlan(
        "destination", "linkerd-destination-lab", "linkerd-destination", "10.0.0.11", spec
    )
    roots = {"kind": "ConfigMap", "metadata": {"name": "roots"}, "data": {"ca-bundle.crt": "PEM"}}
    env = proxy_environment(plan, [roots])
    assert env["WORKLOAD"] == '{"ns":"linkerd", "pod":"linkerd-destination-lab"}'
    assert env["LOCAL"] == "linkerd-destination.linkerd.serviceaccount.identity"
    assert env["IPS"] == "10.0.0.11"
    assert env["LATER"] == "$(NOT_YET)"  # as a kubelet: only variables defined before
    assert env["ANCHORS"] == "PEM"


def test_endpoint_slice_resolves_named_target_ports() -> None:
    service = {
        "metadata": {"name": "linkerd-policy-validator"},
        "spec": {"ports": [{"name": "policy-https", "port": 443, "targetPort": "policy-https"}]},
    }
    deployment = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "policy",
                            "ports": [{"name": "policy-https", "containerPort": 9443}],
                        }
                    ]
                }
            }
        }
    }
    piece = endpoint_slice(
        service, "destination", "linkerd-destination-lab", deployment, "10.0.0.11"
    )
    assert piece["ports"] == [{"name": "policy-https", "port": 9443, "protocol": "TCP"}]
    assert piece["metadata"]["labels"] == {"kubernetes.io/service-name": "linkerd-policy-validator"}
    [endpoint] = piece["endpoints"]
    assert endpoint["targetRef"] == {
        "kind": "Pod",
        "name": "linkerd-destination-lab",
        "namespace": "linkerd",
    }


def test_dns_answers_linkerds_names_with_the_pods_and_keeps_extra_names() -> None:
    lab = Lab("l", Path("/tmp/x"), "l", Addresses("10.213.9.0/24"), Path("/tmp/x/kubeconfig"))
    records = dns_records(lab, {"smiley.faces.svc.cluster.local": "10.96.0.7"})
    assert records["linkerd-dst-headless.linkerd.svc.cluster.local"] == "10.213.9.11"
    assert records["linkerd-identity-headless.linkerd.svc.cluster.local"] == "10.213.9.10"
    assert records["linkerd-policy.linkerd.svc.cluster.local"] == "10.213.9.11"
    assert records["smiley.faces.svc.cluster.local"] == "10.96.0.7"


def test_the_program_an_entrypoint_runs_is_past_its_init() -> None:
    assert entrypoint_program(["/usr/bin/tini", "--", "/usr/lib/linkerd/proxy-identity"]) == (
        "/usr/lib/linkerd/proxy-identity"
    )
    assert entrypoint_program(["/controller"]) == "/controller"


def test_the_cli_release_names_the_images() -> None:
    cli = equipment.CONTROL_PLANE / "linkerd"
    need(cli.is_file(), f"the linkerd CLI in {cli}")
    assert linkerd_version(cli) == "edge-26.8.3"  # its README: stamped edge-26.8.3
    with pytest.raises(LabError, match="version --client --short"):
        linkerd_version(Path("/bin/false"))


def test_the_crds_are_rendered_without_a_cluster_to_ask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`lab up` and `apiserver` without --crds: no kubeconfig exists before the lab does."""
    cli = equipment.CONTROL_PLANE / "linkerd"
    need(cli.is_file(), f"the linkerd CLI in {cli}")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config either
    (rendered,) = linkerd_crds(cli)
    kinds = [doc["kind"] for doc in yaml.safe_load_all(rendered) if doc]
    assert kinds
    assert set(kinds) == {"CustomResourceDefinition"}
    assert "externalworkloads.workload.linkerd.io" in rendered


def test_lab_up_refuses_a_missing_crds_file_before_starting_anything(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["lab", "up", "--dir", str(tmp_path / "lab"), "--crds", str(tmp_path / "nope.yaml")]
    )
    assert result.exit_code == 2
    assert "nope.yaml' does not exist" in result.output
    assert not (tmp_path / "lab").exists()


def test_the_programs_are_kept_with_the_lab_for_its_pods_restarts(tmp_path: Path) -> None:
    programs = {}
    for name in ("controller", "policy-controller", "proxy-identity", "proxy", "linkerd"):
        programs[name.replace("-", "_")] = tmp_path / name
        (tmp_path / name).write_bytes(b"\x7fELF")
    LabSources(**programs).check().save(tmp_path)
    assert LabSources.load(tmp_path) == LabSources(**programs).check()
    (tmp_path / "proxy").unlink()  # a program gone since: named, not a traceback
    with pytest.raises(LabError, match=r"the proxy program .* is not a file"):
        LabSources.load(tmp_path)


def test_lab_certs_without_a_lab_names_the_fix(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["lab", "certs", "--dir", str(tmp_path / "none")])
    assert result.exit_code != 0
    assert "no lab in" in result.output
    assert "meshexp-build lab up" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("release", "policy"),
    [
        ("edge-25.4.4", ("cr.l5d.io/linkerd/policy-controller:edge-25.4.4", None)),
        ("edge-25.8.2", ("cr.l5d.io/linkerd/policy-controller:edge-25.8.2", None)),
        ("edge-25.8.3", ("cr.l5d.io/linkerd/controller:edge-25.8.3", "/linkerd-policy-controller")),
        ("edge-26.8.3", ("cr.l5d.io/linkerd/controller:edge-26.8.3", "/linkerd-policy-controller")),
    ],
)
def test_the_policy_controller_comes_from_the_controller_image_from_edge_25_8_3(
    release: str, policy: tuple[str, str | None]
) -> None:
    """Upstream stopped publishing the policy-controller image at edge-25.8.3."""
    images = program_images(release)
    assert images["policy_controller"] == policy
    assert images["controller"] == (f"cr.l5d.io/linkerd/controller:{release}", None)
    assert images["proxy"] == (
        f"cr.l5d.io/linkerd/proxy:{release}",
        "/usr/lib/linkerd/linkerd2-proxy",
    )
