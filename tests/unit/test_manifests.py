"""ExternalWorkload manifests: fields, IP checks by release, and where Ready goes."""

from __future__ import annotations

import json
import shlex

import pytest
import yaml

from builder.build.from_image import ImageConfig, from_entry, resolve
from builder.cluster.manifests import (
    OPAQUE_PORTS,
    build_manifests,
    left_out_line,
    listed_addresses,
    opaque_ports_of,
    service_document,
)
from builder.config.catalog import find_workload
from builder.config.settings import load_settings
from builder.core.errors import MeshexpError


def make(ips: list[str], linkerd: str = "2.18"):
    return build_manifests(
        workload=find_workload("smiley"),
        settings=load_settings(None, {"linkerd_version": linkerd}),
        ips=ips,
    )


def test_external_workload_and_service_fields() -> None:
    result = make(["172.18.0.5"])
    external, service = yaml.safe_load_all(result.yaml())
    assert external["apiVersion"] == "workload.linkerd.io/v1beta1"
    assert external["spec"]["meshTLS"] == {
        "identity": "spiffe://root.linkerd.cluster.local/ns/faces/externalworkload/smiley",
        "serverName": "smiley.faces.externalworkload.cluster.local",
    }
    assert external["spec"]["workloadIPs"] == [{"ip": "172.18.0.5"}]
    selector = service["spec"]["selector"]
    assert selector
    assert selector.items() <= external["metadata"]["labels"].items()
    declared = {port["name"] for port in external["spec"]["ports"]}
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= declared
    assert "status" not in external


def test_status_is_a_separate_patch_from_216() -> None:
    result = make(["172.18.0.5"], linkerd="2.16")
    assert result.status_patch == {
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Started",
                    "message": "started by meshexp-build",
                }
            ]
        }
    }
    words = shlex.split(result.patch_command or "")
    assert words[:4] == ["kubectl", "patch", "externalworkload", "smiley"]
    assert words[words.index("--subresource") + 1] == "status"
    assert json.loads(words[-1]) == result.status_patch


def test_status_is_inline_for_215() -> None:
    result = make(["172.18.0.5"], linkerd="2.15")
    assert result.patch_command is None
    assert result.external_workload["status"]["conditions"][0]["type"] == "Ready"


def test_dual_stack_from_217() -> None:
    result = make(["172.18.0.5", "fd00::5"], linkerd="2.17")
    assert [item["ip"] for item in result.external_workload["spec"]["workloadIPs"]] == [
        "172.18.0.5",
        "fd00::5",
    ]


@pytest.mark.parametrize(
    ("ips", "linkerd", "message"),
    [
        (["172.18.0.5", "fd00::5"], "2.16", "allows at most 1 workload IP"),
        (["172.18.0.5", "172.18.0.6"], "2.18", "at most one IPv4 and one IPv6"),
        (["300.1.1.1"], "2.18", "'300.1.1.1' is not an IP address"),
        (["smiley; rm -rf /"], "2.18", "is not an IP address"),
        (["127.0.0.1"], "2.18", "cannot be a workload address"),
        ([], "2.18", "give the workload's address with --ip"),
    ],
)
def test_bad_ips_refused(ips: list[str], linkerd: str, message: str) -> None:
    with pytest.raises(MeshexpError, match=message):
        make(ips, linkerd)


def test_walkthrough_identity_for_drop_in_use() -> None:
    settings = load_settings(None, {"identity": "walkthrough"})
    result = build_manifests(workload=find_workload("smiley"), settings=settings, ips=["10.0.0.5"])
    assert result.external_workload["spec"]["meshTLS"] == {
        "identity": "spiffe://root.linkerd.cluster.local/smiley",
        "serverName": "smiley.cluster.local",
    }


