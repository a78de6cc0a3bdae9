"""meshexp-registrar's rules (builder/registration/service.py): the group, the caller's
identity, the addresses it declares, and what a heartbeat writes.

The API calls are counted by a recording double of the service's Kube class here; the
same paths run against a real API server and the real proxy in the mesh lab
(tests/integration/test_registration_service.py).
"""

from __future__ import annotations

import ast
import copy
import http.server
import re
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st

from builder.cli.main import main
from builder.registration import service

TD = "root.linkerd.cluster.local"
CRD = Path(service.__file__).with_name("registrationgroups.crd.yaml")


def group_object(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "workload": "smiley",
        "networks": ["172.18.0.0/16"],
        "ports": [{"name": "http", "port": 8000}],
        "names": ["smiley-*"],
        "probe": {"path": "/", "port": 8000},
        "heartbeat": {"periodSeconds": 5, "failureThreshold": 2, "graceSeconds": 30},
    }
    base.update(spec)
    return {"metadata": {"name": "smileys", "namespace": "faces"}, "spec": base}


GROUP = service.group_from_object(group_object())


def identity(name: str, namespace: str = "faces", domain: str = TD) -> str:
    return f"spiffe://{domain}/ns/{namespace}/externalworkload/{name}"


def test_a_group_takes_its_defaults() -> None:
    assert GROUP.trust_domain == TD
    assert GROUP.identity_style == "namespaced"
    assert GROUP.stale_after == 10.0
    assert GROUP.service is True
    assert GROUP.service_port is None


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"workload": "Smiley"}, "spec.workload"),
        ({"workload": "smiley\n"}, "spec.workload"),  # a full match: no trailing newline
        ({"networks": []}, "spec.networks"),
        ({"networks": ["172.18.0.1/16"]}, "spec.networks"),  # host bits set
        ({"ports": []}, "spec.ports"),
        ({"ports": [{"name": "http", "port": 70000}]}, "spec.ports[0].port"),
        ({"names": ["smiley-*-x"]}, "spec.names"),
        ({"labels": {"app": "other"}}, "spec.labels"),
        ({"labels": {"team": "a b"}}, "spec.labels"),
        ({"identityStyle": "mine"}, "spec.identityStyle"),
        ({"heartbeat": {"periodSeconds": 0}}, "spec.heartbeat.periodSeconds"),
        ({"heartbeat": {"periodSeconds": True}}, "spec.heartbeat.periodSeconds"),
        ({"probe": {"path": "/\r\nX: y", "port": 8000}}, "spec.probe.path"),
        ({"trustDomain": "Root"}, "spec.trustDomain"),
    ],
)
def test_a_bad_group_is_refused_naming_its_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(service.GroupError, match=re.escape(field)):
        service.group_from_object(group_object(**spec))


def test_the_crd_holds_the_services_patterns() -> None:
    """The CRD's schema and the service check the same names the same way."""
    [crd] = list(yaml.safe_load_all(CRD.read_text()))
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    fields = spec["properties"]
    assert fields["workload"]["pattern"] == f"^{service.DNS_LABEL.pattern}$"
    assert fields["trustDomain"]["pattern"] == f"^{service.TRUST_DOMAIN.pattern}$"
    assert fields["names"]["items"]["pattern"] == f"^{service.NAME_PATTERN.pattern}$"
    assert fields["ports"]["items"]["properties"]["name"]["pattern"] == (
        f"^{service.DNS_LABEL.pattern}$"
    )
    assert set(spec["required"]) == {"workload", "networks", "ports"}
    assert crd["spec"]["group"] == service.API_GROUP
    assert crd["spec"]["names"]["plural"] == service.GROUP_PLURAL


@pytest.mark.parametrize(
    ("caller", "why"),
    [
        (identity("smiley-1", domain="evil.example"), "may not register"),
        (identity("smiley-1", namespace="other"), "may not register"),
        (identity("face"), "is not a name group faces/smileys admits"),
        (identity("smiley-1/../face"), "may not register"),
        (identity("smiley-1") + "\n", "may not register"),
        ("smiley-1", "may not register"),
        (f"spiffe://{TD}/smiley-1", "may not register"),  # the other style's spelling
    ],
)
def test_only_the_identitys_own_name_in_the_group_is_taken(caller: str, why: str) -> None:
    with pytest.raises(service.Refused, match=re.escape(why)) as refused:
        service.name_of(caller, GROUP)
    assert refused.value.status == 403


