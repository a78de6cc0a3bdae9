"""End to end against a throwaway k3d cluster running Linkerd (the walk-through, automated).

Everything here is built from pure parts that are tested without a cluster:
the prerequisite check, the command lines of each step, the manifests it
applies, the waits (polling with a limit) and the cleanup order (always run,
in reverse, even when a step fails). `run_e2e` drives them with a Runner that
executes the commands; the tests drive them with one that records them.
The proxy stand-in is refused: e2e runs only with the real Linkerd proxy.

The steps' command lines and manifests are builder.check.e2e_steps', the reading of
Faces answers builder.check.answers'; this module runs them.
"""

from __future__ import annotations

import functools
import json
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import yaml

from builder.build.image import build_workload_image
from builder.check.answers import CURSING, GRINNING, face_trouble, parse_answers, smiley_share
from builder.check.browser import Cell, grid_cells, page_dom, rgb, screenshot
from builder.check.e2e_steps import (
    SECOND_BACKENDS,
    E2EConfig,
    canary_route,
    check_failures,
    cluster_create,
    corefile,
    dns_nodeport,
    excepted_checks,
    faces_install,
    gui_requests_script,
    kubectl,
    linkerd_install,
    second_backends,
)
from builder.check.listings import metric_series
from builder.cluster.keeper import StatusKeeper, targets_from_manifests
from builder.cluster.run import Route, run_workload
from builder.config.catalog import find_workload
from builder.config.settings import Settings
from builder.core.errors import CheckError, MeshexpError
from builder.engine import docker_engine


class Runner(Protocol):
    def __call__(self, command: Sequence[str], stdin: str | None = None) -> str: ...


