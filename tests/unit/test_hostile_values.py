"""Nothing a user writes changes the structure of a rendered file (issue 32, item 3).

For every string field of a catalog entry, of the settings file and of the group file,
and for every string option of `render`, `manifests` and `certs`, hypothesis puts a
hostile value there (newlines, CR, NUL, quotes, `$()`, backticks, globs, `#`, Dockerfile
instructions, YAML document markers and tags, long and non-ASCII text, and those around
the field's own benign value). Each time, the tool either refuses it with one line, or
what it renders has exactly the structure it has with the benign value:

- scripts: the same syntax tree by a real parser (shfmt's, `--to-json`), words that are
  plain text compared as text however they are quoted, every expansion kept;
- the Dockerfile: the same instructions in order, JSON forms still JSON arrays of the
  same length, each RUN's shell command the same tree;
- JSON files: the same shape; SPIRE's HCL: the same lines once quoted strings are set
  aside; manifests: the same YAML documents, kinds and keys.

The fields are read off the models themselves, so a field added without a benign value
here fails `test_every_string_field_and_option_is_covered`. The runs are derandomized
(a fixed seed) with a budget per field that fits CI on every push.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import shlex
import shutil
import subprocess
import types
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import click
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from builder.build.from_image import resolve
from builder.build.plan import plan_components
from builder.build.render import render_files
from builder.cli.main import main
from builder.cli.options import SETTING_NAMES
from builder.cluster.manifests import external_workload_document, service_document
from builder.config.catalog import find_workload, load_workload_file
from builder.config.group import Group, load_group
from builder.config.models import Workload
from builder.config.settings import Settings, load_settings
from builder.config.sources import SOURCE_KINDS
from builder.core.errors import MeshexpError
from tests.unit.test_from_image import CONFIG as APP_CONFIG

SHFMT = shutil.which("shfmt") or str(Path(__file__).parents[2] / ".venv/bin/shfmt")

# ---------------------------------------------------------------- hostile values

NASTY = [
    "\n",
    "\r",
    "\r\n",
    "\x00",
    "\t",
    "\x0b",
    "\x1b[2J",
    "\x7f",
    "\x85",
    "\u2028",
    "\u2029",
    "'",
    '"',
    "`touch x`",
    "$(touch x)",
    "${IFS}",
    "$HOME",
    "\\",
    "\\n",
    "*",
    "?",
    "[x]",
    "#",
    "#!",
    ";",
    "&&",
    "||",
    "|",
    ">",
    "<",
    "!",
    "~",
    "%",
    "&",
    "(",
    ")",
    "{",
    "}",
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "{workload}",
    "{}",
    "{0}",
    "RUN touch x",
    "\nRUN touch x",
    " \\\nRUN touch x",
    "\n---\nkind: Secret\n",
    "--- ",
    "...",
    "!!python/object/apply:os.system ['touch x']",
    "&a",
    "*a",
    "- x",
    ": x",
    "é",
    "ü",
    "😀",
    "\u202e",
    " ",
    "  ",
    "-",
    "--",
    "-rf",
    "=",
    ",",
    ":",
    "@",
    "/",
    "../",
    "EOF",
    "'\"'\"'",
    '"; touch x; "',
    "' ; touch x ; '",
    "}; touch x; {",
    "]\nx",
    '",',
]
BUDGET = settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


def hostile(benign: str, argv: bool = False) -> st.SearchStrategy[str]:
    """Hostile strings, many of them around the field's own benign value, so that they
    get past the field's pattern where it lets anything through. `argv`: no NUL (an
    argument cannot hold one)."""
    around = st.sampled_from(["", benign])
    text = st.one_of(
        st.sampled_from(NASTY),
        st.tuples(around, st.sampled_from(NASTY), around).map("".join),
        st.text(max_size=24),
        st.text(min_size=300, max_size=1200),
    )
    return text.filter(lambda s: "\x00" not in s) if argv else text


# ---------------------------------------------------------------- the models' string fields

Slot = tuple[str, ...]  # field names, "[]" for a list's item, "{k}"/"{v}" for a mapping's


def _bare(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _arms(annotation: Any) -> list[Any]:
    """The members of a union (of unions, each maybe annotated), else the type itself."""
    if get_origin(annotation) in (Union, types.UnionType):
        members = [_bare(a) for a in get_args(annotation) if a is not type(None)]
        return [arm for member in members for arm in _arms(member)]
    return [annotation]


def _item(arm: Any) -> Any:
    """The item type of a list or of a tuple of any length, else None."""
    args = get_args(arm)
    if get_origin(arm) is list or (get_origin(arm) is tuple and args[1:] == (Ellipsis,)):
        return args[0]
    return None


def _written_under(arm: Any) -> str | None:
    """A source model is written under its kind (`{image: {ref: ...}}`)."""
    kind = getattr(arm, "kind", None)
    return kind if isinstance(arm, type) and kind in SOURCE_KINDS else None


def string_slots(annotation: Any, prefix: Slot = ()) -> set[Slot]:
    """Every place a string goes in a model (read from its annotations)."""
    found: set[Slot] = set()
    for arm in _arms(_bare(annotation)):
        origin = get_origin(arm)
        if _item(arm) is not None:
            found |= string_slots(_item(arm), (*prefix, "[]"))
        elif origin is dict:
            key, value = get_args(arm)
            found |= string_slots(key, (*prefix, "{k}")) | string_slots(value, (*prefix, "{v}"))
        elif origin is Literal or arm in (str, Path):
            found.add(prefix)
        elif isinstance(arm, type) and issubclass(arm, BaseModel):
            under = _written_under(arm)
            inner = (*prefix, under) if under else prefix
            for name, field in arm.model_fields.items():
                found |= string_slots(field.annotation, (*inner, name))
    return found


Step = str | int | tuple[str, str]  # a key, an index, ("key", K): the key K itself


def places(
    annotation: Any, value: Any, slot: Slot = (), path: tuple[Step, ...] = ()
) -> Iterator[tuple[Slot, tuple[Step, ...]]]:
    """Each string of a document (`value`, of the model `annotation`): its slot and path."""
    for arm in _arms(_bare(annotation)):
        origin = get_origin(arm)
        if _item(arm) is not None and isinstance(value, list):
            for index, item in enumerate(value):
                yield from places(_item(arm), item, (*slot, "[]"), (*path, index))
            return
        if origin is dict and isinstance(value, dict):
            key_type, value_type = get_args(arm)
            for key, item in value.items():
                yield from places(key_type, key, (*slot, "{k}"), (*path, ("key", key)))
                yield from places(value_type, item, (*slot, "{v}"), (*path, key))
            return
        if (origin is Literal or arm in (str, Path)) and isinstance(value, str):
            yield slot, path
            return
        under = _written_under(arm)
        if under is not None:
            if not (isinstance(value, dict) and list(value) == [under]):
                continue
            value, slot, path = value[under], (*slot, under), (*path, under)
        if isinstance(arm, type) and issubclass(arm, BaseModel) and isinstance(value, dict):
            for name, field in arm.model_fields.items():
                key = field.alias or name  # as a file writes it (`from:`)
                if key in value:
                    yield from places(field.annotation, value[key], (*slot, name), (*path, key))
            return


def get_at(document: Any, path: tuple[Step, ...]) -> str:
    for step in path:
        if isinstance(step, tuple):
            return str(step[1])
        document = document[step]
    return str(document)


def put_at(document: Any, path: tuple[Step, ...], text: str) -> Any:
    """A copy of `document` with `text` at `path` (a key renamed, where the path ends in one)."""
    changed = copy.deepcopy(document)
    holder = changed
    for step in path[:-1]:
        holder = holder[step]
    last = path[-1]
    if isinstance(last, tuple):
        holder[text] = holder.pop(last[1])
    else:
        holder[last] = text
    return changed


# ---------------------------------------------------------------- benign documents

SOURCES: dict[str, dict[str, Any]] = {
    "image": {"image": {"ref": "ghcr.io/example/shop:1.0", "path": "/shop"}},
    "go": {"go": {"package": "example.com/shop/cmd/shop", "version": "v1.2.3"}},
    "local": {"go": {"package": "./cmd/shop", "local": "../go"}},
    "file": {"file": {"path": "bin/shop"}},
    "url": {"url": {"url": "https://example.com/shop", "sha256": "0" * 64}},
}
PORTS = [
    {"name": "http", "port": 8080, "protocol": "TCP", "app_protocol": "http"},
    {"name": "api", "port": 9000, "app_protocol": "grpc", "grpc_method": "/shop.Stock/Ping"},
]
BASE_ENTRY: dict[str, Any] = {
    "name": "inventory",
    "namespace": "shop",
    "description": "the shop's stock",
    "licenses": "MIT OR Apache-2.0",
    "ports": PORTS,
    "user": {"name": "inventory", "uid": 2400},
    "debian": {"packages": ["busybox"]},
    "command": ["/bin/busybox", "httpd", "-f", "-p", "8080"],
    "env": {"MODE": "shop floor"},
    "inbound_default_policy": "all-unauthenticated",
}
APP_ENTRY: dict[str, Any] = {
    "name": "inventory",
    "namespace": "shop",
    "from": {"image": "registry.example/shop/app:1.4"},
    "workdir": "/srv/shop",
}
CATALOG_ENTRIES: list[dict[str, Any]] = [
    APP_ENTRY,
    {**BASE_ENTRY, "readiness": {"http": {"path": "/healthz?full=1", "port": "http"}}},
    {**BASE_ENTRY, "readiness": {"grpc": {"port": "api", "method": "/shop.Stock/Ready"}}},
    {**BASE_ENTRY, "readiness": {"tcp": {"port": "http"}}},
    {**BASE_ENTRY, "readiness": {"exec": {"command": ["/bin/busybox", "true"]}}},
    {
        **BASE_ENTRY,
        "command": [],
        "dispatch": {
            "env": "SHOP_ROLE",
            "default": "front",
            "commands": {"front": ["/opt/workload/bin/shop", "front"], "back": ["/bin/sh"]},
        },
        "binaries": [
            {"name": "shop", "source": SOURCES["image"], "offline": list(SOURCES.values())},
            *({"name": f"shop-{kind}", "source": source} for kind, source in SOURCES.items()),
        ],
    },
]
SETTINGS_FILE: dict[str, Any] = {
    "linkerd_version": "2.20",
    "proxy_version": "v2.359.0",
    "spire_version": "1.13.3",
    "trust_domain": "root.linkerd.cluster.local",
    "base_image": "debian:bookworm-slim",
    "topology": "demo",
    "iptables_mode": "nft",
    "inbound_default_policy": "all-unauthenticated",
    "identity": "namespaced",
    "profile_networks": ["10.0.0.0/8", "fd00::/8"],
    "image_name": "registry.example/{workload}",
    "tag": "linkerd-{linkerd}",
    "platform": "linux/amd64",
    "platforms": ["linux/amd64", "linux/arm64"],
    "proxy_files": {"linux/arm64": "proxies/arm64"},
    "spire_plugins": "configured",
    "pull": "missing",
    "mirrors": {"cr.l5d.io": "registry.example:5000/l5d"},
    "proxy_source": SOURCES["image"],
    "spire_server_source": SOURCES["image"],
    "spire_agent_source": SOURCES["image"],
    "labels": {"org.example.team": "mesh"},
    "catalog": ["cat"],
    "binaries": {"smiley": "bin/smiley"},
}
GROUP_FILE: dict[str, Any] = {
    "namespace": "faces",
    "workloads": ["smiley"],
    "network": "mesh",
    "labels": {"example.com/team": "mesh"},
}


Case = tuple[int, Slot, tuple[Step, ...]]  # a benign document's number, a slot, its path


def cases_of(model: type[BaseModel], documents: list[dict[str, Any]]) -> list[Case]:
    """(document, slot, path) for each string of the benign documents, one per slot."""
    cases, seen = [], set()
    for number, document in enumerate(documents):
        for slot, path in places(model, document):
            if slot not in seen:
                seen.add(slot)
                cases.append((number, slot, path))
    return cases


def catalog_cases() -> list[Case]:
    return cases_of(Workload, CATALOG_ENTRIES)


# The settings file, and one more for each other kind of source of the proxy and SPIRE.
SETTINGS_FILES = [
    SETTINGS_FILE,
    *(
        {
            **SETTINGS_FILE,
            **{f"{role}_source": source for role in ("proxy", "spire_server", "spire_agent")},
        }
        for kind, source in SOURCES.items()
        if kind != "image"
    ),
]


def settings_cases() -> list[Case]:
    return cases_of(Settings, SETTINGS_FILES)


def group_cases() -> list[tuple[Slot, tuple[Step, ...]]]:
    return list(places(Group, GROUP_FILE))


# ---------------------------------------------------------------- structure


@functools.lru_cache(maxsize=4096)
def shell_tree(text: str) -> str:
    """The script's syntax tree by shfmt, without positions, plain words as "word"
    (however quoted) and comments left out: what the script does, not what it says."""
    done = subprocess.run(
        [SHFMT, "--to-json", "-ln", "bash"], input=text, capture_output=True, text=True
    )
    if done.returncode != 0:
        return f"does not parse: {done.stderr.strip()[:200]}"
    return json.dumps(_skeleton(json.loads(done.stdout)))


PLAIN = {"Lit", "SglQuoted"}


def _plain_word(node: dict[str, Any]) -> bool:
    parts = node.get("Parts") or []
    return all(
        part.get("Type") in PLAIN
        or (
            part.get("Type") == "DblQuoted"
            and all(p.get("Type") == "Lit" for p in part.get("Parts") or [])
        )
        for part in parts
    )


def _skeleton(node: Any) -> Any:
    if isinstance(node, list):
        return [_skeleton(item) for item in node]
    if not isinstance(node, dict):
        return node if isinstance(node, bool) else None
    if "Parts" in node and "Type" not in node and _plain_word(node):
        return "word"
    kept = {}
    for key, value in node.items():
        if key in (
            "Pos",
            "End",
            "Value",
            "ValuePos",
            "ValueEnd",
            "Comments",
            "Last",
        ) or key.endswith(("Pos", "Position")):
            continue
        kept[key] = _skeleton(value)
    return kept


def dockerfile_shape(text: str) -> list[Any]:
    """The instructions in order: JSON forms as (keyword, "json", length), RUN's shell
    form as its shell tree, the others as their word count."""
    logical, current = [], ""
    for line in text.split("\n"):
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    if current:
        logical.append(current)
    shape: list[Any] = []
    for instruction in logical:
        keyword, _, rest = instruction.strip().partition(" ")
        rest = rest.strip()
        if rest.startswith("["):
            try:
                parsed = json.loads(rest)
            except ValueError:
                shape.append((keyword, "broken JSON"))
                continue
            shape.append((keyword, "json", len(parsed) if isinstance(parsed, list) else "?"))
        elif keyword == "RUN":
            shape.append((keyword, shell_tree(rest)))
        else:
            try:
                shape.append((keyword, len(shlex.split(rest))))
            except ValueError as exc:
                shape.append((keyword, f"does not split: {exc}"))
    return shape


QUOTED = re.compile(r'"(?:[^"\\\n]|\\.)*"')


def text_shape(text: str) -> list[str]:
    """HCL and other text: each line with its quoted strings set aside."""
    return [QUOTED.sub('""', line) for line in text.split("\n")]


def json_shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: json_shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_shape(item) for item in value]
    return type(value).__name__


def rendered_shape(files: dict[str, tuple[str, int]]) -> dict[str, Any]:
    shape: dict[str, Any] = {}
    for path, (text, mode) in files.items():
        if path == "Dockerfile":
            shape[path] = dockerfile_shape(text)
        elif mode & 0o111:
            shape[path] = shell_tree(text)
        elif path.endswith(".json"):
            shape[path] = json_shape(json.loads(text))
        else:
            shape[path] = text_shape(text)
    return shape


def refused_in_one_line(exc: MeshexpError) -> None:
    assert "\n" not in exc.message, exc.message
    assert len(exc.message) < 2000, len(exc.message)


def render(workload: Any, settings_: Settings) -> dict[str, tuple[str, int]]:
    if workload.from_image is not None:  # what its image says, as a build reads it
        workload = resolve(workload, replace(APP_CONFIG, reference=workload.from_image.image))
    return render_files(workload, settings_, components=plan_components(workload, settings_))


# ---------------------------------------------------------------- the properties


class NoAliases(yaml.SafeDumper):
    """Each value written out where it is (the files refuse aliases)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def write_yaml(path: Path, document: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.dump(document, Dumper=NoAliases, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    return path


def load_entry(folder: Path, document: dict[str, Any]) -> Any:
    return load_workload_file(write_yaml(folder / "cat" / "inventory.yaml", document))


@functools.lru_cache(maxsize=8)
def benign_catalog_shape(number: int, folder: str) -> str:
    workload = load_entry(Path(folder), CATALOG_ENTRIES[number])
    return json.dumps(rendered_shape(render(workload, Settings().check())))


@pytest.mark.parametrize(
    ("number", "slot", "path"), catalog_cases(), ids=[".".join(c[1]) for c in catalog_cases()]
)
def test_a_hostile_catalog_value_is_refused_or_changes_no_structure(
    tmp_path_factory: pytest.TempPathFactory, number: int, slot: Slot, path: tuple[Step, ...]
) -> None:
    folder = tmp_path_factory.mktemp("hostile-catalog")
    entry = CATALOG_ENTRIES[number]
    benign = benign_catalog_shape(number, str(tmp_path_factory.mktemp("benign-catalog")))

    @BUDGET
    @given(hostile(get_at(entry, path)))
    def check(value: str) -> None:
        try:
            workload = load_entry(folder, put_at(entry, path, value))
            files = render(workload, Settings().check())
        except MeshexpError as exc:
            refused_in_one_line(exc)
            return
        assert json.dumps(rendered_shape(files)) == benign, (slot, value)

    check()


@functools.lru_cache(maxsize=1)
def smiley_and_benign_settings_shape() -> tuple[Any, str]:
    workload = find_workload("smiley")
    return workload, json.dumps(rendered_shape(render(workload, Settings().check())))


def settings_with(folder: Path, document: dict[str, Any]) -> Settings:
    """The settings `document` as a file in `folder`, beside the files it names."""
    (folder / "cat").mkdir(exist_ok=True)
    for named in ("bin/smiley", "proxies/arm64"):
        (folder / named).parent.mkdir(exist_ok=True)
        (folder / named).write_bytes(b"\x7fELF")
    return load_settings(write_yaml(folder / "meshexp.yaml", document), {})


@pytest.mark.parametrize(
    ("number", "slot", "path"), settings_cases(), ids=[".".join(c[1]) for c in settings_cases()]
)
def test_a_hostile_setting_is_refused_or_changes_no_structure(
    tmp_path_factory: pytest.TempPathFactory, number: int, slot: Slot, path: tuple[Step, ...]
) -> None:
    folder = tmp_path_factory.mktemp("hostile-settings")
    document = SETTINGS_FILES[number]
    benign_settings = settings_with(folder, document)
    workload = find_workload("smiley")
    benign = json.dumps(rendered_shape(render(workload, benign_settings)))

    # Another key in `binaries` names no binary of smiley's: it renders as without one.
    unused = {k: v for k, v in document.items() if k != "binaries"}
    alternative = json.dumps(rendered_shape(render(workload, settings_with(folder, unused))))
    allowed = {benign, alternative} if slot == ("binaries", "{k}") else {benign}

    @BUDGET
    @given(hostile(get_at(document, path)))
    def check(value: str) -> None:
        try:
            files = render(workload, settings_with(folder, put_at(document, path, value)))
        except MeshexpError as exc:
            refused_in_one_line(exc)
            return
        assert json.dumps(rendered_shape(files)) in allowed, (slot, value)

    check()


def group_documents(path: Path) -> list[dict[str, Any]]:
    """What the registrar writes for one instance under the group, through YAML and back."""
    group = load_group(path)
    settings_ = Settings()
    labels = {"app": "smiley", **dict(group.labels)}
    namespace = group.namespace or "faces"
    documents = [
        external_workload_document(
            "smiley-1",
            namespace,
            labels,
            settings_.identity_of(namespace, "smiley"),
            ["172.18.0.5"],
            [("http", 8000, "TCP")],
        ),
        service_document("smiley", namespace, labels, [("http", 8000, "TCP")], group.service.port),
    ]
    return list(yaml.safe_load_all(yaml.safe_dump_all(documents)))


def manifest_shape(documents: list[Any]) -> list[Any]:
    return [(doc.get("kind"), sorted(doc), sorted(doc.get("spec") or {})) for doc in documents]


@pytest.mark.parametrize(
    ("slot", "path"), group_cases(), ids=[".".join(c[0]) for c in group_cases()]
)
def test_a_hostile_group_value_is_refused_or_changes_no_structure(
    tmp_path_factory: pytest.TempPathFactory, slot: Slot, path: tuple[Step, ...]
) -> None:
    folder = tmp_path_factory.mktemp("hostile-group")
    benign = manifest_shape(group_documents(write_yaml(folder / "benign.yaml", GROUP_FILE)))

    @BUDGET
    @given(hostile(get_at(GROUP_FILE, path)))
    def check(value: str) -> None:
        try:
            documents = group_documents(
                write_yaml(folder / "group.yaml", put_at(GROUP_FILE, path, value))
            )
        except MeshexpError as exc:
            refused_in_one_line(exc)
            return
        assert manifest_shape(documents) == benign, (slot, value)

    check()


# ---------------------------------------------------------------- the commands' options

# The string options that are not settings (those go through the settings model, above:
# each CLI setting is also tried as a flag below), and how each is tried.
RENDER = ["render", "--workload", "smiley", "--output", "out"]
MANIFESTS = ["manifests", "--workload", "smiley", "--ip", "172.18.0.5"]
OPTION_CASES: dict[tuple[str, str], tuple[list[str], str]] = {
    ("render", "workload_name"): (["render", "--output", "out", "--workload"], "smiley"),
    ("render", "output_dir"): (["render", "--workload", "smiley", "--output"], "out"),
    ("render", "config_file"): ([*RENDER, "--config"], "meshexp.yaml"),
    ("manifests", "workload_name"): (["manifests", "--ip", "172.18.0.5", "--workload"], "smiley"),
    ("manifests", "ips"): (["manifests", "--workload", "smiley", "--ip"], "172.18.0.5"),
    ("manifests", "name"): ([*MANIFESTS, "--name"], "smiley"),
    ("manifests", "namespace"): ([*MANIFESTS, "--namespace"], "faces"),
    ("manifests", "config_file"): ([*MANIFESTS, "--config"], "meshexp.yaml"),
    ("certs", "output_dir"): (["certs", "--output"], "certs"),
    ("certs", "anchor_key"): (["certs", "--output", "certs", "--anchor-key"], "anchor/ca.key"),
}
# Options that become a catalog field, covered there (`render --from IMAGE` is an entry
# with `from: {image: IMAGE}`; rendering it reads the image, which needs an engine).
OPTIONS_AS_FIELDS: dict[tuple[str, str], Slot] = {("render", "from_ref"): ("from_image", "image")}
# Choices are refused by click unless one of them; flags and numbers take no text.
NOT_TEXT = (click.Choice, click.types.BoolParamType, click.types.IntParamType)


def string_options(command: str) -> set[str]:
    params = main.commands[command].params  # type: ignore[attr-defined]
    return {
        p.name
        for p in params
        if isinstance(p, click.Option) and not p.is_flag and not isinstance(p.type, NOT_TEXT)
    }


def outcome_shape(root: Path, command: str, output: str) -> Any:
    """What a command left under `root`: render's context structure (its rendered text,
    not the components copied in); manifests' documents; the kinds of PEM blocks of
    the files certs wrote, wherever the options put them."""
    if command == "render":
        context = next(p.parent for p in root.rglob("meshexp-context.json"))
        files = {
            str(p.relative_to(context)): (p.read_text(), p.stat().st_mode)
            for p in context.rglob("*")
            if p.is_file() and p.name != "meshexp-context.json" and "components" not in p.parts
        }
        return rendered_shape(files)
    if command == "manifests":
        text = "\n".join(line for line in output.splitlines() if not line.startswith("#"))
        return manifest_shape(list(yaml.safe_load_all(text)))
    return sorted(
        tuple(re.findall(r"-----BEGIN ([A-Z ]+)-----", p.read_text()))
        for p in root.rglob("*")
        if p.is_file() and p.name != "meshexp.yaml"
    )


def run_command(root: Path, args: list[str]) -> Any:
    result = CliRunner().invoke(main, args, catch_exceptions=True)
    assert isinstance(result.exception, SystemExit | None), repr(result.exception)
    return result


@pytest.mark.parametrize("case", sorted(OPTION_CASES), ids=lambda c: "/".join(c))
def test_a_hostile_option_is_refused_or_changes_no_structure(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, case: tuple[str, str]
) -> None:
    command, _ = case
    args, benign_value = OPTION_CASES[case]
    root = tmp_path_factory.mktemp("hostile-option")
    write_yaml(
        root / "benign" / "work" / "meshexp.yaml", {"trust_domain": "root.linkerd.cluster.local"}
    )
    monkeypatch.chdir(root / "benign" / "work")
    done = run_command(root / "benign", [*args, benign_value])
    assert done.exit_code == 0, done.output
    benign = outcome_shape(root / "benign", command, done.stdout)
    counter = iter(range(10**6))

    @BUDGET
    @given(
        hostile(benign_value, argv=True).filter(
            lambda v: not v.startswith(("/", "-")) and ".." not in v
        )
    )
    def check(value: str) -> None:
        # Each try in a folder of its own, which is all the command may write to (certs
        # keeps the anchor's key beside its --output, so one level up).
        scratch = root / f"try-{next(counter)}"
        (scratch / "work").mkdir(parents=True)
        write_yaml(
            scratch / "work" / "meshexp.yaml", {"trust_domain": "root.linkerd.cluster.local"}
        )
        monkeypatch.chdir(scratch / "work")
        result = run_command(scratch, [*args, value])
        if result.exit_code != 0:
            lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
            assert len(lines) == 1, result.stderr[:500]
            assert len(lines[0]) < 2000
            return
        assert outcome_shape(scratch, command, result.stdout) == benign, (case, value)

    check()


# Each setting's flag, with a benign value (the files they name are made beside).
FLAG_BENIGN = {
    "linkerd_version": "2.20",
    "proxy_version": "v2.359.0",
    "spire_version": "1.13.3",
    "trust_domain": "root.linkerd.cluster.local",
    "base_image": "debian:bookworm-slim",
    "mirrors": "cr.l5d.io=registry.example:5000/l5d",
    "inbound_ports_to_ignore": "4190,4191",
    "outbound_ports_to_ignore": "443",
    "profile_networks": "10.0.0.0/8,fd00::/8",
    "image_name": "registry.example/{workload}",
    "platform": "linux/amd64",
    "proxy_file": "proxies/arm64",
    "labels": "org.example.team=mesh",
    "catalog": "cat",
    "binaries": "smiley=bin/smiley",
}
FLAG_SETTINGS = sorted(n for n in SETTING_NAMES if n in string_options("render"))


@pytest.mark.parametrize("name", FLAG_SETTINGS)
def test_a_hostile_setting_flag_is_refused_or_changes_no_structure(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each setting as its flag gives it (a repeatable flag as one item of its list),
    against the rendering with the flag's benign value."""
    settings_with(tmp_path, {})  # the files the benign values name
    monkeypatch.chdir(tmp_path)
    workload = find_workload("smiley")
    option = next(p for p in main.commands["render"].params if p.name == name)  # type: ignore[attr-defined]

    def flags(value: str) -> dict[str, Any]:
        return {name: (value,) if option.multiple else value}

    benign = json.dumps(
        rendered_shape(render(workload, load_settings(None, flags(FLAG_BENIGN[name]))))
    )

    @BUDGET
    @given(hostile(FLAG_BENIGN[name], argv=True))
    def check(value: str) -> None:
        try:
            files = render(workload, load_settings(None, flags(value)))
        except MeshexpError as exc:
            refused_in_one_line(exc)
            return
        assert json.dumps(rendered_shape(files)) == benign, (name, value)

    check()


# ---------------------------------------------------------------- coverage


def test_every_string_field_and_option_is_covered() -> None:
    """A string field added to a model, or a string option added to render, manifests
    or certs, without a benign value here fails this test."""
    covered = {slot for _, slot, _ in catalog_cases()}
    assert string_slots(Workload) - covered == set()
    assert string_slots(Settings) - {slot for _, slot, _ in settings_cases()} == set()
    assert string_slots(Group) - {slot for slot, _ in group_cases()} == set()
    for command in ("render", "manifests", "certs"):
        options = string_options(command) - set(SETTING_NAMES)
        options -= {name for c, name in OPTIONS_AS_FIELDS if c == command}
        assert options - {name for c, name in OPTION_CASES if c == command} == set(), command
    assert set(OPTIONS_AS_FIELDS.values()) <= covered
    assert set(FLAG_BENIGN) == set(FLAG_SETTINGS)


def test_the_structure_compared_is_sensitive() -> None:
    """The comparison would see an injection: a command more in a script, an instruction
    more in the Dockerfile, a quoted value become an expansion."""
    assert shell_tree("echo 'a b'\n") == shell_tree('echo "a b"\n') == shell_tree("echo a\\ b\n")
    assert shell_tree("echo 'x'\n") != shell_tree("echo 'x'\ntouch y\n")
    assert shell_tree("echo 'x'\n") != shell_tree('echo "$(touch y)"\n')
    assert shell_tree("echo x\n") != shell_tree("echo x y\n")
    base = 'FROM a\nLABEL k="v"\nRUN echo "v"\nCMD ["a"]\n'
    assert dockerfile_shape(base) == dockerfile_shape(base.replace('"v"', '"w w"'))
    assert dockerfile_shape(base) != dockerfile_shape(base.replace('"v"\nRUN', '"v"\nRUN x\nRUN'))
    assert dockerfile_shape(base) != dockerfile_shape(base.replace('echo "v"', 'echo "$(x)"'))
    assert dockerfile_shape(base) != dockerfile_shape(base.replace('["a"]', '["a", "b"]'))
    assert text_shape('a = "x"') == text_shape('a = "y \\" z"')
    assert text_shape('a = "x"') != text_shape('a = "x" b = "y"')


def test_no_value_lands_in_a_comment() -> None:
    """A comment line of a template (shell, Dockerfile, HCL) holds no template value:
    what a comment says is fixed text, whatever a user writes."""
    root = Path(__file__).parents[2]
    found = [
        f"{template.relative_to(root)}:{number}"
        for folder in ("bootstrap", "run-proxy", "dockerfile", "spire")
        for template in sorted((root / folder).glob("*.j2"))
        for number, line in enumerate(template.read_text().splitlines(), 1)
        if line.lstrip().startswith("#") and not line.startswith("#!") and "{{" in line
    ]
    assert found == []
