"""Real images through the real engine: metadata, binaries, start-up, traffic, layer reuse."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from cryptography import x509

from builder.build.image import build_workload_image
from builder.check.answers import GRINNING
from builder.check.live import http_status, process_uids, tcp_open_total, wait_ready
from builder.config.catalog import load_workload_file
from builder.core import image_contract
from builder.engine import docker_engine
from builder.engine.containers import MeshContainer, mesh_container

SMILEY_ID = "spiffe://root.linkerd.cluster.local/ns/faces/externalworkload/smiley"


def proxy_environment(box: MeshContainer) -> dict[str, str]:
    """The environment of the running proxy, read as the proxy's own UID (root may not)."""
    script = (
        "for p in /proc/[0-9]*; do "
        f'if [ "$(tr -d "\\0" <"$p/cmdline" 2>/dev/null)" = {image_contract.PROXY} ];'
        ' then cat "$p/environ"; exit 0; fi; done; exit 1'
    )
    code, out = box.exec(["bash", "-c", script], user="2102")
    assert code == 0, f"no proxy process found: {out}"
    # NUL-separated: values such as the trust anchors' PEM span lines.
    return dict(entry.split("=", 1) for entry in out.split("\0") if "=" in entry)


DEMO_ENV = {  # the original walk-through's `docker run -e ...`, unchanged
    "WORKLOAD_NAME": "smiley",
    "WORKLOAD_NAMESPACE": "faces",
    "NODE_NAME": "$(hostname)",
    "FACES_SERVICE": "smiley",
    "DELAY_BUCKETS": "0,5",
}


def test_image_metadata(engine, smiley_image, proxy_is_real: bool) -> None:
    attrs = engine.images.get(smiley_image.reference).attrs
    config = attrs["Config"]
    labels = config["Labels"]
    assert config["Entrypoint"] == [image_contract.BOOTSTRAP]
    assert config["User"] == "0:0"
    assert {"8000/tcp", "4143/tcp", "4191/tcp"} <= set(config["ExposedPorts"])
    if proxy_is_real:
        assert "io.meshexp.proxy-standin" not in labels
        # Asked of the binary, not taken from the Linkerd 2.20 table (v2.359.0);
        # the demo-invocation test compares it with the proxy's own log line.
        assert labels["io.meshexp.proxy-version"] != "v2.359.0"
        assert labels["io.meshexp.proxy-release"].startswith(labels["io.meshexp.proxy-version"])
    else:
        assert labels["io.meshexp.proxy-standin"].startswith("PROXY STAND-IN: not a Linkerd proxy")
        assert labels["io.meshexp.proxy-version"] == "standin"
    assert labels["io.meshexp.inbound-policy"] == "all-unauthenticated"
    assert labels["io.meshexp.linkerd-version"] == "2.20"
    assert labels["io.meshexp.spire-topology"] == "demo"
    assert labels["io.meshexp.spire-multicall"] == "false"
    assert labels["io.meshexp.source.spire-server"].startswith(
        "go github.com/spiffe/spire/cmd/spire-server@v1.13.3"
        " (configured SPIRE plugins only) sha256:"
    )
    assert labels["io.meshexp.source.workload.smiley"].startswith("go ./cmd/smiley")
    assert labels["org.opencontainers.image.title"] == "smiley"
    # OCI metadata: from the git checkout the build ran in, the catalog and the base.
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    assert labels["org.opencontainers.image.revision"] == head.stdout.strip()
    assert labels["org.opencontainers.image.created"].endswith("Z")
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.base.name"] == "meshexp/debian-base:bookworm"
    assert smiley_image.standin is not proxy_is_real


def test_spire_binaries_run_inside(engine, smiley_image) -> None:
    for binary in ("spire-server", "spire-agent"):
        out = engine.containers.run(
            smiley_image.reference, ["--version"], entrypoint=binary, remove=True, stderr=True
        ).decode()
        assert "1.13.3" in out, f"{binary} --version said {out!r}"


# A server config as ours, but naming a plugin the trimmed build dropped.
DROPPED_PLUGIN_CONFIG = """
server {
  bind_address = "127.0.0.1"
  bind_port = "18181"
  socket_path = "/tmp/spire/api.sock"
  trust_domain = "example.org"
  data_dir = "/tmp/spire"
}
plugins {
  DataStore "sql" {
    plugin_data {
      database_type = "sqlite3"
      connection_string = "/tmp/spire/datastore.sqlite3"
    }
  }
  KeyManager "memory" {
    plugin_data {}
  }
  NodeAttestor "NAME" {
    plugin_data {}
  }
}
"""