class CommandFailed(CheckError):
    """A step's command exited non-zero; `output` is what it printed on stdout."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


def subprocess_runner(command: Sequence[str], stdin: str | None = None) -> str:
    """Run a command; its stdout, or CommandFailed with the end of its stderr."""
    result = subprocess.run(list(command), input=stdin, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise CommandFailed(
            f"`{' '.join(command[:4])} ...` failed ({result.returncode}): "
            f"{(result.stderr or result.stdout).strip()[-1000:]}",
            result.stdout,
        )
    return result.stdout


def wait_until(
    what: str,
    probe: Callable[[], bool],
    limit: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    interval: float = 2.0,
) -> float:
    """Poll `probe` until it holds; seconds taken, or CheckError naming `what`."""
    start = clock()
    while True:
        try:
            if probe():
                return clock() - start
        except CheckError:
            pass
        if clock() - start >= limit:
            raise CheckError(f"e2e: {what} did not happen within {limit:.0f}s")
        sleep(interval)


@dataclass
class Cleanup:
    """Undo actions, run in reverse order, each attempted even if another fails."""

    actions: list[tuple[str, Callable[[], object]]] = field(default_factory=list)

    def push(self, name: str, action: Callable[[], object]) -> None:
        self.actions.append((name, action))

    def run(self) -> list[str]:
        errors = []
        for name, action in reversed(self.actions):
            try:
                action()
            except (MeshexpError, OSError) as exc:
                errors.append(f"{name}: {exc}")
        self.actions.clear()
        return errors


def cluster_setup(
    config: E2EConfig,
    run: Runner,
    cleanup: Cleanup,
    timings: dict[str, float] | None = None,
    said: list[str] | None = None,
) -> dict[str, str]:
    """Steps 1-4: cluster, Linkerd, Faces, DNS; returns node IP, pod CIDR and ports.
    `timings` gets the seconds from cluster create to node Ready, and from Linkerd's
    install to its control plane Available."""
    from builder.cluster.certs import create_certs

    timings = {} if timings is None else timings
    started = time.monotonic()
    provider = config.provider
    config.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
    cleanup.push(
        f"delete the {provider.name} cluster", lambda: run(provider.delete(config.cluster))
    )
    for command in cluster_create(config):
        run(command)
    run(kubectl(config, "wait", "--for=condition=Ready", "node", "--all", "--timeout=180s"))
    timings[CLUSTER_READY] = time.monotonic() - started
    for image in config.load_images:
        run(provider.load_image(config.cluster, image))
    wait_until(
        "the default service account",
        lambda: bool(run(kubectl(config, "get", "serviceaccount", "default", "-o", "name"))),
        120,
    )
    if not (config.certs / "issuer.key").exists():
        create_certs(folder=config.certs)
    installing = time.monotonic()
    for command in linkerd_install(config):
        run(kubectl(config, "apply", "-f", "-"), stdin=run(command))
    excepted = linkerd_check(config, run)
    if said is not None and excepted:
        said.append(
            "linkerd check passed but for its version checks (no internet): " + "; ".join(excepted)
        )
    timings[LINKERD_AVAILABLE] = time.monotonic() - installing
    for command in faces_install(config):
        run(command)
    run(dns_nodeport(config))
    node = json.loads(run(kubectl(config, "get", "nodes", "-o", "json")))["items"][0]
    node_ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    dns = _service(config, run, "kube-system", "kube-dns")
    gui = _service(config, run, "faces", "faces-gui")
    return {
        "node_ip": node_ip,
        "pod_cidr": node["spec"]["podCIDR"],
        "dns_port": str(
            next(p["nodePort"] for p in dns["spec"]["ports"] if p["protocol"] == "UDP")
        ),
        "gui_port": str(gui["spec"]["ports"][0]["nodePort"]),
    }


CLUSTER_READY = "cluster create -> node Ready"
LINKERD_AVAILABLE = "Linkerd install -> control plane Available"
FIRST_ANSWER = "external workloads' docker run -> face's first meshed answer"
WHOLE = "the whole walk-through (cluster to cleanup)"


def _service(config: E2EConfig, run: Runner, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        run(kubectl(config, "-n", namespace, "get", "service", name, "-o", "json"))
    )
    return found


def linkerd_check(config: E2EConfig, run: Runner) -> list[str]:
    """`linkerd check` until the control plane is ready; offline, its version checks
    (which ask the internet for the latest release) are excepted, and that is said."""
    command = [config.tools.linkerd, "--kubeconfig", str(config.kubeconfig), "check"]
    run(
        kubectl(
            config,
            "-n",
            "linkerd",
            "wait",
            "--for=condition=Available",
            "deployment",
            "--all",
            "--timeout=300s",
        )
    )
    try:
        report = run([*command, "-o", "json"])
    except CommandFailed as exc:
        report = exc.output
    failures = check_failures(report, config.offline)
    if failures:
        raise CheckError("e2e: linkerd check failed: " + "; ".join(failures))
    return excepted_checks(report, config.offline)


def apply_yaml(config: E2EConfig, run: Runner, document: dict[str, object]) -> None:
    run(kubectl(config, "apply", "-f", "-"), stdin=yaml.safe_dump(document))


def face_answers(config: E2EConfig, found: dict[str, str], image: str, count: int) -> list[str]:
    """`count` answers of face through the GUI's Service (its NodePort on the node), asked
    from a container on the cluster's network, as a browser on that network would."""
    script = gui_requests_script(found["node_ip"], int(found["gui_port"]), count)
    code, output = docker_engine.run_once(
        image, ["-c", script], network=config.network, entrypoint="bash"
    )
    if code != 0:
        raise CheckError(f"e2e: asking face through the GUI failed ({code}): {output[-500:]}")
    return [line for line in output.splitlines() if line.startswith("{")]


def tls_inbound_from(metrics: str, client_id: str) -> int:
    """TLS inbound connections opened by `client_id`, from the real proxy's metrics."""
    return sum(
        int(value)
        for labels, value in metric_series(metrics, "tcp_open_total")
        if labels.get("direction") == "inbound"
        and labels.get("tls") == "true"
        and labels.get("client_id") == client_id
    )


