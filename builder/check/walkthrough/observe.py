"""What the walk-through reads, and how it reads it: face's answers through the GUI's
Service, the proxies' metrics (the external workload's admin port, face's through
`linkerd diagnostics`), the EndpointSlices Linkerd writes for an ExternalWorkload, its
Ready condition, and the GUI's grid in Chromium. Pure readers of text are tested without
a cluster; the others take the walk-through's Runner.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from builder.check.answers import parse_answers
from builder.check.browser import Cell, grid_cells, page_dom, screenshot
from builder.check.listings import metric_series
from builder.check.walkthrough.steps import E2EConfig, Runner, gui_requests_script
from builder.cluster import kube
from builder.core.errors import CheckError
from builder.engine import docker_engine

GRINNING_CHAR = "\U0001f603"
HEART_EYES_CHAR = "\U0001f60d"


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


def face_identity(api: kube.KubeClient) -> str:
    """The in-cluster face's mesh identity: its pods' service account, as Linkerd names it
    (the Faces chart gives face none of its own, so it is `default`)."""
    deployment = kube.get_object(api, kube.ObjectRef("Deployment", "face", "faces")) or {}
    template = (deployment.get("spec") or {}).get("template") or {}
    account = (template.get("spec") or {}).get("serviceAccountName") or ""
    return f"{account or 'default'}.faces.serviceaccount.identity.linkerd.cluster.local"


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


def ready_condition(api: kube.KubeClient, name: str) -> str:
    """The ExternalWorkload's Ready condition status ("True", "False", or "" when unset)."""
    return str((kube.ready_condition(name, "faces", api) or {}).get("status", ""))


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


def images_run(pods: list[dict[str, Any]]) -> dict[str, str]:
    """Each image the pods' containers (init containers too) run, with the image ID the
    node's container runtime resolved it to (a registry digest where it was pulled)."""
    seen: dict[str, str] = {}
    for pod in pods:
        status = pod.get("status", {})
        for container in [
            *status.get("initContainerStatuses", []),
            *status.get("containerStatuses", []),
        ]:
            if container.get("image") and container.get("imageID"):
                seen[container["image"]] = container["imageID"]
    return dict(sorted(seen.items()))
