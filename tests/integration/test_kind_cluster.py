"""A kind cluster from the node image built here (marker `cluster`): it comes up, runs a pod
from an image loaded into it and one its containerd pulled by upstream's name through a
registry mirror on this machine, a plain container on its Docker network reaches a pod
through the walk-through's route, and deleting it leaves nothing behind."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from builder.build import gomodules
from builder.cluster.kind import kind_cluster, leftovers, prepare_kind, run_command
from builder.cluster.providers import POD_SUBNET, KindProvider
from builder.config.settings import Settings
from builder.engine import docker_engine
from builder.oci.registry import LocalRegistry
from harness import equipment
from tests.conftest import need

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """A registry on this machine playing ghcr.io's mirror; it listens on every address
    so that the nodes reach it at their network's gateway."""
    with LocalRegistry(tmp_path_factory.mktemp("mirror"), listen="0.0.0.0") as registry:
        yield registry


@pytest.fixture(scope="module")
def provider(
    engine: docker.DockerClient, mirror: LocalRegistry, tmp_path_factory: pytest.TempPathFactory
) -> KindProvider:
    settings = Settings(mirrors={"ghcr.io": f"{mirror.address}/ghcr"})
    return prepare_kind(folder=tmp_path_factory.mktemp("kind"), settings=settings)


@pytest.fixture(scope="module")
def smiley_image(
    engine: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The real Faces smiley (test equipment) alone in an image, for a pod."""
    faces = equipment.real_faces()
    need(faces is not None, f"the real Faces programs in {equipment.REAL_FACES}")
    assert faces is not None
    context = tmp_path_factory.mktemp("smiley-pod")
    (context / "smiley").write_bytes(faces["smiley"].read_bytes())
    (context / "smiley").chmod(0o755)
    (context / "Dockerfile").write_text(
        'FROM scratch\nCOPY smiley /smiley\nUSER 65534\nENTRYPOINT ["/smiley"]\n'
    )
    reference = f"meshexp-test/kind-smiley:{uuid.uuid4().hex[:8]}"
    docker_engine.build_image(context=context, tag=reference, platform="linux/amd64")
    yield reference
    docker_engine.remove_image(reference)


def test_kind_is_adapted_only_where_the_engine_refuses_privileged_containers(
    provider: KindProvider,
) -> None:
    refusal = docker_engine.privileged_refusal(provider.node_image)
    assert bool(provider.note) == bool(refusal)
    if refusal:
        assert "cannot start privileged containers" in provider.note
        assert refusal.strip().splitlines()[-1][:60] in provider.note


def kubectl(provider: KindProvider, kubeconfig: Path, *args: str, stdin: str = "") -> str:
    done = subprocess.run(
        [str(provider.kubectl), "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "smiley", "namespace": "default", "labels": {"app": "smiley"}},
    "spec": {
        "containers": [
            {
                "name": "smiley",
                "imagePullPolicy": "Never",
                "env": [{"name": "SMILEY", "value": "Grinning"}],
                "ports": [{"containerPort": 8000}],
                "readinessProbe": {"httpGet": {"path": "/", "port": 8000}, "periodSeconds": 1},
            }
        ]
    },
}


def pulled_through_the_mirror(
    provider: KindProvider, config: Path, mirror: LocalRegistry, image: str
) -> None:
    """A pod naming ghcr.io runs: the image exists only in the mirror, under its path
    (an image of its own, not the loaded one's content under another name)."""
    tag = uuid.uuid4().hex[:8]
    upstream = f"ghcr.io/buoyantio/faces-smiley:meshexp-test-{tag}"
    in_mirror = f"{mirror.address}/ghcr/buoyantio/faces-smiley:meshexp-test-{tag}"
    context = config.parent / "mirrored-image"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {image}\nLABEL org.example.pulled={tag}\n")
    docker_engine.build_image(context=context, tag=in_mirror, platform="linux/amd64")
    try:
        digest = docker_engine.push_image(in_mirror)
    finally:
        docker_engine.remove_image(in_mirror)
    assert not docker_engine.image_exists(upstream)
    pod = json.loads(json.dumps(POD))
    pod["metadata"]["name"] = "mirrored"
    pod["spec"]["containers"][0] |= {"image": upstream, "imagePullPolicy": "Always"}
    kubectl(provider, config, "apply", "-f", "-", stdin=json.dumps(pod))
    kubectl(provider, config, "wait", "--for=condition=Ready", "pod/mirrored", "--timeout=120s")
    status = json.loads(kubectl(provider, config, "get", "pod", "mirrored", "-o", "json"))
    (container,) = status["status"]["containerStatuses"]
    assert container["image"] == upstream  # the node knows it by upstream's name
    assert digest
    assert container["imageID"].endswith(digest)


def test_a_pod_in_the_kind_cluster_answers_a_container_routed_to_it(
    provider: KindProvider, mirror: LocalRegistry, smiley_image: str, tmp_path: Path
) -> None:
    name = f"meshexp-t{uuid.uuid4().hex[:6]}"
    with kind_cluster(provider=provider, name=name, network=name, folder=tmp_path) as cluster:
        config = cluster.kubeconfig
        nodes = json.loads(kubectl(provider, config, "get", "nodes", "-o", "json"))["items"]
        assert [node["metadata"]["name"] for node in nodes] == [f"{name}-control-plane"]
        kubectl(
            provider, config, "wait", "--for=condition=Ready", "node", "--all", "--timeout=120s"
        )
        kubectl(
            provider,
            config,
            "-n",
            "kube-system",
            "wait",
            "--for=condition=Ready",
            "pod",
            "--all",
            "--timeout=180s",
        )
        run_command(provider.load_image(name, smiley_image), "kind load docker-image")
        pod = json.loads(json.dumps(POD))
        pod["spec"]["containers"][0]["image"] = smiley_image
        kubectl(provider, config, "apply", "-f", "-", stdin=json.dumps(pod))
        kubectl(provider, config, "wait", "--for=condition=Ready", "pod/smiley", "--timeout=120s")
        pulled_through_the_mirror(provider, config, mirror, smiley_image)
        pod_ip = kubectl(provider, config, "get", "pod", "smiley", "-o", "jsonpath={.status.podIP}")
        node_ip = docker_engine.container_ip(f"{name}-control-plane", name)
        # The walk-through's own step (`ip route add POD_CIDR via NODE_IP`) in a plain
        # container on the cluster's network, then HTTP to the pod's own address.
        script = (
            f"ip route add {POD_SUBNET} via {node_ip} && "
            f"exec 3<>/dev/tcp/{pod_ip}/8000 && "
            "printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3 && echo"
        )
        code, output = docker_engine.run_once(
            provider.node_image,  # any image with bash and ip: this one is at hand
            ["-c", script],
            network=name,
            entrypoint="bash",
            cap_add=["NET_ADMIN"],
        )
        assert code == 0, output
        assert output.startswith("HTTP/1.0 200") or output.startswith("HTTP/1.1 200"), output
        assert "1F603" in output, output  # Grinning, as the pod's environment says
    assert leftovers(cluster) == []
    assert not docker_engine.network_exists(name)


def test_online_kind_uses_the_node_image_kind_itself_pins() -> None:
    """The online path runs kind's own default node image; it is read from kind's source
    (the module the offline path builds from), so a kind upgrade carries its image along."""
    pinned = gomodules.kind_node_image()
    assert re.fullmatch(r"kindest/node:v1\.\d+\.\d+@sha256:[0-9a-f]{64}", pinned), pinned
