"""The image's contract has one set of names (builder/core/image_contract.py): every
label a rendered Dockerfile carries under io.meshexp. is named there, every named one
is written, and every log line the tool waits for is one the bootstrap logs."""

from __future__ import annotations

import http.server
import re
import shlex
import threading
from pathlib import Path

import pytest

from builder.build.from_image import ImageConfig, from_entry, resolve
from builder.build.plan import plan_components
from builder.build.render import render_files
from builder.config.catalog import find_workload, load_catalog
from builder.config.settings import Settings
from builder.core import image_contract
from builder.core.net import PROXY_ADMIN_PORT, proxy_readiness

ROOT = Path(__file__).parents[2]


def our_labels(dockerfile: str) -> set[str]:
    """The io.meshexp.* keys of the Dockerfile's LABEL instructions."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    keys = set()
    for line in joined.splitlines():
        if line.startswith("LABEL "):
            for word in shlex.split(line.removeprefix("LABEL ")):
                key = word.partition("=")[0]
                if key.startswith(image_contract.PREFIX):
                    keys.add(key)
    return keys


def written(workload: str, settings: Settings) -> set[str]:
    """The labels the image of catalog entry `workload` carries, or with `from:REF`,
    the image made from an application image (its config as a Python service's)."""
    if workload.startswith("from:"):
        config = ImageConfig(reference=workload[5:], cmd=("app",), exposed=("8080/tcp",))
        found = resolve(from_entry(config.reference, "app"), config)
    else:
        found = find_workload(workload)
    files = render_files(found, settings, components=plan_components(found, settings))
    return our_labels(files["Dockerfile"][0])


@pytest.mark.parametrize("workload", [*sorted(load_catalog()), "from:registry.example/app:1"])
def test_every_label_an_image_carries_is_named_in_the_contract(workload: str) -> None:
    for settings in (Settings(), Settings().with_(topology="production")):
        keys = written(workload, settings.check())
        unnamed = {
            key
            for key in keys
            if key not in image_contract.IMAGE_LABELS
            and not key.startswith(image_contract.SOURCE_PREFIX)
        }
        assert unnamed == set()


def test_every_named_label_is_written_by_some_build() -> None:
    """A name in the contract that no build writes is a reader waiting for nothing."""
    seen: set[str] = set()
    for workload in [*load_catalog(), "from:registry.example/shop/app:1.4"]:
        seen |= written(workload, Settings().check())
    # Written only by some builds: a proxy file (the stand-in's mark, the release it
    # says) and a base image from a registry (its digest).
    sometimes = {
        image_contract.PROXY_STANDIN,
        image_contract.PROXY_RELEASE,
        image_contract.BASE_IMAGE,
    }
    assert set(image_contract.IMAGE_LABELS) - seen - sometimes == set()


def test_every_log_line_the_tool_waits_for_is_logged_by_the_bootstrap() -> None:
    template = (ROOT / "bootstrap" / "bootstrap.sh.j2").read_text()
    assert "log() { printf 'bootstrap: %s\\n'" in template
    for line in image_contract.LOG_LINES:
        message = line.removeprefix("bootstrap: ")
        assert f'log "{message}' in template, line


def test_no_module_but_the_contract_spells_a_label_of_ours() -> None:
    spelled = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "builder").rglob("*.py"))
        if path.name != "image_contract.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"[\"']io\.meshexp\.", line)
    ]
    assert spelled == []