def test_the_name_is_the_identitys_in_either_style() -> None:
    assert service.name_of(identity("smiley-1"), GROUP) == "smiley-1"
    walk = service.group_from_object(group_object(identityStyle="walkthrough"))
    assert service.name_of(f"spiffe://{TD}/smiley-2", walk) == "smiley-2"


@pytest.mark.parametrize(
    ("addresses", "status"),
    [
        (["10.0.0.5"], 403),  # outside the group's networks
        (["172.18.0.5", "172.18.0.6"], 400),  # two of one family
        ([], 400),
        (["172.18.0.5\n"], 400),
        ("172.18.0.5", 400),
        (["172.18.0.5"] * 3, 400),
    ],
)
def test_declared_addresses_must_lie_in_the_groups_networks(addresses: object, status: int) -> None:
    with pytest.raises(service.Refused) as refused:
        service.addresses_of({"addresses": addresses}, GROUP)
    assert refused.value.status == status


def test_the_external_workload_carries_the_callers_identity_and_the_template() -> None:
    opaque = service.group_from_object(
        group_object(
            ports=[{"name": "http", "port": 8000}, {"name": "db", "port": 5432, "opaque": True}],
            labels={"team": "edge"},
        )
    )
    document = service.external_workload(opaque, "smiley-1", identity("smiley-1"), ["172.18.0.5"])
    assert document["spec"]["meshTLS"] == {
        "identity": identity("smiley-1"),
        "serverName": "smiley-1.faces.externalworkload.cluster.local",
    }
    assert document["spec"]["workloadIPs"] == [{"ip": "172.18.0.5"}]
    assert document["metadata"]["labels"]["app"] == "smiley"
    assert document["metadata"]["labels"]["team"] == "edge"
    assert document["metadata"]["annotations"] == {service.OPAQUE_PORTS: "5432"}
    assert service.service_of(opaque)["spec"]["selector"] == {"app": "smiley"}


class RecordingKube:
    """Answers as an API server that holds what was written (the double these rules
    are counted against); every call recorded."""

    def __init__(self, group: dict[str, Any]) -> None:
        self.objects: dict[str, dict[str, Any]] = {
            "/apis/meshexp.io/v1alpha1/namespaces/faces/registrationgroups/smileys": group
        }
        self.calls: list[tuple[str, str]] = []
        self.writes = 0

    def call(
        self, method: str, path: str, body: Any = None, content_type: str = ""
    ) -> tuple[int, dict[str, Any]]:
        path = path.split("?")[0]
        self.calls.append((method, path))
        if method == "GET":
            if path.endswith("/externalworkloads"):
                items = [o for p, o in self.objects.items() if "/externalworkloads/" in p]
                return 200, {"items": copy.deepcopy(items)}
            found = self.objects.get(path)
            return (200, copy.deepcopy(found)) if found else (404, {})
        self.writes += 1
        if method == "DELETE":
            return (200, {}) if self.objects.pop(path, None) else (404, {})
        if path.endswith("/status"):
            self.objects[path.removesuffix("/status")]["status"] = body["status"]
            return 200, {}
        self.objects[path] = {**copy.deepcopy(body), "status": {}}
        return 200, {}

    def apply(self, path: str, document: dict[str, Any]) -> dict[str, Any]:
        self.call("PATCH", path, document)
        return document


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def registrations(kube: RecordingKube) -> tuple[service.Registrations, Clock]:
    clock = Clock()
    return service.Registrations(kube, clock=clock), clock  # type: ignore[arg-type]


HEARTBEAT = {"addresses": ["172.18.0.5"], "ready": True}
EW = "/apis/workload.linkerd.io/v1beta1/namespaces/faces/externalworkloads/smiley-1"


def test_an_unchanged_heartbeat_writes_nothing() -> None:
    kube = RecordingKube(group_object())
    held, _ = registrations(kube)
    answer = held.register("faces", "smileys", identity("smiley-1"), dict(HEARTBEAT))
    assert answer["heartbeatSeconds"] == 5
    assert answer["probe"] == {"path": "/", "port": 8000}
    first = kube.writes
    assert first == 3  # the ExternalWorkload, its Ready, the Service
    for _ in range(5):
        held.register("faces", "smileys", identity("smiley-1"), dict(HEARTBEAT))
    assert kube.writes == first
    held.register("faces", "smileys", identity("smiley-1"), {**HEARTBEAT, "ready": False})
    assert kube.writes == first + 1
    assert kube.objects[EW]["status"]["conditions"][0]["reason"] == "ProbeFailed"