def _spire_server_with_node_attestor(engine, image: str, name: str) -> tuple[int, str]:
    """Run the image's spire-server with DROPPED_PLUGIN_CONFIG for `name`, at most 20 s."""
    config = DROPPED_PLUGIN_CONFIG.replace("NAME", name)
    script = (
        f"mkdir -p /tmp/spire && cat > /tmp/spire/server.conf <<'EOF'\n{config}EOF\n"
        "exec timeout 20 spire-server run -config /tmp/spire/server.conf"
    )
    box = engine.containers.run(image, ["-c", script], entrypoint="bash", detach=True)
    try:
        code = box.wait(timeout=60)["StatusCode"]
        return code, box.logs().decode()
    finally:
        box.remove(force=True)


def test_spire_carries_only_the_configured_plugins(engine, smiley_image) -> None:
    """The trimmed server stops at once, with SPIRE's own words, on a plugin the
    configs do not name; the same config with one they name does not stop."""
    labels = engine.images.get(smiley_image.reference).labels
    kept = labels["io.meshexp.spire-plugins"]
    assert kept.startswith("configured: ")
    assert "server/NodeAttestor/join_token" in kept
    assert "k8s" not in kept
    assert "configured SPIRE plugins only" in labels["io.meshexp.source.spire-server"]
    code, out = _spire_server_with_node_attestor(engine, smiley_image.reference, "k8s_psat")
    assert code == 1, out
    assert 'no built-in plugin \\"k8s_psat\\" for type \\"NodeAttestor\\"' in out
    code, out = _spire_server_with_node_attestor(engine, smiley_image.reference, "join_token")
    assert code == 124, out  # still serving when `timeout` stopped it
    assert "no built-in plugin" not in out


def test_the_system_stage_left_only_what_runs(engine, smiley_image) -> None:
    """apt, perl and the account tools are gone, no program is set-user-ID; dpkg's
    database lists only what is inside, and each kept package keeps its copyright file."""
    script = (
        "for c in apt-get perl useradd; do command -v $c && echo FOUND $c; done; "
        "for f in /usr/bin/* /usr/sbin/*; do [ -u $f ] || [ -g $f ] && echo SETID $f; done; "
        "dpkg-query -W -f '${Package}\\n' | while read -r p; do "
        "[ -f /usr/share/doc/$p/copyright ] || echo NOCOPYRIGHT $p; done; "
        "dpkg-query -W -f '${Package}\\n' | tr '\\n' ' '; echo"
    )
    out = engine.containers.run(
        smiley_image.reference, ["-c", script], entrypoint="bash", remove=True
    ).decode()
    assert "FOUND" not in out
    assert "SETID" not in out
    assert "NOCOPYRIGHT" not in out
    packages = set(out.split())
    assert {"iptables", "iproute2", "bash", "coreutils", "libc6", "util-linux"} <= packages
    assert not packages & {"apt", "perl-base", "debconf", "passwd", "tzdata"}


def test_demo_invocation_comes_up_and_traffic_goes_through_the_proxy(
    smiley_image, network, demo_certs, proxy_is_real: bool
) -> None:
    """The original walk-through's docker run: ca.crt + ca.key mounted, same variables."""
    with mesh_container(
        image=smiley_image.reference,
        network=network,
        certs=demo_certs,
        env=DEMO_ENV,
        caps=("NET_ADMIN",),
        name=f"{network}-smiley",
    ) as box:
        ip = box.ip
        wait_ready(box, 60)
        before = tcp_open_total(ip, "inbound")
        status, body = http_status(ip, 8000, "/", timeout=10)
        assert status == 200
        assert json.loads(body)["smiley"] == GRINNING  # upstream's HTML entity
        assert tcp_open_total(ip, "inbound") == before + 1  # it went through the proxy
        logs = box.logs()
        # A healthy start logs no error (the SVID wait does not poke the Workload API early).
        assert "level=error" not in logs
        assert " ERROR " not in logs
        assert logs.count("ca.key is the trust anchor's private key") == 1
        # Namespaced identity by default (builder.config.identity).
        assert f"bootstrap: starting smiley.faces as {SMILEY_ID}" in logs
        if proxy_is_real:
            # The label says what the proxy itself says when it starts.
            version = smiley_image.labels["io.meshexp.proxy-version"]
            assert f"linkerd2_proxy: release {version} (" in logs
        else:
            assert "PROXY STAND-IN: not a Linkerd proxy" in logs
        # NODE_NAME is free text: it reaches the proxy as a JSON string, never evaluated.
        environ = proxy_environment(box)
        context = json.loads(environ["LINKERD2_PROXY_DESTINATION_CONTEXT"])
        assert context == {"ns": "faces", "nodeName": "$(hostname)", "pod": "smiley"}
        assert json.loads(environ["LINKERD2_PROXY_POLICY_WORKLOAD"]) == {
            "ns": "faces",
            "external_workload": "smiley",
        }
        assert environ["LINKERD2_PROXY_IDENTITY_SERVER_ID"] == SMILEY_ID
        assert "BEGIN CERTIFICATE" in environ["LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS"]