def all_labels(dockerfile: str) -> dict[str, str]:
    """Every label of the Dockerfile's LABEL instructions, key -> value."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    found: dict[str, str] = {}
    for line in joined.splitlines():
        if line.startswith("LABEL "):
            for word in shlex.split(line.removeprefix("LABEL ")):
                key, _, value = word.partition("=")
                found[key] = value
    return found


@pytest.mark.parametrize("workload", sorted(load_catalog()))
def test_what_render_writes_the_contract_reads_back_as_written(workload: str) -> None:
    """Read from a rendered Dockerfile's labels, the contract says what the build was
    given, and writes the same labels again."""
    found = find_workload(workload)
    for settings in (Settings().check(), Settings().with_(topology="production").check()):
        files = render_files(found, settings, components=plan_components(found, settings))
        labels = all_labels(files["Dockerfile"][0])
        contract = image_contract.ImageContract.from_labels(labels)
        assert contract.workload == found.name
        assert contract.namespace == found.namespace
        assert [(p.name, p.number, p.protocol) for p in contract.ports] == [
            (p.name, p.port, p.protocol) for p in found.ports
        ]
        assert contract.probes == tuple(p.probe_spec for p in found.ports)
        assert (contract.proxy_uid, contract.spire_uid, contract.workload_uid) == (
            settings.proxy_uid,
            settings.spire_uid,
            found.uid,
        )
        assert contract.spire_topology == settings.topology
        assert contract.identity == settings.identity
        assert contract.trust_domain == settings.trust_domain
        assert contract.outbound_ports_to_ignore == tuple(settings.outbound_ports_to_ignore)
        assert contract.to_labels() == [
            (key, value) for key, value in labels.items() if key in contract.present
        ]


def test_an_image_without_a_label_reads_with_its_default_and_require_names_it() -> None:
    contract = image_contract.ImageContract.from_labels({image_contract.WORKLOAD: "old"})
    assert contract.identity == image_contract.IDENTITY_BEFORE_THE_LABEL
    assert contract.proxy_uid is None
    contract.require(image_contract.WORKLOAD)
    with pytest.raises(
        image_contract.ContractError, match=re.escape(f"label {image_contract.PROXY_UID} is miss")
    ):
        contract.require(image_contract.WORKLOAD, image_contract.PROXY_UID)


@pytest.mark.parametrize(
    ("label", "value"),
    [
        (image_contract.PROXY_UID, "2102\n"),
        (image_contract.PROXY_UID, "-1"),
        (image_contract.PORTS, "http:8000/TCP\n"),
        (image_contract.PORTS, "http-:8000/TCP"),
        (image_contract.PORTS, "http:0/TCP"),
        (image_contract.INBOUND_PORTS_TO_IGNORE, "4190,x"),
    ],
)
def test_a_label_that_does_not_say_what_it_should_is_named(label: str, value: str) -> None:
    with pytest.raises(image_contract.ContractError, match=f"the image's {re.escape(label)} "):
        image_contract.ImageContract.from_labels({label: value})


def test_check_reads_a_rendered_images_metadata_through_the_contract() -> None:
    """`check`'s metadata line from the labels render wrote (as `docker inspect` shows
    them), and its refusal of an image whose ports are not exposed or whose labels lie."""
    from builder.check.report import CheckFailed
    from builder.check.static import check_metadata

    smiley, settings = find_workload("smiley"), Settings().check()
    files = render_files(smiley, settings, components=plan_components(smiley, settings))
    labels = all_labels(files["Dockerfile"][0])
    exposed = {f"{port.port}/tcp": {} for port in smiley.ports} | {"4143/tcp": {}, "4191/tcp": {}}
    config = {"Entrypoint": [image_contract.BOOTSTRAP], "Labels": labels, "User": ""}
    line = check_metadata({"Config": {**config, "ExposedPorts": exposed}})
    assert line == (
        f"entrypoint bootstrap, user root, proxy {settings.facts.proxy_version}, Linkerd "
        f"{settings.facts.linkerd_version}, SPIRE {settings.spire_version} (demo)"
    )
    with pytest.raises(CheckFailed, match="lack"):
        check_metadata({"Config": {**config, "ExposedPorts": {"4143/tcp": {}}}})
    lying = {**labels, image_contract.PROXY_UID: "root"}
    with pytest.raises(CheckFailed, match="proxy-uid label has 'root', not a number"):
        check_metadata({"Config": {**config, "Labels": lying, "ExposedPorts": exposed}})


def test_checks_read_the_facts_they_need_typed_and_name_a_missing_or_lying_label() -> None:
    from builder.check.report import ImageFacts
    from builder.core.errors import CheckError

    smiley, settings = find_workload("smiley"), Settings().check()
    files = render_files(smiley, settings, components=plan_components(smiley, settings))
    facts = ImageFacts(all_labels(files["Dockerfile"][0]))
    assert (facts.proxy_uid, facts.spire_uid, facts.workload_uid) == (
        settings.proxy_uid,
        settings.spire_uid,
        smiley.uid,
    )
    assert facts.port_numbers == [port.port for port in smiley.ports]
    assert facts.ignored_ports(image_contract.OUTBOUND_PORTS_TO_IGNORE) == ",".join(
        map(str, settings.outbound_ports_to_ignore)
    )
    assert (facts.workload, facts.namespace) == (smiley.name, smiley.namespace)
    without = ImageFacts({k: v for k, v in facts.labels.items() if k != image_contract.PROXY_UID})
    with pytest.raises(CheckError, match=re.escape(f"label {image_contract.PROXY_UID} is missing")):
        _ = without.proxy_uid
    assert without.workload_uid == smiley.uid  # only what a check needs is required
    lying = ImageFacts({**facts.labels, image_contract.WORKLOAD_UID: "2200 "})
    with pytest.raises(CheckError, match="workload-uid label has '2200 ', not a number"):
        _ = lying.workload_uid


@pytest.mark.parametrize(
    ("status", "certified", "ready"),
    [
        (200, False, True),
        (403, True, True),
        (404, True, True),
        (403, False, False),
        (503, True, False),
        (None, True, False),
    ],
)
def test_proxy_ready_is_one_rule(status: int | None, certified: bool, ready: bool) -> None:
    """The rule the bootstrap renders and the tool applies from outside: 200, or a
    refusal once the proxy has certified its identity; nothing else."""
    asked: list[bool] = []

    def said() -> bool:
        asked.append(True)
        return certified

    assert image_contract.proxy_ready(status, said) is ready
    assert bool(asked) == (status in image_contract.PROXY_REFUSED_STATUSES)


def test_the_bootstrap_renders_the_same_rule() -> None:
    bootstrap = render_files(find_workload("smiley"), Settings())["scripts/bootstrap"][0]
    refused = " | ".join(map(str, image_contract.PROXY_REFUSED_STATUSES))
    assert f"    {image_contract.PROXY_READY_STATUS}) return 0 ;;" in bootstrap
    assert f'    {refused}) [ -e "$CERTIFIED_MARK" ] ;;' in bootstrap
    assert f'grep -qF -m1 "{image_contract.CERTIFIED_LINE}"' in bootstrap


@pytest.mark.parametrize(("code", "ready"), [(200, True), (403, True), (404, False), (500, False)])
def test_proxy_readiness_asks_the_admin_port(code: int, ready: bool) -> None:
    """From outside: what /ready answers on the admin port, through the one rule (here
    the proxy is certified only when it answers 403)."""

    class Admin(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(code if self.path == "/ready" else 418)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    host = "127.0.0.29"
    with http.server.ThreadingHTTPServer((host, PROXY_ADMIN_PORT), Admin) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        got, said = proxy_readiness(host, certified=lambda: code == 403, timeout=5)
        server.shutdown()
    assert (got, said) == (ready, f"HTTP {code}")


def test_the_probe_program_reads_the_readiness_file_where_the_image_has_it() -> None:
    """meshexp-probe (Go) reads its spec from a default path when given none, as `check`
    and the keeper call it: the same path the Dockerfile puts it at."""
    source = (Path(__file__).resolve().parents[2] / "go/internal/probe/probe.go").read_text()
    assert f'const DefaultSpec = "{image_contract.READINESS_SPEC}"' in source
