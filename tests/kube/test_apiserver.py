"""Our manifests against a real kube-apiserver with Linkerd's own CRDs.

The server is the one the project builds (kube-apiserver from the Go module
proxy) and starts (with Debian's etcd), validating as a cluster would.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
from lightkube import codecs

from builder.cluster import kube
from builder.cluster.apiserver import local_apiserver, serving_tls
from builder.cluster.certs import create_certs
from builder.cluster.manifests import build_manifests, ready_condition
from builder.config.catalog import load_catalog
from builder.config.contract import known_releases
from builder.config.settings import load_settings
from builder.core.errors import MeshexpError
from builder.core.net import answers_ok
from tests.conftest import need

# Every line (2.15 ... 2.20) and every other release the tables name.
VERSIONS = known_releases()


@pytest.fixture(scope="module")
def client(apiserver):
    return kube.connect(apiserver.kubeconfig)


def test_the_server_holds_linkerds_crds(apiserver) -> None:
    assert "externalworkloads.workload.linkerd.io" in apiserver.crds
    assert apiserver.kubeconfig.stat().st_mode & 0o077 == 0  # it holds the admin token


@pytest.mark.parametrize("linkerd", VERSIONS)
def test_every_workloads_manifests_are_accepted_and_marked_ready(client, linkerd: str) -> None:
    settings = load_settings(None, {"linkerd_version": linkerd})
    for name, workload in load_catalog().items():
        namespace = f"v{linkerd.replace('.', '-')}-{workload.namespace}"
        kube.ensure_namespace(client, namespace)
        manifests = build_manifests(
            workload=workload,
            settings=settings,
            ips=["172.18.0.5"],
            name=name,
            namespace=namespace,
        )
        documents = [copy.deepcopy(manifests.external_workload), manifests.service]
        documents[0].pop("status", None)  # 2.15 writes it inline; a 2.16+ CRD ignores that
        applied = kube.apply_documents(client, documents)
        assert [ref.kind for ref in applied] == ["ExternalWorkload", "Service"]
        kube.set_status(client, name, namespace, ready_condition())
        condition = kube.ready_condition(name, namespace, client)
        assert condition is not None
        assert condition["status"] == "True", condition
        # Applying again changes nothing and does not fail (server-side apply).
        assert kube.apply_documents(client, [copy.deepcopy(manifests.service)])


@pytest.mark.parametrize("identity", ["namespaced", "walkthrough"])
def test_mesh_tls_authentication_is_accepted_by_linkerds_crd(client, identity: str) -> None:
    """What `manifests --authentication` emits passes the policy CRD's validation."""
    namespace = f"auth-{identity}"
    kube.ensure_namespace(client, namespace)
    manifests = build_manifests(
        workload=load_catalog()["face"],
        settings=load_settings(None, {"identity": identity}),
        ips=["172.18.0.7"],
        namespace=namespace,
        authentication=True,
    )
    assert manifests.authentication is not None
    [applied] = kube.apply_documents(client, [copy.deepcopy(manifests.authentication)])
    assert (applied.kind, applied.name) == ("MeshTLSAuthentication", "face-identity")


def manifest(client, **changes):
    workload = load_catalog()["smiley"]
    built = build_manifests(
        workload=workload, settings=load_settings(None, {}), ips=["172.18.0.5"]
    ).external_workload
    kube.ensure_namespace(client, built["metadata"]["namespace"])
    for path, value in changes.items():
        target = built
        *parents, last = path.split(".")
        for key in parents:
            target = target[key]
        target[last] = value
    return built


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        (
            {"spec.workloadIPs": [{"ip": "172.18.0.5"}, {"ip": "172.18.0.6"}, {"ip": "fd00::6"}]},
            "spec.workloadIPs",
        ),
        ({"spec.ports": [{"name": "http", "port": 70000}]}, "spec.ports[0].port"),
        ({"metadata.name": "Not_A_Label"}, "metadata.name"),
    ],
    ids=["too-many-ips", "port-out-of-range", "name-not-a-dns-label"],
)
def test_the_servers_refusal_is_one_line_naming_the_field(client, changes, field: str) -> None:
    with pytest.raises(MeshexpError) as refused:
        kube.apply_documents(client, [manifest(client, **changes)])
    message = str(refused.value.message)
    assert "\n" not in message
    assert message.startswith("ExternalWorkload faces/")
    assert field in message, message


def test_an_unknown_namespace_says_how_to_fix_it(client) -> None:
    doc = manifest(client)
    doc["metadata"]["namespace"] = "nowhere"
    with pytest.raises(MeshexpError, match="namespace 'nowhere' does not exist in the cluster"):
        kube.apply_documents(client, [doc])


def test_our_own_checks_refuse_too_many_ips_for_the_version() -> None:
    with pytest.raises(MeshexpError, match=r"Linkerd 2\.16 allows at most 1 workload IP"):
        build_manifests(
            workload=load_catalog()["smiley"],
            settings=load_settings(None, {"linkerd_version": "2.16"}),
            ips=["172.18.0.5", "fd00::5"],
        )


def test_delete_touches_only_what_is_ours(client) -> None:
    doc = manifest(client)
    theirs = copy.deepcopy(doc)
    theirs["metadata"]["name"] = "theirs"
    theirs["metadata"]["labels"] = {"app": "theirs"}  # not managed by us
    client.apply(codecs.from_dict(theirs), force=True)  # applied without our label
    [ours] = kube.apply_documents(client, [doc])
    other = kube.ObjectRef("ExternalWorkload", "theirs", ours.namespace)
    assert kube.delete_managed(client, [ours, other]) == [ours]
    assert kube.ready_condition("theirs", ours.namespace, client) is None  # still there...
    assert client.get(kube.ExternalWorkload, "theirs", namespace=ours.namespace)  # ...untouched


def test_the_server_stops_with_no_process_left(tmp_path: Path) -> None:
    with local_apiserver(folder=tmp_path / "second") as server:
        assert len(server.pids) == 2
        for pid in server.pids:
            os.kill(pid, 0)  # running
    for pid in server.pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_the_admin_token_goes_only_to_the_server_whose_certificate_we_hold(
    apiserver, tmp_path: Path
) -> None:
    """The readiness poll verifies the server against its own certificate, as every
    client after it does: a server with another certificate gets no token."""
    need(bool(apiserver.url), "the API server the tests start (not MESHEXP_TEST_KUBECONFIG's)")
    token = (apiserver.folder / "tokens.csv").read_text().split(",", 1)[0]
    headers = {"Authorization": f"Bearer {token}"}
    ours = serving_tls(apiserver.folder)
    assert answers_ok(f"{apiserver.url}/readyz", headers=headers, context=ours)[0]
    other = tmp_path / "other"
    create_certs(folder=other)
    (other / "certs").mkdir()
    (other / "certs" / "apiserver.crt").write_bytes((other / "ca.crt").read_bytes())
    ok, reason = answers_ok(
        f"{apiserver.url}/readyz", headers=headers, context=serving_tls(other, timeout=1)
    )
    assert not ok
    assert "CERTIFICATE_VERIFY_FAILED" in reason
