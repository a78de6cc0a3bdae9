"""The real linkerd2-proxy against what we render and what we claim.

The tests here need the real proxy (test equipment beside the checkout, or
PROXY_FILE): they skip elsewhere with the file named, and fail in CI without
it. The policy test also runs the stand-in, which must behave alike.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from builder.build.image import build_workload_image
from builder.build.render import render_files
from builder.check.live import wait_ready
from builder.check.report import ImageFacts, InboundPolicy
from builder.check.traffic import check_inbound, check_outbound
from builder.config.catalog import find_workload
from builder.config.contract import known_releases
from builder.core import image_contract
from builder.engine import docker_engine
from builder.engine.containers import mesh_container
from tests.integration.test_image import proxy_environment

# Read from the real proxy's README (shared/test-equipment/linkerd2-proxy):
# without any one of these it refuses to start.
REQUIRED = (
    "LINKERD2_PROXY_DESTINATION_SVC_ADDR",
    "LINKERD2_PROXY_POLICY_SVC_ADDR",
    "LINKERD2_PROXY_POLICY_SVC_NAME",
    "LINKERD2_PROXY_POLICY_WORKLOAD",
    "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS",
    "LINKERD2_PROXY_IDENTITY_SERVER_ID",
    "LINKERD2_PROXY_IDENTITY_SERVER_NAME",
)
PROXY = image_contract.PROXY
SETTLE_SECONDS = 4.0  # a rejected configuration exits within milliseconds

# Every line (2.15 ... 2.20) and every other release the tables name.
VERSIONS = known_releases()


@pytest.fixture(scope="session")
def real_smiley(real_proxy: Path, smiley_image):
    """The smiley image, built with the real proxy (the session's images are, in CI)."""
    assert not smiley_image.standin, "the session's images carry the stand-in"
    return smiley_image


def run_proxy(engine, image: str, env: dict[str, str], command: list[str] | None = None):
    """Start the proxy binary alone (as its UID) and let it settle; (exit code or None, log)."""
    container = engine.containers.run(
        image,
        command or [],
        entrypoint=[PROXY] if command is None else None,
        environment=env,
        user="2102",
        detach=True,
    )
    try:
        deadline = time.monotonic() + SETTLE_SECONDS
        while time.monotonic() < deadline:
            container.reload()
            if container.status == "exited":
                break
            time.sleep(0.2)
        container.reload()
        code = container.attrs["State"]["ExitCode"] if container.status == "exited" else None
        return code, container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)


@pytest.fixture(scope="module")
def rendered_environment(real_smiley, module_network, certs) -> dict[str, str]:
    """Exactly the environment run-proxy gave the running proxy in a healthy container."""
    with mesh_container(
        image=real_smiley.reference, network=module_network, certs=certs, env={}
    ) as box:
        return proxy_environment(box)


def test_rendered_environment_is_accepted(engine, real_smiley, rendered_environment) -> None:
    code, log = run_proxy(engine, real_smiley.reference, rendered_environment)
    assert "Invalid configuration" not in log, log
    assert code is None, f"the real proxy exited {code} with run-proxy's environment:\n{log}"


@pytest.mark.parametrize("variable", REQUIRED)
def test_each_required_variable_is_required(
    engine, real_smiley, rendered_environment, variable: str
) -> None:
    """Our list of required variables matches the real proxy's, one by one."""
    assert variable in rendered_environment, f"run-proxy does not set {variable}"
    env = {k: v for k, v in rendered_environment.items() if k != variable}
    code, log = run_proxy(engine, real_smiley.reference, env)
    assert code == 64, f"without {variable} the proxy exited {code}:\n{log}"
    assert "Invalid configuration" in log