def test_processes_run_as_their_own_non_root_uids(smiley_image, network, certs) -> None:
    with mesh_container(
        image=smiley_image.reference,
        network=network,
        certs=certs,
        env={},
        name=f"{network}-smiley",
    ) as box:
        uids = process_uids(box)
        assert uids["linkerd2-proxy"] == 2102
        assert uids["spire-server"] == 2103
        assert uids["spire-agent"] == 2103
        assert uids["smiley"] == 2200
        assert uids["bootstrap"] == 0
        roots = [name for name, uid in uids.items() if uid == 0]
        assert roots == ["bootstrap"]


def test_svid_for_the_proxy_chains_to_the_trust_anchor(smiley_image, network, certs) -> None:
    with mesh_container(
        image=smiley_image.reference,
        network=network,
        certs=certs,
        env={},
        name=f"{network}-smiley",
    ) as box:
        code, out = box.exec(
            [
                "spire-agent",
                "api",
                "fetch",
                "x509",
                "-socketPath",
                "/run/spire/agent/public/api.sock",
                "-write",
                "/tmp",
            ],
            user="2102",
        )
        assert code == 0, out
        _, chain_pem = box.exec(["cat", "/tmp/svid.0.pem"])
        chain = x509.load_pem_x509_certificates(chain_pem.encode())
        uris = (
            chain[0]
            .extensions.get_extension_for_class(x509.SubjectAlternativeName)
            .value.get_values_for_type(x509.UniformResourceIdentifier)
        )
        assert uris == [SMILEY_ID]
        anchor = x509.load_pem_x509_certificate((certs / "ca.crt").read_bytes())
        store = x509.verification.Store([anchor])
        verifier = x509.verification.PolicyBuilder().store(store).build_client_verifier()
        verified = verifier.verify(chain[0], chain[1:])  # raises if it does not chain
        assert verified.chain[-1] == anchor


def test_rebuild_after_a_workload_change_reuses_lower_layers(
    engine, offline_settings, smiley_image, tmp_path: Path
) -> None:
    """Only the workload layer differs between two builds that differ only in the workload."""
    binary = docker_engine.copy_from_image(
        smiley_image.reference, "/opt/workload/bin/smiley", tmp_path / "smiley-bin"
    )
    catalog = tmp_path / "images"
    catalog.mkdir()
    yaml_text = (
        "name: smiley\nnamespace: faces\nports:\n  - {name: http, port: 8000}\n"
        "user: {name: workload, uid: 2200}\n"
        f"binaries:\n  - name: smiley\n    source: {{file: {{path: {binary}}}}}\n"
        "command: [/opt/workload/bin/smiley, -port, '8000']\n"
    )
    (catalog / "smiley.yaml").write_text(yaml_text)
    workload = load_workload_file(catalog / "smiley.yaml")
    settings = offline_settings.with_(image_name="meshexp-test/rebuild-{workload}").check()
    first = build_workload_image(workload=workload, settings=settings, tag="a")
    with binary.open("ab") as handle:
        handle.write(b"\0changed")
    lines: list[str] = []
    second = build_workload_image(
        workload=workload, settings=settings, tag="b", on_line=lines.append
    )
    layers_a = engine.images.get(first.reference).attrs["RootFS"]["Layers"]
    layers_b = engine.images.get(second.reference).attrs["RootFS"]["Layers"]
    assert len(layers_a) == len(layers_b)
    differing = [i for i, (a, b) in enumerate(zip(layers_a, layers_b, strict=True)) if a != b]
    assert differing == [len(layers_a) - 1], "only the last (workload) layer may differ"
    assert sum("Using cache" in line for line in lines) >= 5
