"""The walk-through, run end to end on a throwaway cluster (k3d, or kind): each step a
small function of one `Walk`, run in order by `run_e2e`.

A step that fails ends the run with one line naming the step and the cause, whatever
failed under it (a command, the engine, the cluster's API, a wait). What the run made is
removed in reverse order of making, each removal attempted even if another fails, and
tolerant of parts already gone (a node container removed under the run, a removal the
engine has in progress); then what should be gone is looked for, and anything still
there is named in the same line. The proxy stand-in is refused: e2e runs only with the
real Linkerd proxy.

The steps' command lines and manifests are builder.check.walkthrough.steps', what they
read builder.check.walkthrough.observe'; the tests drive the steps with a Runner that
records the command lines.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import yaml

from builder.check.answers import CURSING, GRINNING, face_trouble, smiley_share
from builder.check.browser import rgb
from builder.check.walkthrough.observe import (
    GRINNING_CHAR,
    HEART_EYES_CHAR,
    external_endpoint_slices,
    external_metrics,
    face_answers,
    face_identity,
    face_metrics,
    gui_grid,
    most_common_colour,
    ready_condition,
    tls_inbound_from,
    tls_outbound_to_external,
)
from builder.check.walkthrough.selfreg import (
    a_smiley_registers_itself,
    install_registrar,
    the_registrar_pod_is_deleted,
    the_self_registered_smiley_stops,
)
from builder.check.walkthrough.setup import (
    build_images,
    create_cluster,
    install_faces,
    install_linkerd,
    load_images,
    start_externals,
    start_forwarder,
)
from builder.check.walkthrough.steps import (
    SECOND_BACKENDS,
    CommandFailed,
    E2EConfig,
    Runner,
    canary_route,
    second_backends,
    subprocess_runner,
)
from builder.check.walkthrough.walk import (
    FIRST_ANSWER,
    WHOLE,
    E2EResult,
    StepFailed,
    Walk,
    at_step,
    one_line,
)
from builder.cluster import kube
from builder.config.settings import Settings
from builder.core import wait
from builder.core.errors import CheckError
from builder.core.progress import Progress
from builder.engine import docker_engine


def first_answer(walk: Walk) -> None:
    """face answers through the GUI's Service once the external workloads are in."""

    def answered() -> bool | wait.NotYet:
        try:
            return bool(face_answers(walk.config, walk.found, walk.images["smiley"], 1)) or (
                wait.NotYet("face answered nothing yet")
            )
        except CheckError as exc:
            return wait.NotYet(one_line(exc, 300))

    wait.until(answered, timeout=120, interval=0.5)
    walk.timings[FIRST_ANSWER] = time.monotonic() - walk.externals_started


def face_serves_from_the_externals(walk: Walk) -> None:
    """face's answers: all well, grinning (the external smiley's), and the external smiley
    saw face's proxy over TLS, under face's identity."""
    answers = face_answers(walk.config, walk.found, walk.images["smiley"], walk.requests)
    if not answers:
        raise CheckError("e2e: face answered nothing")
    trouble = face_trouble(answers)
    if trouble:
        raise CheckError("e2e: " + "; ".join(sorted(set(trouble))[:5]))
    walk.answers, walk.smileys = answers, smiley_share(answers, GRINNING)
    metrics = external_metrics(walk.config, "smiley")
    walk.tls = tls_inbound_from(metrics, face_identity(walk.api))
    if walk.tls == 0:
        seen = [line for line in metrics.splitlines() if "inbound" in line and "open" in line]
        raise CheckError(
            "e2e: no TLS inbound connection from face at the external smiley; its inbound "
            f"connections: {'; '.join(seen[:6]) or 'none'}"
        )


def gui_draws_the_externals(walk: Walk) -> None:
    """The GUI in Chromium: 16 cells, each grinning on the external color's colour."""
    colour = most_common_colour(walk.answers)
    walk.grid_before = gui_grid(walk.config, walk.found, "gui-before-canary.png")
    wrong = [
        c for c in walk.grid_before if c.smiley != GRINNING_CHAR or c.background != rgb(colour)
    ]
    if len(walk.grid_before) != 16 or wrong:
        raise CheckError(
            f"e2e: the GUI's grid ({len(walk.grid_before)} cells) is not all grinning on "
            f"{colour}: {wrong[:4]}"
        )


def face_reaches_the_external_identity(walk: Walk) -> None:
    """face's proxy opened TLS to the external smiley's SPIFFE identity, through the
    EndpointSlice Linkerd wrote for its ExternalWorkload."""
    walk.server_ids = tls_outbound_to_external(face_metrics(walk.config, walk.run), "smiley")
    if not any(server_id.endswith("/smiley") for server_id in walk.server_ids):
        raise CheckError(
            "e2e: face's proxy opened no TLS connection to the external smiley's SPIFFE "
            f"identity (server ids seen: {walk.server_ids or 'none'})"
        )
    slices = kube.list_objects(walk.api, "EndpointSlice", {}, "faces")
    walk.slices = external_endpoint_slices({"items": slices}, "smiley")
    if not walk.slices:
        raise CheckError("e2e: no EndpointSlice points at the smiley ExternalWorkload")


