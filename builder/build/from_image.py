"""Images made FROM an application's own image (`--from REF`, `from: {image: REF}`).

The application's image is taken as it is: its command (ENTRYPOINT and CMD), its user,
its working folder and its ports (EXPOSE) are the workload's unless the entry gives its
own, and its environment stays the container's. What the image's config says is read
strictly, as a catalog entry is (a value that could change a rendered file's structure
is refused with one line), and the workload is checked again with those values filled in.
The mesh is then laid on the image as one folder that needs nothing from it
(dockerfile/from.Dockerfile.j2, dockerfile/mesh-layer.sh.j2).
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml

from builder.build.upstream import ensure_image
from builder.config.catalog import SCHEMA_MODELINE, find_workload
from builder.config.models import RunAs, Workload
from builder.config.settings import Settings
from builder.config.types import parse
from builder.config.validation import ENV_NAME, USER_NAME, shown
from builder.core.errors import BuildError, CatalogError
from builder.core.image_contract import ImageContract
from builder.core.progress import Progress
from builder.engine import docker_engine

EXPOSED = re.compile(r"([0-9]{1,5})/(tcp|udp|sctp)")
IMAGE_USER = re.compile(
    r"([a-z_][a-z0-9_-]{0,31}|[0-9]{1,5})(?::([a-z_][a-z0-9_-]{0,31}|[0-9]{1,5}))?"
)
NUMBER = re.compile(r"[0-9]{1,10}")
ROOT = RunAs("root", 0)


@dataclass(frozen=True)
class ImageConfig:
    """What an application's image says of its workload, as its config has it."""

    reference: str  # the reference the image was used by (the mirror's where one covers it)
    digest: str = ""  # the registry's digest, or "local image <ID>"
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    user: str = ""
    workdir: str = ""
    exposed: tuple[str, ...] = ()
    passwd: str = ""  # the image's /etc/passwd, where its USER is a name
    env: tuple[str, ...] = ()  # its ENV, as NAME=value


def read_image_config(reference: str, settings: Settings, progress: Progress) -> ImageConfig:
    """The image (pulled as the settings say, through their mirrors) and its config."""
    image = ensure_image(reference, settings, progress)
    used = image.used
    config: dict[str, Any] = docker_engine.image_attrs(used).get("Config") or {}
    user = str(config.get("User") or "")
    passwd = ""
    if user and not NUMBER.fullmatch(user.split(":")[0]):
        passwd = _passwd_of(used)
    return ImageConfig(
        reference=used,
        digest=image.digest,
        entrypoint=tuple(str(word) for word in config.get("Entrypoint") or ()),
        cmd=tuple(str(word) for word in config.get("Cmd") or ()),
        user=user,
        workdir=str(config.get("WorkingDir") or ""),
        exposed=tuple(sorted(str(port) for port in config.get("ExposedPorts") or {})),
        passwd=passwd,
        env=tuple(str(pair) for pair in config.get("Env") or ()),
    )


def _passwd_of(reference: str) -> str:
    with tempfile.TemporaryDirectory(prefix="meshexp-passwd-") as scratch:
        target = Path(scratch) / "passwd"
        try:
            docker_engine.copy_from_image(reference, "/etc/passwd", target)
        except BuildError:
            return ""
        return target.read_bytes()[:1_000_000].decode("utf-8", errors="replace")


def resolve(workload: Workload, config: ImageConfig) -> Workload:
    """`workload` with what its entry leaves out taken from its image's config; refused
    with one line where the image does not say it either."""
    where = f"{(workload.source_file or workload.name).rstrip(':')}: from {config.reference}:"
    image_command = config.entrypoint + config.cmd
    changes: dict[str, Any] = {}
    if not workload.command and not workload.dispatch:
        if not image_command:
            _refuse(where, "the image has no ENTRYPOINT or CMD: give command: in the entry")
        changes["command"] = list(image_command)
    if not workload.ports:
        changes["ports"] = _ports(config.exposed, where)
    if workload.workdir is None:
        changes["workdir"] = config.workdir or "/"
    data = workload.model_dump(mode="json", exclude_unset=True) | changes
    resolved = parse(Workload, data, where, CatalogError, {"where": where})
    resolved._source_file = workload.source_file
    resolved._image_user = None if workload.user is not None else image_user(config, where)
    resolved._image_used = (config.reference, config.digest)
    return resolved


def _ports(exposed: tuple[str, ...], where: str) -> list[dict[str, Any]]:
    ports = []
    for text in exposed:
        match = EXPOSED.fullmatch(text)
        if match is None or not 1 <= int(match[1]) <= 65535:
            _refuse(where, f"EXPOSE {shown(text)} is not PORT/tcp, PORT/udp or PORT/sctp")
        number, protocol = int(match[1]), match[2]
        # A connection is all that is known of what it speaks: the probe opens one.
        ports.append(
            {
                "name": f"{protocol}-{number}",
                "port": number,
                "protocol": protocol.upper(),
                "app_protocol": "opaque",
            }
        )
    if not ports:
        _refuse(where, "the image exposes no port: give ports: in the entry")
    return ports


def image_user(config: ImageConfig, where: str) -> RunAs:
    """The image's USER as a name and a UID (root where it names none)."""
    match = IMAGE_USER.fullmatch(config.user)
    if not config.user:
        return ROOT
    if match is None:
        _refuse(where, f"USER {shown(config.user)} is not NAME, UID, NAME:GROUP or UID:GID")
    user = match[1]
    accounts = _accounts(config.passwd)
    if NUMBER.fullmatch(user):
        uid = int(user)
        if uid > 65533:
            _refuse(where, f"USER {uid} is out of range (0-65533)")
        name = next((name for name, number in accounts.items() if number == uid), f"uid{uid}")
        return RunAs(name, uid)
    if user not in accounts:
        _refuse(where, f"USER {user} is not in the image's /etc/passwd: give user: in the entry")
    return RunAs(user, accounts[user])