@pytest.mark.parametrize("linkerd", VERSIONS)
def test_run_proxy_of_every_linkerd_version_is_accepted(
    engine, offline_settings, real_smiley, certs, tmp_path: Path, linkerd: str
) -> None:
    """run-proxy as rendered for each supported Linkerd, run as the image runs it."""
    settings = offline_settings.with_(linkerd_version=linkerd).check()
    text, _ = render_files(find_workload("smiley"), settings)["scripts/run-proxy"]
    script = tmp_path / "run-proxy"
    script.write_text(text)
    script.chmod(0o755)
    container = engine.containers.run(
        real_smiley.reference,
        entrypoint=[image_contract.RUN_PROXY],
        environment={
            "WORKLOAD_NAME": "smiley",
            "WORKLOAD_NAMESPACE": "faces",
            "NODE_NAME": "$(hostname)",
            "SPIFFE_ID": "spiffe://root.linkerd.cluster.local/smiley",
            "SERVER_NAME": "smiley.cluster.local",
            "INBOUND_POLICY": "all-unauthenticated",
        },
        volumes={
            str(script): {"bind": image_contract.RUN_PROXY, "mode": "ro"},
            str(certs / "ca.crt"): {"bind": "/run/meshexp/trust-anchors.pem", "mode": "ro"},
        },
        user="2102",
        detach=True,
    )
    try:
        # What is proved is an absence (the proxy did not exit on its configuration),
        # which can only be watched for a while: a rejection exits within milliseconds.
        time.sleep(SETTLE_SECONDS)
        container.reload()
        log = container.logs().decode(errors="replace")
        assert container.status == "running", f"Linkerd {linkerd}: exited:\n{log}"
        assert "Invalid configuration" not in log
        assert "linkerd2_proxy: release" in log
    finally:
        container.remove(force=True)


POLICIES = (
    "deny",
    "all-authenticated",
    "all-unauthenticated",
    "audit",
    "cluster-unauthenticated",
    "cluster-authenticated",
)


def policy_env(policy: str, network: str) -> dict[str, str]:
    """The policy, with the test's own network as the cluster networks where it needs them."""
    env = {"LINKERD2_PROXY_INBOUND_DEFAULT_POLICY": policy}
    if policy.startswith("cluster-"):
        env["LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS"] = docker_engine.network_subnet(network)
    return env


@pytest.fixture(scope="session")
def standin_smiley(engine, standin_settings):
    return build_workload_image(workload=find_workload("smiley"), settings=standin_settings)


@pytest.mark.parametrize("proxy", ["real", "standin"])
@pytest.mark.parametrize("policy", POLICIES)
def test_ready_and_enforced_under_every_default_policy(
    request: pytest.FixtureRequest, network, certs, policy: str, proxy: str
) -> None:
    """The bootstrap comes up, check's readiness holds, and inbound follows the policy:
    with the real proxy, and with the stand-in, which must behave alike.
    """
    image = request.getfixturevalue(f"{proxy}_smiley")
    assert image.standin is (proxy == "standin")
    env = policy_env(policy, network)
    facts = ImageFacts(image.labels)
    inbound = InboundPolicy.of(facts, env)
    with mesh_container(
        image=image.reference, network=network, certs=certs, env=env, timeout=120
    ) as box:
        assert f"bootstrap: proxy ready (default inbound policy {policy})" in box.logs()
        ready = wait_ready(box, 60, inbound)
        detail = check_inbound(box, facts, image.reference, inbound)
        outbound = check_outbound(box, facts)
    admitted = policy in ("all-unauthenticated", "audit", "cluster-unauthenticated")
    if admitted:
        assert "/ready answered 200" in ready
        assert "port 8000 (HTTP/1): a client got 'HTTP/1.0 200 OK', as the workload" in detail
        assert "port 9090 (HTTP/1): a client got 'HTTP/1.0 " in detail  # metrics
    else:
        assert "refused" in ready
        assert "certified its identity" in ready
        expected = "closed the connection" if policy == "deny" else "answered 403"
        assert f"the proxy {expected} for a plaintext client" in detail
    assert "landed on the proxy's 127.0.0.1:4140" in outbound


def test_cluster_unauthenticated_refuses_clients_outside_the_cluster_networks(
    real_smiley, network, certs
) -> None:
    env = {
        "LINKERD2_PROXY_INBOUND_DEFAULT_POLICY": "cluster-unauthenticated",
        "LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS": "10.0.0.0/8",
    }
    facts = ImageFacts(real_smiley.labels)
    inbound = InboundPolicy.of(facts, env)
    assert not inbound.admits(docker_engine.network_subnet(network))
    with mesh_container(image=real_smiley.reference, network=network, certs=certs, env=env) as box:
        assert "certified its identity" in wait_ready(box, 60, inbound)
        assert "answered 403" in check_inbound(box, facts, real_smiley.reference, inbound)


def test_outbound_is_held_by_the_real_proxy_without_a_control_plane(
    real_smiley, network, certs
) -> None:
    """What the stand-in imitates: the workload's connection is accepted, not relayed."""
    with mesh_container(image=real_smiley.reference, network=network, certs=certs, env={}) as box:
        detail = check_outbound(box, ImageFacts(real_smiley.labels))
    assert "held by the proxy: no policy controller answers here" in detail