def test_a_restarted_service_writes_nothing_that_is_right() -> None:
    kube = RecordingKube(group_object())
    first, _ = registrations(kube)
    first.register("faces", "smileys", identity("smiley-1"), dict(HEARTBEAT))
    writes = kube.writes
    again, _ = registrations(kube)
    assert again.recover() == 1
    again.register("faces", "smileys", identity("smiley-1"), dict(HEARTBEAT))
    assert again.sweep() == []
    assert kube.writes == writes + 1  # the Service, which the new process applies once


def test_missed_heartbeats_make_it_not_ready_then_remove_it() -> None:
    kube = RecordingKube(group_object())
    held, clock = registrations(kube)
    held.register("faces", "smileys", identity("smiley-1"), dict(HEARTBEAT))
    clock.now += 9
    assert held.sweep() == []
    clock.now += 2  # past 2 periods of 5 s
    [line] = held.sweep()
    assert "not ready" in line
    assert kube.objects[EW]["status"]["conditions"][0]["status"] == "False"
    assert held.sweep() == []  # said once
    clock.now += 20  # past the 30 s grace
    [line] = held.sweep()
    assert "removed" in line
    assert EW not in kube.objects


def test_another_identitys_workload_is_neither_taken_nor_removed() -> None:
    kube = RecordingKube(group_object())
    held, _ = registrations(kube)
    held.register("faces", "smileys", identity("smiley-1"), dict(HEARTBEAT))
    kube.objects[EW]["spec"]["meshTLS"]["identity"] = identity("smiley-9")
    again, _ = registrations(kube)
    writes = kube.writes
    with pytest.raises(service.Refused, match="another identity"):
        again.register("faces", "smileys", identity("smiley-1"), dict(HEARTBEAT))
    with pytest.raises(service.Refused, match="another identity"):
        again.deregister("faces", "smileys", identity("smiley-1"))
    kube.objects[EW]["metadata"]["labels"] = {}
    with pytest.raises(service.Refused, match="not the service's"):
        again.register("faces", "smileys", identity("smiley-1"), dict(HEARTBEAT))
    assert kube.writes == writes


def answer_to(request: bytes, held: service.Registrations) -> tuple[int, bytes]:
    """One raw request to the service's HTTP server (on loopback, a port of its own);
    the status and body it answers."""
    handler = type("Bound", (service.Handler,), {"registrations": held})
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            with socket.create_connection(server.server_address[:2], timeout=10) as sock:
                sock.sendall(request)
                answer = b"".join(iter(lambda: sock.recv(65536), b""))
        finally:
            server.shutdown()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def put(headers: str, body: bytes = b'{"addresses": ["172.18.0.5"]}') -> bytes:
    return (
        b"PUT /v1/namespaces/faces/groups/smileys/registration HTTP/1.0\r\n"
        + headers.encode()
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ("", 401),  # plaintext: the service's proxy dropped any claim
        (f"l5d-client-id: {identity('smiley-1')}\r\nl5d-client-id: {identity('x')}\r\n", 401),
        ("l5d-client-id: smiley-1\r\n", 401),
        (f"l5d-client-id: {identity('smiley-1')}\r\n", 200),
    ],
)
def test_the_handler_believes_one_header_only(headers: str, status: int) -> None:
    kube = RecordingKube(group_object())
    held, _ = registrations(kube)
    got, body = answer_to(put(headers), held)
    assert got == status, body
    assert (kube.writes > 0) == (status == 200)


def test_the_handler_refuses_a_body_too_large_before_reading_it() -> None:
    kube = RecordingKube(group_object())
    held, _ = registrations(kube)
    got, _ = answer_to(put(f"l5d-client-id: {identity('smiley-1')}\r\n", b"{" * 5000), held)
    assert got == 413
    assert kube.writes == 0


