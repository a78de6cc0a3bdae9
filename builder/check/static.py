"""The static checks: the image's metadata and every file of every layer (no private key
material), read from the engine without starting the image.
"""

from __future__ import annotations

import re
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from builder.check.report import REQUIRED_LABELS, CheckFailed, require
from builder.core import image_contract
from builder.engine import docker_engine

KEY_MATERIAL = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----\r?\n[A-Za-z0-9+/=]{40,}")


MAX_SCANNED_FILE = 64 * 1024 * 1024


def check_metadata(attrs: dict[str, Any]) -> str:
    config: dict[str, Any] = attrs.get("Config") or {}
    labels: dict[str, str] = config.get("Labels") or {}
    require(
        config.get("Entrypoint") == [image_contract.BOOTSTRAP],
        f"entrypoint is {config.get('Entrypoint')}, not the bootstrap",
    )
    missing = [label for label in REQUIRED_LABELS if label not in labels]
    require(not missing, f"labels missing: {', '.join(missing)}")
    try:
        contract = image_contract.ImageContract.from_labels(labels)
    except image_contract.ContractError as exc:
        raise CheckFailed(str(exc)) from None
    exposed = set(config.get("ExposedPorts") or {})
    wanted = {f"{port}/tcp" for port in contract.port_numbers} | {"4143/tcp", "4191/tcp"}
    require(wanted <= exposed, f"exposed ports {sorted(exposed)} lack {sorted(wanted - exposed)}")
    return (
        f"entrypoint bootstrap, user {config.get('User') or 'root'}, {contract.proxy}, "
        f"Linkerd {contract.linkerd_version}, SPIRE {contract.spire_version} "
        f"({contract.spire_topology})"
    )


def iter_layer_files(saved: Path) -> Iterator[tuple[str, str, bytes]]:
    """(layer, path, content) for every regular file in every layer of a `docker save` tar."""
    with tarfile.open(saved) as outer:
        for member in outer.getmembers():
            if not (
                member.isfile()
                and (member.name.endswith("layer.tar") or member.name.startswith("blobs/"))
            ):
                continue
            handle = outer.extractfile(member)
            if handle is None:
                continue
            try:
                layer = tarfile.open(fileobj=handle)  # noqa: SIM115 - closed by the with below
            except tarfile.TarError:
                continue  # a config or manifest blob, not a layer
            with layer:
                for item in layer.getmembers():
                    if item.isfile() and item.size <= MAX_SCANNED_FILE:
                        data = layer.extractfile(item)
                        if data is not None:
                            yield member.name, "/" + item.name.removeprefix("./"), data.read()


def check_no_key_material(reference: str) -> str:
    with tempfile.TemporaryDirectory(prefix="meshexp-scan-") as scratch:
        saved = Path(scratch) / "image.tar"
        docker_engine.save_image(reference, saved)
        found, files = [], 0
        for layer, path, content in iter_layer_files(saved):
            files += 1
            # Executables carry test keys of their own (libgnutls does); what leaks into
            # a layer by mistake is a PEM file.
            if not content.startswith(b"\x7fELF") and KEY_MATERIAL.search(content):
                found.append(f"{path} (layer {layer[:19]})")
    require(not found, f"private key material in the image: {', '.join(found[:5])}")
    require(files > 0, "no layer files were read")
    return f"no private key in {files} files across all layers"
