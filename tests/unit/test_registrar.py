"""`register` without an engine or a cluster: what a container becomes (its
ExternalWorkload's name, namespace, identity, address), what is left out and why, the
group file, and the command's refusals."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from builder.cli.main import main
from builder.cluster.registrar import (
    RUN_LABEL,
    Instance,
    Registrar,
    Skipped,
    instance_name,
    instance_of,
    registrar_id,
    subset,
)
from builder.config.group import Group, Service, load_group
from builder.config.settings import Settings
from builder.core.errors import SettingsError
from builder.core.image_contract import ContractError, ImageContract
from harness.registration import inspected


@pytest.mark.parametrize(
    ("container", "name"),
    [
        ("smiley", "smiley"),  # the walk-through's `docker run --name smiley`
        ("smiley-2", "smiley-2"),
        ("edge", "smiley-edge"),
        ("Eloquent_Turing", "smiley-eloquent-turing"),  # Docker's own names
        ("smileyface", "smiley-smileyface"),  # a prefix, not the workload's name
    ],
)
def test_the_name_comes_from_the_workload_and_the_container(container: str, name: str) -> None:
    assert instance_name("smiley", container) == name


def test_a_long_name_is_cut_to_a_dns_label_and_stays_apart() -> None:
    one, other = (instance_name("smiley", "x" * 70 + end) for end in ("a", "b"))
    assert max(len(one), len(other)) <= 63
    assert one != other
    assert instance_name("smiley", "x" * 70 + "a") == one  # stable


def test_a_container_becomes_an_instance_of_its_environments_workload() -> None:
    found = instance_of(
        inspected("edge-1", "172.30.0.5", env={"WORKLOAD_NAME": "smiley2"}), Group()
    )
    assert isinstance(found, Instance)
    assert (found.workload, found.namespace, found.name, found.ips) == (
        "smiley2",
        "reg",
        "smiley2-edge-1",
        ("172.30.0.5",),
    )
    assert found.identity == Settings().identity_of("reg", "smiley2")
    assert found.ports == (("http", 8000, "TCP"), ("metrics", 9090, "TCP"))


def test_a_dual_stack_container_lists_both_addresses_from_linkerd_2_17() -> None:
    attrs = inspected("edge-1", "172.30.0.5", ipv6="fd00:30::5")
    found = instance_of(attrs, Group())
    assert isinstance(found, Instance)
    assert (found.ips, found.left_out) == (("172.30.0.5", "fd00:30::5"), "")


@pytest.mark.parametrize("release", ["edge-24.8.2", ""])  # 2.16's edge; an unlabelled image
def test_before_2_17_one_address_is_listed_and_the_other_is_said(release: str) -> None:
    attrs = inspected("edge-1", "172.30.0.5", ipv6="fd00:30::5")
    attrs["Config"]["Labels"]["io.meshexp.linkerd-release"] = release
    found = instance_of(attrs, Group())
    assert isinstance(found, Instance)
    assert found.ips == ("172.30.0.5",)
    assert "fd00:30::5" in found.left_out
    assert "takes one workload IP" in found.left_out


def test_an_ipv6_only_container_lists_its_ipv6_address() -> None:
    found = instance_of(inspected("edge-1", "", ipv6="fd00:30::5"), Group())
    assert isinstance(found, Instance)
    assert found.ips == ("fd00:30::5",)


def test_without_its_environment_the_images_defaults_name_it() -> None:
    attrs = inspected("smiley", "172.30.0.5")
    attrs["Config"]["Env"] = ["PATH=/usr/bin"]
    found = instance_of(attrs, Group())
    assert isinstance(found, Instance)
    assert (found.workload, found.namespace) == ("smiley", "faces")  # the image's labels


@pytest.mark.parametrize(
    ("attrs", "group", "reason"),
    [
        (inspected("s", "1.2.3.4", labels={RUN_LABEL: "smiley"}), Group(), "run --apply"),
        (inspected("s", "1.2.3.4", env={"WORKLOAD_NAME": "Smiley"}), Group(), "DNS-1123"),
        (
            inspected("s", "1.2.3.4"),
            Group(namespace="faces"),
            "-e WORKLOAD_NAMESPACE=faces",
        ),
        (inspected("s", "1.2.3.4"), Group(workloads=("color",)), "not in the group"),
        (inspected("s", "1.2.3.4"), Group(network="mesh"), "not on network mesh"),
        (
            inspected("s", "1.2.3.4", labels={"io.meshexp.ports": ""}),
            Group(),
            "rebuild it",
        ),
        (
            inspected("s", "1.2.3.4", labels={"io.meshexp.identity": ""}),
            Group(),
            "identity style",
        ),
    ],
)
def test_what_is_left_out_says_why(attrs: dict, group: Group, reason: str) -> None:
    found = instance_of(attrs, group)
    assert isinstance(found, Skipped)
    assert reason in found.reason


@pytest.mark.parametrize("text", ["http:8000", "HTTP:8000/TCP", "http:70000/TCP", "a:1/ICMP"])
def test_a_bad_ports_label_is_refused(text: str) -> None:
    with pytest.raises(ContractError, match=f"ports label has '{re.escape(text)}'"):
        ImageContract.from_labels({"io.meshexp.ports": text})
    found = instance_of(inspected("smiley", "1.2.3.4", labels={"io.meshexp.ports": text}), Group())
    assert isinstance(found, Skipped)
    assert "not NAME:PORT/PROTOCOL" in found.reason


def test_two_containers_of_one_name_after_cleaning_are_not_both_registered(
    tmp_path: Path,
) -> None:
    registrar = Registrar(tmp_path / "kubeconfig", Group(), "host-a")
    instances, skipped = registrar.plan(
        [inspected("smiley_1", "1.2.3.4"), inspected("smiley-1", "1.2.3.5")]
    )
    assert [i.container for i in instances] == ["smiley-1"]
    assert "rename one" in skipped["smiley_1"]


def test_a_stopped_container_has_no_address_yet() -> None:
    found = instance_of(inspected("smiley-1", "1.2.3.4", running=False), Group())
    assert isinstance(found, Instance)
    assert (found.running, found.ips) == (False, ())


def test_the_server_may_add_to_what_we_wanted_but_not_change_it() -> None:
    wanted = {"spec": {"ports": [{"port": 80}], "selector": {"app": "smiley"}}}
    held = {
        "spec": {
            "ports": [{"port": 80, "nodePort": None}],
            "selector": {"app": "smiley"},
            "clusterIP": "10.0.0.1",
        }
    }
    assert subset(wanted, held)
    assert not subset(wanted, {"spec": {"ports": [{"port": 81}], "selector": {"app": "smiley"}}})
    assert not subset(wanted, {"spec": {"ports": [], "selector": {"app": "smiley"}}})


@pytest.mark.parametrize(
    ("text", "value"),
    [("build-host.example", "build-host.example"), ("bad host!", "bad-host"), ("!!", "meshexp")],
)
def test_the_registrar_id_is_a_label_value(text: str, value: str) -> None:
    assert registrar_id(text) == value


def test_a_group_file(tmp_path: Path) -> None:
    path = tmp_path / "group.yaml"
    path.write_text(
        "namespace: faces\nworkloads: [smiley]\nnetwork: faces\n"
        "labels: {team: edge, example.com/tier: front}\nservice: {port: 80}\n"
    )
    assert load_group(path) == Group(
        namespace="faces",
        workloads=("smiley",),
        network="faces",
        labels={"example.com/tier": "front", "team": "edge"},
        service=Service(enabled=True, port=80),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("namespace: Faces\n", "group.yaml: namespace: 'Faces' is not valid"),
        ("servce: {port: 80}\n", "unknown field 'servce'"),
        ("service: {port: 0}\n", "service.port"),
        ("labels: {app: x}\n", "label 'app' is set by the registration itself"),
        ("labels: {'bad key': x}\n", "labels"),
        ("- a\n", "expected a mapping"),
    ],
)
def test_a_bad_group_file_names_the_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "group.yaml"
    path.write_text(text)
    with pytest.raises(SettingsError, match=r"group\.yaml") as caught:
        load_group(path)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give --kubeconfig FILE or --lab DIR"),
        (["--kubeconfig", "KUBECONFIG", "-o", "json"], "add --once"),
        (["--kubeconfig", "KUBECONFIG", "--label", "team"], "is not NAME=VALUE"),
    ],
)
def test_register_refuses_what_it_cannot_do(tmp_path: Path, args: list[str], message: str) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("{}")
    argv = ["register", *[str(kubeconfig) if a == "KUBECONFIG" else a for a in args]]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_register_refuses_a_reserved_label_before_touching_anything(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("{}")
    result = CliRunner().invoke(
        main, ["register", "--kubeconfig", str(kubeconfig), "--label", "app=x", "--once"]
    )
    assert result.exit_code == 1
    assert "label 'app' is set by the registration itself" in result.output


def test_an_image_with_an_opaque_port_is_registered_with_it_marked() -> None:
    attrs = inspected("edge-1", "172.30.0.5")
    attrs["Config"]["Labels"]["io.meshexp.port-protocols"] = "8000=opaque"
    found = instance_of(attrs, Group())
    assert isinstance(found, Instance)
    assert found.opaque == (8000,)
    plain = instance_of(inspected("edge-2", "172.30.0.6"), Group())
    assert isinstance(plain, Instance)
    assert plain.opaque == ()