@given(
    key=st.sampled_from(["workload", "trustDomain", "identityStyle", "names", "networks"]),
    value=st.one_of(
        st.text(max_size=80),
        st.lists(st.text(max_size=30), max_size=3),
        st.integers(),
        st.none(),
        st.booleans(),
    ),
)
def test_any_group_field_is_taken_whole_or_refused_in_one_line(key: str, value: object) -> None:
    """Every value a group's field can hold: a GroupError of one line, or a group whose
    text is held to its full pattern (nothing else raised)."""
    try:
        group = service.group_from_object(group_object(**{key: value}))
    except service.GroupError as exc:
        refused = str(exc)
    else:
        refused = ""
    if refused:
        assert "\n" not in refused
        return
    assert service.DNS_LABEL.fullmatch(group.workload)
    assert service.TRUST_DOMAIN.fullmatch(group.trust_domain)
    assert all(service.NAME_PATTERN.fullmatch(n) for n in group.names)


def test_the_service_imports_the_standard_library_only() -> None:
    """Its image holds this one file and python3: an import of anything else would fail
    there, not here."""
    tree = ast.parse(Path(service.__file__).read_text())
    imported = {
        name.split(".")[0]
        for node in ast.walk(tree)
        for name in (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else []
        )
    }
    assert imported - set(sys.stdlib_module_names) == set(), imported


def dry_run(*flags: str) -> Result:
    return CliRunner().invoke(main, ["registrar", "install", "--dry-run", *flags])


def test_install_gives_writes_only_in_the_groups_namespaces() -> None:
    result = dry_run("--group-namespace", "faces", "--group-namespace", "edge")
    assert result.exit_code == 0, result.output
    documents = list(yaml.safe_load_all(result.output))
    assert documents[0]["kind"] == "CustomResourceDefinition"  # before any group
    roles = {d["metadata"]["namespace"] for d in documents if d["kind"] == "Role"}
    assert roles == {"faces", "edge"}
    [cluster_role] = [d for d in documents if d["kind"] == "ClusterRole"]
    verbs = {verb for rule in cluster_role["rules"] for verb in rule["verbs"]}
    assert verbs == {"get", "list"}  # reads only, cluster-wide
    [deployment] = [d for d in documents if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["annotations"]["linkerd.io/inject"] == "enabled"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["serviceAccountName"] == service.MANAGER


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        ((), "--group-namespace"),
        (("--group-namespace", "Faces"), "--group-namespace"),
        (("--group-namespace", "faces\n"), "--group-namespace"),
        (("--group-namespace", "faces", "--namespace", "a b"), "--namespace"),
        (("--group-namespace", "faces", "--image", "x:y\nkind: Secret"), "--image"),
    ],
)
def test_a_bad_install_flag_is_one_line_and_prints_nothing(
    flags: tuple[str, ...], named: str
) -> None:
    result = dry_run(*flags)
    assert result.exit_code == 1
    assert result.output.count("\n") == 1, result.output
    assert named in result.output


@given(
    flag=st.sampled_from(["--namespace", "--group-namespace", "--image"]),
    value=st.text(min_size=1, max_size=80),
)
def test_any_install_flag_is_refused_or_changes_no_structure(flag: str, value: str) -> None:
    """Whatever a flag holds: one line and nothing printed, or the same objects with the
    value in its one place."""
    flags = [flag, value] if flag == "--group-namespace" else ["--group-namespace", "faces"]
    flags += [flag, value] if flag != "--group-namespace" else []
    result = dry_run(*flags)
    if result.exit_code != 0:
        assert result.output.count("\n") == 1, result.output
        return
    documents = list(yaml.safe_load_all(result.output))
    expected = list(yaml.safe_load_all(dry_run("--group-namespace", "faces").output))
    assert [d["kind"] for d in documents] == [d["kind"] for d in expected]
    if flag == "--image":
        [deployment] = [d for d in documents if d["kind"] == "Deployment"]
        assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == value


def test_a_service_of_that_name_not_made_by_the_service_is_left_alone() -> None:
    kube = RecordingKube(group_object())
    chart = {"metadata": {"name": "smiley", "labels": {"app.kubernetes.io/managed-by": "Helm"}}}
    path = "/api/v1/namespaces/faces/services/smiley"
    kube.objects[path] = chart
    held, _ = registrations(kube)
    held.register("faces", "smileys", identity("smiley-1"), dict(HEARTBEAT))
    assert kube.objects[path] == chart
    assert ("PATCH", path) not in kube.calls