def canary(walk: Walk) -> None:
    """A 50/50 HTTPRoute between the external smiley and an in-cluster one: face's
    answers and the GUI's grid are a mix; the route is removed again."""
    for document in second_backends(walk.config.faces_version):
        walk.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(document))
    for name, *_ in SECOND_BACKENDS:
        walk.kubectl("-n", "faces", "rollout", "status", f"deployment/{name}", "--timeout=180s")
    walk.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(canary_route(50)))
    answers = face_answers(walk.config, walk.found, walk.images["smiley"], walk.requests)
    walk.canary = smiley_share(answers, GRINNING)
    if not 0.2 <= walk.canary <= 0.8:
        raise CheckError(f"e2e: the 50/50 canary sent {walk.canary:.0%} to the external smiley")
    walk.grid_during = gui_grid(walk.config, walk.found, "gui-during-canary.png")
    drawn = {cell.smiley for cell in walk.grid_during}
    if not {GRINNING_CHAR, HEART_EYES_CHAR} <= drawn:
        raise CheckError(f"e2e: during the canary the GUI drew {sorted(drawn)}, not a mix")
    walk.kubectl("-n", "faces", "delete", "httproute.policy.linkerd.io", "smiley-canary")


def stop_the_external_smiley(walk: Walk) -> None:
    """`docker stop` the external smiley: the keeper marks its ExternalWorkload not Ready,
    and face answers with its fallback (Cursing)."""
    config = walk.config
    docker_engine.stop_container(f"{config.cluster}-smiley", timeout=5)

    def not_ready() -> bool | wait.NotYet:
        try:
            status = ready_condition(walk.api, "smiley")
        except CommandFailed as exc:
            return wait.NotYet(one_line(exc, 300))
        return status == "False" or wait.NotYet(f"Ready is {status or 'unset'}")

    wait.until(not_ready, timeout=60, interval=2.0)
    answers = face_answers(config, walk.found, walk.images["smiley"], walk.requests)
    walk.fallback = smiley_share(answers, CURSING)
    walk.ready_after_kill = ready_condition(walk.api, "smiley")


STEPS: tuple[tuple[str, Callable[[Walk], None]], ...] = (
    ("create the cluster", create_cluster),
    ("load the images into the cluster", load_images),
    ("install Linkerd", install_linkerd),
    ("install Faces", install_faces),
    ("start the DNS forwarder", start_forwarder),
    ("build the external workloads' images", build_images),
    ("start the external workloads", start_externals),
    ("face's first answer", first_answer),
    ("face's answers come from the external workloads", face_serves_from_the_externals),
    ("the GUI draws them", gui_draws_the_externals),
    ("face reaches the external smiley's identity", face_reaches_the_external_identity),
    ("the canary", canary),
    ("stop the external smiley", stop_the_external_smiley),
    ("install the registration service", install_registrar),
    ("a smiley registers itself", a_smiley_registers_itself),
    ("the registration service's pod is deleted", the_registrar_pod_is_deleted),
    ("the self-registered smiley stops", the_self_registered_smiley_stops),
)


def run_e2e(
    *,
    config: E2EConfig,
    settings: Settings,
    run: Runner = subprocess_runner,
    requests: int = 40,
    steps: tuple[tuple[str, Callable[[Walk], None]], ...] = STEPS,
    progress: Progress | None = None,
) -> E2EResult:
    """The whole walk-through; everything it made is removed unless config.keep. A failed
    step is one StepFailed line (with what the cleanup left, if anything). Each step is a
    phase of `progress`, so a user sees where the run is."""
    progress = progress or Progress()
    walk = Walk(config, settings, run, requests)
    if config.provider.note:
        walk.said.append(config.provider.note)
    started = time.monotonic()
    try:
        for number, (name, step) in enumerate(steps, 1):
            with (
                at_step(number, len(steps), name),
                progress.phase(f"e2e step {number}/{len(steps)}: {name}"),
            ):
                step(walk)
    except StepFailed as exc:
        left = "" if config.keep else walk.cleanup.tidy()
        raise StepFailed("; ".join(filter(None, [exc.message, left]))) from None
    except BaseException:
        if not config.keep:
            walk.cleanup.tidy()
        raise
    left = "" if config.keep else walk.cleanup.tidy()
    walk.timings[WHOLE] = time.monotonic() - started
    if left:
        raise CheckError(f"e2e passed, but its {left}")
    return walk.result()