def tls_outbound_to_external(metrics: str, workload: str) -> list[str]:
    """The server identities of TLS connections a proxy opened to the external workload
    `workload` (Linkerd labels them `dst_external_workload`), from its metrics."""
    return sorted(
        {
            labels.get("server_id", "")
            for labels, value in metric_series(metrics, "tcp_open_total")
            if labels.get("direction") == "outbound"
            and labels.get("tls") == "true"
            and labels.get("dst_external_workload") == workload
            and value > 0
        }
    )


def external_endpoint_slices(slices: dict[str, Any], workload: str) -> list[str]:
    """Names of the EndpointSlices whose endpoints point at the ExternalWorkload
    `workload` (Linkerd's external-workloads controller writes them)."""
    return sorted(
        item["metadata"]["name"]
        for item in slices.get("items", [])
        if any(
            (endpoint.get("targetRef") or {}).get("kind") == "ExternalWorkload"
            and (endpoint.get("targetRef") or {}).get("name") == workload
            for endpoint in item.get("endpoints") or []
        )
    )


@dataclass(frozen=True)
class E2EResult:
    answers: int
    smileys_external: float
    tls_from_face: int
    canary_share_external: float
    kept: bool
    server_ids: tuple[str, ...] = ()
    endpoint_slices: tuple[str, ...] = ()
    # after the external smiley is stopped: face's share of its fallback (Cursing), and
    # the ExternalWorkload's Ready condition as the keeper wrote it
    fallback_share: float = 0.0
    ready_after_kill: str = ""
    # the GUI's grid in Chromium, before and during the canary
    grid_before: tuple[Cell, ...] = ()
    grid_during: tuple[Cell, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    # what the run excepted and says so (offline: linkerd check's version checks)
    said: tuple[str, ...] = ()


def run_e2e(
    *, config: E2EConfig, settings: Settings, run: Runner = subprocess_runner, requests: int = 40
) -> E2EResult:
    """The whole walk-through; everything it creates is removed unless config.keep."""
    cleanup = Cleanup()
    timings: dict[str, float] = {}
    said: list[str] = [config.provider.note] if config.provider.note else []
    started = time.monotonic()
    try:
        found = cluster_setup(config, run, cleanup, timings, said)
        dns_ip = start_forwarder(config, found, cleanup)
        images = {name: external_image(settings, name) for name in ("smiley", "color")}
        running = time.monotonic()
        for name, image in images.items():
            start_external(config, settings, name, image, found, dns_ip, cleanup)
        start_keeper(config, cleanup)
        wait_until(
            "face's first answer through the GUI",
            lambda: bool(face_answers(config, found, images["smiley"], 1)),
            120,
            interval=0.5,
        )
        timings[FIRST_ANSWER] = time.monotonic() - running
        answers = face_answers(config, found, images["smiley"], requests)
        if not answers:
            raise CheckError("e2e: face answered nothing")
        trouble = face_trouble(answers)
        if trouble:
            raise CheckError("e2e: " + "; ".join(sorted(set(trouble))[:5]))
        smileys = smiley_share(answers, GRINNING)
        metrics = external_metrics(config, "smiley")
        tls = tls_inbound_from(metrics, face_identity(config, run))
        if tls == 0:
            seen = [line for line in metrics.splitlines() if "inbound" in line and "open" in line]
            raise CheckError(
                "e2e: no TLS inbound connection from face at the external smiley; its "
                f"inbound connections: {'; '.join(seen[:6]) or 'none'}"
            )
        colour = most_common_colour(answers)
        before = gui_grid(config, found, "gui-before-canary.png")
        wrong = [c for c in before if c.smiley != GRINNING_CHAR or c.background != rgb(colour)]
        if len(before) != 16 or wrong:
            raise CheckError(
                f"e2e: the GUI's grid ({len(before)} cells) is not all grinning on {colour}: "
                f"{wrong[:4]}"
            )
        server_ids = tls_outbound_to_external(face_metrics(config, run), "smiley")
        if not any(server_id.endswith("/smiley") for server_id in server_ids):
            raise CheckError(
                "e2e: face's proxy opened no TLS connection to the external smiley's SPIFFE "
                f"identity (server ids seen: {server_ids or 'none'})"
            )
        slices = external_endpoint_slices(
            json.loads(run(kubectl(config, "-n", "faces", "get", "endpointslices", "-o", "json"))),
            "smiley",
        )
        if not slices:
            raise CheckError("e2e: no EndpointSlice points at the smiley ExternalWorkload")
        for document in second_backends(config.faces_version):
            apply_yaml(config, run, document)
        for name, *_ in SECOND_BACKENDS:
            run(
                kubectl(
                    config,
                    "-n",
                    "faces",
                    "rollout",
                    "status",
                    f"deployment/{name}",
                    "--timeout=180s",
                )
            )
        apply_yaml(config, run, canary_route(50))
        canary = smiley_share(face_answers(config, found, images["smiley"], requests), GRINNING)
        if not 0.2 <= canary <= 0.8:
            raise CheckError(f"e2e: the 50/50 canary sent {canary:.0%} to the external smiley")
        during = gui_grid(config, found, "gui-during-canary.png")
        drawn = {cell.smiley for cell in during}
        if not {GRINNING_CHAR, HEART_EYES_CHAR} <= drawn:
            raise CheckError(f"e2e: during the canary the GUI drew {sorted(drawn)}, not a mix")
        run(
            kubectl(config, "-n", "faces", "delete", "httproute.policy.linkerd.io", "smiley-canary")
        )
        fallback, ready = kill_external_smiley(config, run, found, images["smiley"], requests)
        return E2EResult(
            len(answers),
            smileys,
            tls,
            canary,
            config.keep,
            tuple(server_ids),
            tuple(slices),
            fallback,
            ready,
            tuple(before),
            tuple(during),
            timings,
            tuple(said),
        )
    finally:
        if not config.keep:
            errors = cleanup.run()
            if docker_engine.network_exists(config.network):
                docker_engine.remove_network(config.network)
            timings[WHOLE] = time.monotonic() - started
            if errors:
                raise CheckError("e2e cleanup left things behind: " + "; ".join(errors))


def face_identity(config: E2EConfig, run: Runner) -> str:
    """The in-cluster face's mesh identity: its pods' service account, as Linkerd names it
    (the Faces chart gives face none of its own, so it is `default`)."""
    account = run(
        kubectl(
            config,
            "-n",
            "faces",
            "get",
            "deployment",
            "face",
            "-o",
            "jsonpath={.spec.template.spec.serviceAccountName}",
        )
    ).strip()
    return f"{account or 'default'}.faces.serviceaccount.identity.linkerd.cluster.local"


def start_forwarder(config: E2EConfig, found: dict[str, str], cleanup: Cleanup) -> str:
    """The seed's DNS forwarder on the cluster's network: cluster names to kube-dns."""
    forwarder_dir = config.certs.parent / "dns"
    forwarder_dir.mkdir(parents=True, exist_ok=True)
    (forwarder_dir / "Corefile").write_text(corefile(found["node_ip"], int(found["dns_port"])))
    name = f"{config.cluster}-dns"
    cleanup.push("remove the DNS forwarder", lambda: docker_engine.remove_container(name))
    docker_engine.run_detached(
        config.forwarder_image,
        name=name,
        network=config.network,
        volumes={str(forwarder_dir.resolve()): "/etc/coredns"},
        command=["-conf", "/etc/coredns/Corefile"],
    )
    return docker_engine.container_ip(name, config.network)


def external_image(settings: Settings, name: str) -> str:
    """The external workload's image, built by meshexp-build with the real proxy."""
    image = build_workload_image(workload=find_workload(name), settings=settings)
    if image.standin:
        raise CheckError("e2e refuses the proxy stand-in: build with the real proxy")
    return image.reference


def start_external(
    config: E2EConfig,
    settings: Settings,
    name: str,
    image: str,
    found: dict[str, str],
    dns_ip: str,
    cleanup: Cleanup,
) -> None:
    """An external workload started on the cluster's network with the route to the pods,
    registered (its ExternalWorkload and Service applied) and kept Ready."""
    container = f"{config.cluster}-{name}"
    remove = functools.partial(docker_engine.remove_container, container)
    cleanup.push(f"remove {container}", remove)
    run_workload(
        workload=find_workload(name),
        settings=settings,
        certs=config.certs,
        network=config.network,
        manifests_dir=config.certs.parent / "manifests",
        image=image,
        name=container,
        dns=[dns_ip],
        routes=[Route(found["pod_cidr"], found["node_ip"])],
        kubeconfig=config.kubeconfig,
        apply=True,
        service_port=80,
    )


GRINNING_CHAR = "\U0001f603"
HEART_EYES_CHAR = "\U0001f60d"


def most_common_colour(answers: list[str]) -> str:
    colours = Counter(answer.get("color", "") for answer in parse_answers(answers))
    return colours.most_common(1)[0][0] if colours else ""


def gui_grid(config: E2EConfig, found: dict[str, str], picture: str) -> list[Cell]:
    """The Faces GUI in Chromium, through its Service's NodePort: the grid it drew, and a
    screenshot kept in the artifacts folder."""
    url = f"http://{found['node_ip']}:{found['gui_port']}/"
    folder = config.artifacts or config.certs.parent
    screenshot(url, folder / picture)
    return grid_cells(page_dom(url))


def start_keeper(config: E2EConfig, cleanup: Cleanup) -> None:
    """The status keeper for the external workloads, in a thread until cleanup."""
    targets = targets_from_manifests(config.certs.parent / "manifests")
    keeper = StatusKeeper(kubeconfig=config.kubeconfig, targets=targets)
    stop = threading.Event()
    thread = threading.Thread(target=keeper.run, args=(stop.is_set,), daemon=True)
    thread.start()

    def stop_keeper() -> None:
        stop.set()
        thread.join(timeout=10)

    cleanup.push("stop the status keeper", stop_keeper)


def ready_condition(config: E2EConfig, run: Runner, name: str) -> str:
    """The ExternalWorkload's Ready condition status ("True", "False", or "" when unset)."""
    found = json.loads(
        run(kubectl(config, "-n", "faces", "get", "externalworkload", name, "-o", "json"))
    )
    conditions = (found.get("status") or {}).get("conditions") or []
    return next((c.get("status", "") for c in conditions if c.get("type") == "Ready"), "")


def kill_external_smiley(
    config: E2EConfig, run: Runner, found: dict[str, str], asker: str, requests: int
) -> tuple[float, str]:
    """Stop the external smiley: face answers with its fallback, and the keeper marks the
    ExternalWorkload not Ready. The fallback's share, and the Ready status seen."""
    docker_engine.stop_container(f"{config.cluster}-smiley", timeout=5)
    wait_until(
        "the smiley ExternalWorkload turning not Ready",
        lambda: ready_condition(config, run, "smiley") == "False",
        60,
    )
    answers = face_answers(config, found, asker, requests)
    return smiley_share(answers, CURSING), ready_condition(config, run, "smiley")


def face_metrics(config: E2EConfig, run: Runner) -> str:
    """The in-cluster face's proxy metrics, as `linkerd diagnostics` reads them."""
    return run(
        [
            config.tools.linkerd,
            "--kubeconfig",
            str(config.kubeconfig),
            "diagnostics",
            "proxy-metrics",
            "-n",
            "faces",
            "deploy/face",
        ]
    )


def external_metrics(config: E2EConfig, name: str) -> str:
    """The external workload's proxy metrics (its admin port, from inside its container)."""
    response = docker_engine.exec_in(
        f"{config.cluster}-{name}",
        [
            "bash",
            "-c",
            "exec 3<>/dev/tcp/127.0.0.1/4191; "
            "printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3",
        ],
    )[1]
    head, _, body = response.replace("\r\n", "\n").partition("\n\n")
    if head.split()[1:2] != ["200"]:
        raise CheckError(f"e2e: {name}'s proxy metrics did not answer 200: {head[:200]}")
    return body
