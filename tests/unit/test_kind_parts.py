"""The kind path's pure parts: the providers' command lines, kind's adaptation to an engine
without privileged containers, and what the node image carries and is keyed by."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from builder.build import gomodules, kind_node
from builder.build.kind_adapt import NODE_FLAGS, KindShapeError, adapt_kind
from builder.build.kind_node import CONTROL_PLANE, aliases_file, control_plane_images
from builder.cluster import kind
from builder.cluster.providers import (
    POD_SUBNET,
    K3dProvider,
    KindProvider,
    ProviderError,
    check_provider_name,
    kind_config,
)
from builder.config.settings import Settings
from builder.engine import docker_engine

# Shaped as kind v0.33's docker provider is at the two adapted places (written here).
PROVISION = """package docker

func runArgsForNode(name string, args []string) ([]string, error) {
\targs = append([]string{
\t\t"--hostname", name,
\t\t// running containers in a container requires privileged
\t\t"--privileged",
\t\t"--security-opt", "seccomp=unconfined",
\t}, args...)
\treturn args, nil
}
"""
NODE = """package docker

func (c *nodeCmd) Run() error {
\targs := []string{
\t\t"exec",
\t\t"--privileged",
\t}
\treturn run(args)
}
"""


def kind_tree(root: Path, provision: str = PROVISION, node: str = NODE) -> Path:
    folder = root / "pkg" / "cluster" / "internal" / "providers" / "docker"
    folder.mkdir(parents=True)
    (folder / "provision.go").write_text(provision)
    (folder / "node.go").write_text(node)
    return folder


def test_the_adaptation_replaces_privileged_by_every_capability_but_the_missing_one(
    tmp_path: Path,
) -> None:
    folder = kind_tree(tmp_path)
    adapt_kind(tmp_path)
    provision = (folder / "provision.go").read_text()
    node = (folder / "node.go").read_text()
    assert '"--privileged"' not in provision
    assert '"--privileged"' not in node
    for flag in NODE_FLAGS:
        assert f'\t\t"{flag}",\n' in provision
    # the rest of the argument list is untouched, in order
    assert provision.index('"--hostname"') < provision.index('"--cap-add=ALL"')
    assert provision.index('"--cap-drop=SYS_RESOURCE"') < provision.index("seccomp=unconfined")
    assert '"exec",\n' in node


@pytest.mark.parametrize(
    ("provision", "node", "bad"),
    [
        (PROVISION.replace('"--privileged",', ""), NODE, "provision.go"),
        (PROVISION + '\n\t\t"--privileged",\n', NODE, "provision.go"),
        (PROVISION, NODE.replace('"--privileged",', '"--privileged=true",'), "node.go"),
    ],
)
def test_the_adaptation_refuses_a_kind_it_does_not_know(
    tmp_path: Path, provision: str, node: str, bad: str
) -> None:
    kind_tree(tmp_path, provision, node)
    with pytest.raises(KindShapeError, match=bad) as caught:
        adapt_kind(tmp_path)
    assert "docker run --privileged" in caught.value.message


def test_kind_creates_its_cluster_on_the_named_network_with_the_node_image(
    tmp_path: Path,
) -> None:
    provider = KindProvider(kind=Path("/c/kind"), node_image="n:1", config=tmp_path / "k.yaml")
    (create,) = provider.create("demo", "meshnet", tmp_path / "kubeconfig")
    assert create[:2] == ["env", "KIND_EXPERIMENTAL_DOCKER_NETWORK=meshnet"]
    assert create[2:5] == ["/c/kind", "create", "cluster"]
    flags = dict(zip(create[5::2], create[6::2], strict=False))
    assert flags["--name"] == "demo"
    assert flags["--image"] == "n:1"
    assert flags["--config"] == str(tmp_path / "k.yaml")
    assert flags["--kubeconfig"] == str(tmp_path / "kubeconfig")
    assert provider.load_image("demo", "smiley:1") == [
        "/c/kind",
        "load",
        "docker-image",
        "smiley:1",
        "--name",
        "demo",
    ]
    assert provider.delete("demo") == ["/c/kind", "delete", "cluster", "--name", "demo"]
    assert provider.node_containers("demo") == ["demo-control-plane"]


def test_k3d_creates_its_cluster_on_the_named_network_and_writes_the_kubeconfig(
    tmp_path: Path,
) -> None:
    create, kubeconfig = K3dProvider().create("demo", "meshnet", tmp_path / "kc")
    assert create[:4] == ["k3d", "cluster", "create", "demo"]
    assert create[create.index("--network") + 1] == "meshnet"
    assert "--kubeconfig-update-default=false" in create
    assert kubeconfig == ["k3d", "kubeconfig", "write", "demo", "--output", str(tmp_path / "kc")]
    assert K3dProvider().load_image("demo", "smiley:1") == [
        "k3d",
        "image",
        "import",
        "smiley:1",
        "--cluster",
        "demo",
    ]
    assert K3dProvider().delete("demo") == ["k3d", "cluster", "delete", "demo"]


def test_the_kind_config_has_one_node_no_default_cni_and_the_routed_pod_subnet() -> None:
    config = yaml.safe_load(kind_config())
    assert config["networking"] == {"disableDefaultCNI": True, "podSubnet": POD_SUBNET}
    assert config["nodes"] == [{"role": "control-plane"}]


def test_kindest_node_keeps_kindnet_as_its_cni() -> None:
    config = yaml.safe_load(kind_config(own_cni=False))
    assert config["networking"] == {"podSubnet": POD_SUBNET}
    assert "kubeadmConfigPatches" not in config


def test_on_a_cgroup_v1_host_the_kubelet_is_told_to_run_anyway() -> None:
    config = yaml.safe_load(kind_config(own_cni=False, cgroup_v1=True))
    (patch,) = config["kubeadmConfigPatches"]
    assert yaml.safe_load(patch) == {"kind": "KubeletConfiguration", "failCgroupV1": False}


def test_kinds_own_node_image_is_read_from_its_defaults_file() -> None:
    pinned = "kindest/node:v1.34.0@sha256:" + "ab" * 32
    source = f'package defaults\n\n// Image is the default\nconst Image = "{pinned}"\n'
    assert gomodules.pinned_node_image(source, where="image.go") == pinned
    with pytest.raises(KindShapeError, match="give the node image by hand"):
        gomodules.pinned_node_image('var Image = "kindest/node:v1"\n', where="image.go")


def test_an_unknown_provider_is_named_with_the_known_ones() -> None:
    assert check_provider_name("kind") == "kind"
    with pytest.raises(ProviderError, match="k3d, kind"):
        check_provider_name("minikube")


def test_the_node_carries_each_image_kubeadm_asks_for_once(tmp_path: Path) -> None:
    parts = {name: tmp_path / name for name in ("kube", "etcd", "coredns")}
    images = control_plane_images(parts, tmp_path / "pause.c")
    names = [image.name for image in images]
    tagged = aliases_file(images).split()
    everything = set(names) | set(tagged[1::2])
    version = gomodules.KUBERNETES_VERSION
    for program in CONTROL_PLANE:
        assert f"registry.k8s.io/{program}:{version}" in everything
    assert "registry.k8s.io/etcd:3.6.5-0" in names
    assert "registry.k8s.io/coredns/coredns:v1.12.1" in names
    # kubeadm's pause and the one kind's containerd config names
    assert {"registry.k8s.io/pause:3.10.1", "registry.k8s.io/pause:3.10"} <= everything
    # the multi-call image is saved once and tagged for the other three
    assert sum(parts["kube"] in image.files for image in images) == 1
    assert len(tagged) == 2 * (len(CONTROL_PLANE) - 1 + 1)


def test_the_multicall_binary_is_stamped_with_its_kubernetes_version() -> None:
    program = gomodules.kube_multicall("v1.34.4")
    assert "-X k8s.io/component-base/version.gitVersion=v1.34.4" in program.ldflags
    assert "-X k8s.io/component-base/version.gitMinor=34" in program.ldflags
    assert program.kubernetes == "v1.34.4"
    main = (program.main / "main.go").read_text()
    for name in gomodules.KUBE_PROGRAMS:
        assert f'"{name}"' in main


KIND_DATA = Path(__file__).resolve().parents[2] / "kind"


def test_the_node_scripts_pass_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    scripts = sorted((KIND_DATA / "node" / "files" / "usr" / "local" / "bin").iterdir())
    assert scripts
    for script in scripts:
        assert script.stat().st_mode & 0o111, f"{script} is not executable"
        result = subprocess.run(
            [shellcheck, "--severity=style", str(script)], capture_output=True, text=True
        )
        assert result.returncode == 0, f"{script}:\n{result.stdout}"


def test_the_node_and_control_plane_dockerfiles_pass_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    dockerfiles = [KIND_DATA / "node" / "Dockerfile", *sorted((KIND_DATA / "images").iterdir())]
    for dockerfile in dockerfiles:
        result = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True)
        assert result.returncode == 0, f"{dockerfile}:\n{result.stdout}"


@pytest.mark.parametrize("refused", [False, True])
def test_online_kind_runs_kindest_node_unless_the_engine_refuses_it_privileged(
    refused: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine's answers are given here; what is decided from them is what is tested."""
    upstream = "kindest/node:v1.37.0@sha256:" + "0" * 64
    built = kind_node.NodeImage("meshexp/kind-node:v1.34.4-abc", reused=True, kube=tmp_path)
    monkeypatch.setattr(kind, "kind_node_image", lambda: upstream)
    pulled: list[str] = []
    monkeypatch.setattr(kind.docker_engine, "image_exists", lambda reference: False)
    monkeypatch.setattr(kind.docker_engine, "pull_image", pulled.append)
    monkeypatch.setattr(kind.docker_engine, "repo_digest", lambda reference: "sha256:" + "0" * 64)
    monkeypatch.setattr(
        kind.docker_engine,
        "privileged_refusal",
        lambda reference, command=("true",): "unable to apply caps" if refused else "",
    )
    probes: list[str] = []
    monkeypatch.setattr(
        kind.docker_engine, "build_image", lambda **built: probes.append(built["tag"])
    )
    monkeypatch.setattr(
        kind.docker_engine,
        "engine_info",
        lambda: docker_engine.EngineInfo("1", "1", "overlay2", "x86_64", cgroup_version="1"),
    )
    monkeypatch.setattr(kind, "build_node_image", lambda **_: built)
    monkeypatch.setattr(kind, "kube_command", lambda kube, name: kube / name)
    monkeypatch.setattr(
        kind,
        "cached_kind",
        lambda adapted, progress: tmp_path / ("kind-adapted" if adapted else "kind"),
    )
    (tmp_path / "kind").write_bytes(b"kind as published")
    provider = kind.prepare_kind(folder=tmp_path / "k", online=True, settings=Settings())
    config = yaml.safe_load(provider.config.read_text())
    assert config["kubeadmConfigPatches"]  # the engine said cgroup v1
    # the engine is asked first, with kind alone in an image: refused, nothing is pulled
    assert [probe.split(":")[0] for probe in probes] == [kind.PROBE_REPOSITORY]
    assert pulled == ([] if refused else [upstream])
    assert "containerdConfigPatches" not in config  # no mirrors: the nodes pull upstream's
    if not refused:
        assert (provider.node_image, provider.kind.name) == (upstream, "kind")
        assert provider.kubectl == Path("kubectl")
        assert provider.note == ""
        assert "disableDefaultCNI" not in config["networking"]
    else:
        assert (provider.node_image, provider.kind.name) == (built.reference, "kind-adapted")
        assert provider.kubectl == tmp_path / "kubectl"
        assert "kindest/node:v1.37.0 needs a privileged container" in provider.note
        assert "kind is built with its --privileged replaced" in provider.note
        assert config["networking"]["disableDefaultCNI"] is True
    saved = kind.saved_provider(tmp_path / "k")
    assert (saved.node_image, saved.note) == (provider.node_image, provider.note)


def test_the_clusters_faces_images_hold_the_program_where_the_catalog_copies_it() -> None:
    """The cluster's Faces images take upstream's names, so a later online build copies
    out of them: the program must be where the catalog's entries look for it (one CI run
    built the e2e images first, and every online build then failed on `/workload`)."""
    from builder.build.cluster_images import FACES_REPOSITORY
    from builder.config.catalog import load_catalog
    from builder.config.sources import ImageSource

    dockerfile = (KIND_DATA / "images" / "Dockerfile.faces").read_text().splitlines()
    copies = {line.split()[1]: line.split()[2] for line in dockerfile if line.startswith("COPY ")}
    entrypoint = next(line for line in dockerfile if line.startswith("ENTRYPOINT "))
    program = copies["program"]
    assert entrypoint == f'ENTRYPOINT ["{program}"]'
    looked_for = {
        source.path
        for entry in load_catalog().values()
        for binary in entry.binaries
        if isinstance(source := binary.source_for(offline=False), ImageSource)
        and source.ref.startswith(FACES_REPOSITORY + "-")
    }
    assert looked_for == {program}