@pytest.mark.parametrize("length", ["abc", "-5", "99999999999999"])
def test_a_bad_content_length_is_refused_as_such(length: str) -> None:
    kube = RecordingKube(group_object())
    held, _ = registrations(kube)
    request = (
        b"PUT /v1/namespaces/faces/groups/smileys/registration HTTP/1.0\r\n"
        + f"l5d-client-id: {identity('smiley-1')}\r\nContent-Length: {length}\r\n\r\n".encode()
    )
    status, _ = answer_to(request, held)
    assert status in (400, 413)
    assert kube.writes == 0


def test_the_services_own_patterns_are_the_projects() -> None:
    """The service cannot import builder (its image holds one file), so it spells its
    patterns again: they must stay the ones the rest of the project checks with."""
    from builder.config import validation

    assert f"^{service.DNS_LABEL.pattern}$" == validation.DNS_LABEL.pattern
    assert f"^{service.LABEL_VALUE.pattern}$" == validation.KUBE_LABEL_VALUE.pattern


def test_the_service_image_is_built_on_the_base_its_mirror_serves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`registrar image --mirror docker.io=...` pulls Debian from the mirror and builds on
    what it pulled (the classic builder would otherwise ask Docker Hub for the FROM); a
    bad --base is one line before any pull; --offline pulls nothing."""
    from builder.build import upstream
    from builder.cli import registrar as cli
    from builder.registration import install as installing

    pulled: list[str] = []
    built: list[tuple[str, str, bool]] = []

    def ensure_image(reference: str, settings: Any, progress: Any) -> upstream.UsedImage:
        pulled.append(settings.mirrored(reference))
        return upstream.UsedImage(reference, settings.mirrored(reference), "sha256:0")

    monkeypatch.setattr(cli, "ensure_image", ensure_image)

    def build(tag: str, base: str, offline: bool = False) -> str:
        built.append((tag, base, offline))
        return tag

    monkeypatch.setattr(installing, "build_service_image", build)
    mirror = ["--mirror", "docker.io=registry.corp:5000/hub"]
    done = CliRunner().invoke(main, ["registrar", "image", "--tag", "r:1", *mirror])
    assert done.exit_code == 0, done.output
    assert pulled == ["registry.corp:5000/hub/library/debian:bookworm-slim"]
    assert built == [("r:1", pulled[0], False)]
    done = CliRunner().invoke(main, ["registrar", "image", "--base", "Debian;id", *mirror])
    assert done.exit_code != 0
    assert "--base: 'Debian;id' is not an image reference" in done.output
    assert len(pulled) == 1
    done = CliRunner().invoke(main, ["registrar", "image", "--tag", "r:2", "--offline"])
    assert done.exit_code == 0, done.output
    assert (len(pulled), built[-1][2]) == (1, True)
    done = CliRunner().invoke(main, ["registrar", "image", "--offline", *mirror])
    assert done.exit_code == 2
    assert "--offline pulls nothing" in done.output
    assert (len(pulled), len(built)) == (1, 2)


@given(
    flag=st.sampled_from(["--base", "--tag"]),
    value=st.text(min_size=1, max_size=80),
)
def test_any_image_flag_is_one_line_or_reaches_the_build_as_given(flag: str, value: str) -> None:
    """`registrar image`: whatever --base or --tag holds is refused in one line with
    nothing pulled or built, or reaches the pull and the build as the value itself."""
    from unittest import mock

    from builder.build import upstream
    from builder.cli import registrar as cli
    from builder.engine import docker_engine

    pulled: list[str] = []
    built: list[tuple[str, str]] = []

    def ensure_image(reference: str, settings: Any, progress: Any) -> upstream.UsedImage:
        pulled.append(reference)
        return upstream.UsedImage(reference, reference, "sha256:0")

    def build_image(**build: Any) -> str:  # the engine's part; the tool's checks run
        built.append((build["tag"], build["buildargs"]["BASE"]))
        return "sha256:0"

    with (
        mock.patch.object(cli, "ensure_image", ensure_image),
        mock.patch.object(docker_engine, "build_image", build_image),
    ):
        result = CliRunner().invoke(main, ["registrar", "image", flag, value])
    assert "Traceback" not in result.output
    if result.exit_code != 0:
        assert result.output.count("\n") == 1, result.output
        assert built == []
        if flag == "--base":
            assert pulled == []
        return
    tag, base = built[0]
    assert (tag if flag == "--tag" else base) == value
    assert pulled == [base]