def test_same_name_in_two_namespaces_gets_two_identities() -> None:
    settings = load_settings(None, {})
    one, other = (
        build_manifests(
            workload=find_workload("face"), settings=settings, ips=["10.0.0.5"], namespace=ns
        ).external_workload["spec"]["meshTLS"]
        for ns in ("faces", "shop")
    )
    assert one["identity"] != other["identity"]
    assert one["serverName"] != other["serverName"]
    walkthrough = load_settings(None, {"identity": "walkthrough"})
    shared = {
        build_manifests(
            workload=find_workload("face"), settings=walkthrough, ips=["10.0.0.5"], namespace=ns
        ).external_workload["spec"]["meshTLS"]["identity"]
        for ns in ("faces", "shop")
    }
    assert len(shared) == 1  # why namespaced is the default


def test_authentication_names_the_workload_by_its_spiffe_id() -> None:
    """As the walk-through's external-auth.yaml does: the SVID's one name, which the real
    proxy takes as the client's identity."""
    result = build_manifests(
        workload=find_workload("face"),
        settings=load_settings(None, {}),
        ips=["10.0.0.5"],
        authentication=True,
    )
    *_, auth = yaml.safe_load_all(result.yaml())
    assert auth["kind"] == "MeshTLSAuthentication"
    assert auth["metadata"] == {
        "name": "face-identity",
        "namespace": "faces",
        "labels": {"app.kubernetes.io/managed-by": "meshexp-build"},
    }
    tls = result.external_workload["spec"]["meshTLS"]
    assert auth["spec"]["identities"] == [tls["identity"]]
    assert tls["identity"] == "spiffe://root.linkerd.cluster.local/ns/faces/externalworkload/face"


@pytest.mark.parametrize(
    ("linkerd", "listed"),
    [("2.16", ["172.18.0.5"]), ("2.17", ["172.18.0.5", "fd00:18::5"])],
)
def test_a_dual_stack_container_is_listed_as_its_release_takes_it(
    linkerd: str, listed: list[str]
) -> None:
    """What `run` and the registrar do with a container's two addresses: both from 2.17,
    the IPv4 one before, the other named in the output."""
    found = ("172.18.0.5", "fd00:18::5")
    most = load_settings(None, {"linkerd_version": linkerd}).facts.max_workload_ips
    ips, left_out = listed_addresses(found, most)
    assert ips == listed
    assert [*ips, *left_out] == list(found)
    if left_out:
        assert "fd00:18::5" in left_out_line(left_out, linkerd)


def test_opaque_ports_are_annotated_so_a_clients_proxy_skips_detection() -> None:
    """A port the workload declares opaque (an application image's EXPOSEd ones) is
    marked on the ExternalWorkload and on the Service (by the Service's port), for the
    run and lab path and for the registrar alike; an HTTP port is not."""
    config = ImageConfig(reference="shop/app:1", cmd=("app",), exposed=("8080/tcp", "9090/tcp"))
    workload = resolve(from_entry("shop/app:1", "shop"), config)
    result = build_manifests(workload=workload, settings=load_settings(None, {}), ips=["10.0.0.9"])
    for document in (result.external_workload, result.service):
        assert document["metadata"]["annotations"][OPAQUE_PORTS] == "8080,9090"
    mixed = [("http", 8000, "TCP"), ("tcp-9090", 9090, "TCP")]
    service = service_document("shop", "ns", {}, mixed, service_port=80, opaque=(9090,))
    assert service["metadata"]["annotations"][OPAQUE_PORTS] == "9090"
    first = service_document("shop", "ns", {}, mixed, service_port=80, opaque=(8000,))
    assert first["metadata"]["annotations"][OPAQUE_PORTS] == "80"  # the Service's port
    assert opaque_ports_of(("8000=http", "9090=opaque", "x=opaque")) == (9090,)
    external, service = yaml.safe_load_all(make(["172.18.0.5"]).yaml())
    assert "annotations" not in external["metadata"]
    assert "annotations" not in service["metadata"]