def _accounts(passwd: str) -> dict[str, int]:
    """NAME -> UID of the image's /etc/passwd, only lines that are what they should be."""
    accounts: dict[str, int] = {}
    for line in passwd.splitlines()[:10_000]:
        fields = line.split(":")
        if len(fields) >= 3 and USER_NAME.fullmatch(fields[0]) and NUMBER.fullmatch(fields[2]):
            uid = int(fields[2])
            if uid <= 65533:
                accounts.setdefault(fields[0], uid)
    return accounts


def _refuse(where: str, message: str) -> NoReturn:
    raise CatalogError(f"{where} {message}")


def from_entry(reference: str, name: str | None, namespace: str = "default") -> Workload:
    """The workload `--from REF` names: everything but its name from the image (the
    image's last path part, where no --workload gives one)."""
    if name is None:
        last = reference.split("@")[0].rsplit("/", 1)[-1].split(":")[0]
        name = re.sub(r"[^a-z0-9-]+", "-", last.lower()).strip("-")[:63].strip("-") or "app"
    document = {"name": name, "namespace": namespace, "from": {"image": reference}}
    return parse(Workload, document, "--from:", CatalogError, {"where": "--from:"})


def workload_of_image(contract: ImageContract, catalog: Sequence[Path] = ()) -> Workload:
    """The workload an image of ours was built for, as its labels name it: its catalog
    entry; or, for an image made with --from and no entry of its own, the workload that
    application image makes (settle reads the image's config)."""
    made = contract.application_image
    try:
        entry = find_workload(contract.workload, catalog)
    except CatalogError:
        if not made:
            raise
        return from_entry(made, contract.workload, contract.namespace)
    if made and entry.from_image is None:
        return from_entry(made, contract.workload, contract.namespace)
    return entry


def settle(workload: Workload, settings: Settings, progress: Progress) -> Workload:
    """A workload made from an image, with what the image says read in (a catalog one as
    it is); a root user is said, as a warning."""
    if workload.from_image is None or workload._image_used is not None:
        return workload
    config = read_image_config(workload.from_image.image, settings, progress)
    resolved = resolve(workload, config)
    if resolved.uid == 0:
        progress.line(
            f"warning: {workload.name} runs as root, as {workload.from_image.image} says (no "
            "USER): its traffic is captured all the same, but give the image a user of its own"
        )
    return resolved


# The most of the image's ENV that a starting entry shows.
SHOWN_ENV = 100
# User IDs an entry can name itself (the catalog's own range); others stay the image's.
ENTRY_UIDS = range(1000, 65534)


def starting_entry(name: str, image: str, config: ImageConfig) -> str:
    """A catalog entry for `image` (`workloads new NAME --from IMAGE`) with what its
    config says written out: command, user, folder and ports as fields, its environment
    as comments (it stays the container's). Values are written by the YAML emitter and
    the entry is checked as any entry is; refused with one line where the image says
    something an entry cannot."""
    where = f"--from {config.reference}:"
    entry: dict[str, Any] = {
        "name": name,
        "namespace": "default",
        "description": f"{name}, from {image}",
        "from": {"image": image},
    }
    notes: list[str] = []
    command = list(config.entrypoint + config.cmd)
    if command:
        entry["command"] = command
    else:
        notes.append("command: the image has no ENTRYPOINT or CMD; give the command here")
    user = image_user(config, where)
    if user.uid in ENTRY_UIDS:
        entry["user"] = {"name": user.name, "uid": user.uid}
    else:
        notes.append(
            f"user: the image's USER is {user.name} (UID {user.uid}), which it keeps: an "
            "entry names a user of 1000-65533, e.g. {name: app, uid: 2300}"
        )
    entry["workdir"] = config.workdir or "/"
    if config.exposed:
        entry["ports"] = _ports(config.exposed, where)
    else:
        notes.append("ports: the image exposes none; give them, e.g. - {name: http, port: 8080}")
    parse(Workload, dict(entry), where, CatalogError, {"where": where})
    body = yaml.safe_dump(entry, sort_keys=False, default_flow_style=None, width=1_000_000)
    lines = [
        SCHEMA_MODELINE,
        f"# A meshexp-build catalog entry for {name}, filled from {image}'s config.",
        "# command, user, workdir and ports are what the image says; change any, or delete",
        "# it to take the image's again. app_protocol opaque: all EXPOSE says is a port.",
        body.rstrip("\n"),
        *(f"# {note}" for note in notes),
        *_env_comment(config.env),
    ]
    return "\n".join(lines) + "\n"


def _env_comment(pairs: tuple[str, ...]) -> list[str]:
    """The image's ENV as a commented env: (the container keeps it; PATH stays the
    image's)."""
    shown_pairs = []
    for pair in pairs[:SHOWN_ENV]:
        variable, _, value = pair.partition("=")
        if ENV_NAME.fullmatch(variable) and variable != "PATH":
            shown_pairs.append(f"#   {variable}: {json.dumps(value[:1000])}")
    if not shown_pairs:
        return []
    return [
        "# The image's environment stays the container's; to change a value, uncomment",
        "# it (and env:) and edit it:",
        "# env:",
        *shown_pairs,
    ]
