"""Images made FROM an application's own image: what its config says becomes the
workload (command, user, folder, ports) where the entry leaves it out, read as strictly
as an entry; the rendered files lay the mesh on that image and run its command. The
rendered files of one such image are golden (tests/golden/app-from-image)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from builder.build.from_image import (
    ROOT,
    ImageConfig,
    from_entry,
    image_user,
    resolve,
    starting_entry,
    workload_of_image,
)
from builder.build.render import render_files
from builder.cli import catalog as catalog_cli
from builder.cli.main import main
from builder.config.catalog import (
    find_workload,
    load_workload_file,
    new_entry_path,
    write_new_entry,
)
from builder.config.models import RunAs, read_workload
from builder.config.settings import load_settings
from builder.core import image_contract
from builder.core.errors import BuildError, CatalogError, MeshexpError
from builder.oci.multiplatform import application_hosts
from tests.conftest import matches_golden

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "app-from-image"
APP = "registry.example/shop/app:1.4"
PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
CONFIG = ImageConfig(
    reference=APP,
    digest="sha256:" + "1" * 64,
    entrypoint=("python3", "-m", "shop"),
    cmd=("--port", "8080"),
    user="app",
    workdir="/srv/app",
    exposed=("8080/tcp", "9090/tcp"),
    passwd=PASSWD,
    env=("PATH=/usr/local/bin:/usr/bin", "GREETING=hello from python", "LANG=C.UTF-8"),
)


def entry(tmp_path: Path, **more: Any) -> Any:
    document = {"name": "app", "namespace": "shop", "from": {"image": APP}, **more}
    return read_workload(document, "images/app.yaml:", tmp_path)


def test_the_image_says_what_the_entry_leaves_out(tmp_path: Path) -> None:
    workload = resolve(entry(tmp_path), CONFIG)
    assert workload.command == ("python3", "-m", "shop", "--port", "8080")
    assert [(p.name, p.port, p.protocol, p.app_protocol) for p in workload.ports] == [
        ("tcp-8080", 8080, "TCP", "opaque"),
        ("tcp-9090", 9090, "TCP", "opaque"),
    ]
    assert workload.workdir == "/srv/app"
    assert workload.run_as == RunAs("app", 1000)
    assert workload.image_used == (APP, CONFIG.digest)
    # The probe, where nothing is known of what the first port speaks: a connection.
    assert (workload.probe.kind, workload.probe.port) == ("tcp", 8080)


def test_what_the_entry_says_wins(tmp_path: Path) -> None:
    workload = resolve(
        entry(
            tmp_path,
            command=["/usr/bin/python3", "-m", "shop.worker"],
            ports=[{"name": "http", "port": 8000}],
            user={"name": "shop", "uid": 2400},
            workdir="/opt/shop",
        ),
        CONFIG,
    )
    assert workload.command == ("/usr/bin/python3", "-m", "shop.worker")
    assert [(p.name, p.port, p.app_protocol) for p in workload.ports] == [("http", 8000, "http")]
    assert workload.run_as == RunAs("shop", 2400)
    assert workload.workdir == "/opt/shop"


@pytest.mark.parametrize(
    ("user", "passwd", "expected"),
    [
        ("", "", ROOT),
        ("65532", "", RunAs("uid65532", 65532)),
        (
            "65532:65532",
            "nonroot:x:65532:65532::/home/nonroot:/sbin/nologin\n",
            RunAs("nonroot", 65532),
        ),
        ("app:app", PASSWD, RunAs("app", 1000)),
        ("0", PASSWD, RunAs("root", 0)),
    ],
)
def test_the_images_user_is_a_name_and_a_uid(user: str, passwd: str, expected: RunAs) -> None:
    assert image_user(ImageConfig(APP, user=user, passwd=passwd), "x:") == expected


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"entrypoint": (), "cmd": ()}, "the image has no ENTRYPOINT or CMD: give command:"),
        ({"exposed": ()}, "the image exposes no port: give ports:"),
        ({"exposed": ("8080",)}, "EXPOSE '8080' is not PORT/tcp"),
        ({"exposed": ("70000/tcp",)}, "EXPOSE '70000/tcp' is not PORT/tcp"),
        ({"user": "nobody"}, "USER nobody is not in the image's /etc/passwd: give user:"),
        ({"user": "app\nRUN x"}, "is not NAME, UID, NAME:GROUP or UID:GID"),
        ({"user": "99999"}, "USER 99999 is out of range"),
        ({"cmd": ("--port", "8080\nRUN touch /x")}, "control character"),
        ({"workdir": "relative/dir"}, "workdir"),
    ],
)
def test_what_the_image_cannot_say_is_refused_in_one_line(
    tmp_path: Path, changes: dict[str, Any], says: str
) -> None:
    config = ImageConfig(**{**CONFIG.__dict__, **changes})
    with pytest.raises(CatalogError) as refused:
        resolve(entry(tmp_path), config)
    assert says in refused.value.message
    assert "\n" not in refused.value.message
    assert refused.value.message.startswith(f"images/app.yaml: from {APP}:")


def test_an_entry_from_an_image_brings_no_binaries_or_packages(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"give no binaries or debian\.packages"):
        entry(tmp_path, debian={"packages": ["busybox"]})


def render(workload: Any, **settings_given: Any) -> dict[str, tuple[str, int]]:
    return render_files(workload, load_settings(None, dict(settings_given)))


def test_rendered_files_match_golden(tmp_path: Path, update_golden: bool) -> None:
    matches_golden(render(resolve(entry(tmp_path), CONFIG)), GOLDEN, update_golden)


def first_steps(dockerfile: str, stage: str) -> list[str]:
    """A stage's FROM and the instructions after it up to its first COPY, comments left
    out and continued lines joined: what a build cache keys the stage's first layers by."""
    joined = dockerfile.replace("\\\n", "")
    lines = [line for line in joined.splitlines() if line and not line.startswith("#")]
    start = next(i for i, line in enumerate(lines) if line.endswith(f" AS {stage}"))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("COPY"))
    return [line.rsplit(" AS ", 1)[0] for line in lines[start:end]]


@pytest.mark.parametrize("offline", [False, True])
def test_the_mesh_stage_begins_with_a_catalog_images_system_layer(offline: bool) -> None:
    """The mesh stage's first layer is the system stage's of a catalog image with no
    packages of its own (smiley), to the byte: a build cache holds it once for both."""
    given = {"offline": True, "proxy_file": "/bin/true"} if offline else {}
    application = render(resolve(entry(Path("/nonexistent")), CONFIG), **given)["Dockerfile"][0]
    catalog = render(find_workload("smiley"), **given)["Dockerfile"][0]
    mesh, system = first_steps(application, "mesh"), first_steps(catalog, "system")
    assert find_workload("smiley").debian_packages == ()
    assert mesh[: len(system)] == system
    assert any("apt-get install" in line and "iptables" in line for line in system)
    assert "patchelf" in " ".join(mesh[len(system) :])


def test_the_mesh_is_laid_on_the_image_and_runs_its_command(tmp_path: Path) -> None:
    files = render(resolve(entry(tmp_path), CONFIG))
    dockerfile = files["Dockerfile"][0]
    stages = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert stages[-1] == APP  # the application's image, last and as it is
    assert f"COPY --from=mesh {image_contract.MESH} {image_contract.MESH}" in dockerfile
    assert f'ENTRYPOINT ["{image_contract.BOOTSTRAP}"]' in dockerfile
    assert "scripts/mesh-layer" in files
    assert "scripts/slim-system" not in files
    labels = dict(
        line.strip().rstrip(" \\").split("=", 1)
        for line in dockerfile.split("LABEL", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    )
    assert json.loads(labels["org.opencontainers.image.base.name"]) == APP
    assert json.loads(labels[image_contract.WORKLOAD_UID]) == "1000"
    launch = files["workload/launch"][0]
    assert "cd /srv/app" in launch
    assert "command=(python3 -m shop --port 8080)" in launch
    bootstrap = files["scripts/bootstrap"][0]
    assert f"XTABLES_LIBDIR={image_contract.XTABLES}" in bootstrap
    assert f"export LD_LIBRARY_PATH={image_contract.LIB}" in bootstrap
    assert "unset LD_LIBRARY_PATH" in launch  # the image's own, not the mesh's


def test_the_rendered_scripts_pass_shellcheck(tmp_path: Path) -> None:
    shellcheck = shutil.which("shellcheck") or str(Path(".venv/bin/shellcheck").resolve())
    files = render(resolve(entry(tmp_path), CONFIG))
    for name in ("scripts/bootstrap", "scripts/mesh-layer", "workload/launch"):
        script = tmp_path / name.replace("/", "-")
        script.write_text(files[name][0])
        done = subprocess.run([shellcheck, str(script)], capture_output=True, text=True)
        assert done.returncode == 0, f"{name}:\n{done.stdout}"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    field=st.sampled_from(["entrypoint", "cmd", "user", "workdir", "exposed", "passwd"]),
    value=st.text(min_size=1, max_size=60),
    index=st.integers(min_value=0, max_value=2),
)
@example(field="entrypoint", value="=", index=0)  # bare, a parser saw an assignment
@example(field="cmd", value="a=b", index=1)
def test_a_hostile_image_config_is_refused_or_changes_no_structure(
    field: str, value: str, index: int
) -> None:
    """Any value an image's config can hold, in any field (for a list, in place of one of
    its items): one line refusing it, or files of the same shape as the benign image's
    (the values quoted, never code)."""
    from tests.unit.test_hostile_values import rendered_shape

    folder = Path("/nonexistent")
    benign = json.dumps(rendered_shape(render(resolve(entry(folder), CONFIG))))
    given_value: Any = value
    items = getattr(CONFIG, field)
    if isinstance(items, tuple):
        given_value = tuple(value if i == index % len(items) else v for i, v in enumerate(items))
    config = ImageConfig(**{**CONFIG.__dict__, field: given_value})
    try:
        files = render(resolve(entry(folder), config))
    except MeshexpError as exc:
        refused = exc.message
    else:
        refused = ""
        assert json.dumps(rendered_shape(files)) == benign, (field, value)
    assert "\n" not in refused


def written_entry(tmp_path: Path, config: ImageConfig, name: str = "shop") -> Path:
    path = new_entry_path(name=name, folder=tmp_path / "images")
    return write_new_entry(path, starting_entry(name, APP, config))


def test_a_starting_entry_says_what_the_image_says(tmp_path: Path) -> None:
    """workloads new --from: the entry, loaded as any entry, builds what the image alone
    builds (the same command, user, folder and ports), and shows the image's ENV."""
    path = written_entry(tmp_path, CONFIG)
    written = load_workload_file(path)
    from_the_image = resolve(from_entry(APP, "shop"), CONFIG)
    from_the_entry = resolve(written, CONFIG)
    for field in ("command", "ports", "workdir", "run_as"):
        assert getattr(from_the_entry, field) == getattr(from_the_image, field), field
    assert written.user is not None  # written out, so that it can be edited
    assert written.from_image is not None
    assert written.from_image.image == APP
    text = path.read_text()
    assert '#   GREETING: "hello from python"' in text.splitlines()
    assert "PATH" not in text  # the image's PATH stays the workload's
    assert written.env == {}  # the image's environment stays the container's


def test_an_image_without_user_or_ports_leaves_them_to_edit(tmp_path: Path) -> None:
    config = ImageConfig(reference=APP, cmd=("/app",))
    path = written_entry(tmp_path, config)
    written = load_workload_file(path)
    assert (written.user, written.ports) == (None, ())
    comments = [line for line in path.read_text().splitlines() if line.startswith("# ")]
    assert any("USER is root (UID 0)" in line for line in comments)
    assert any(line.startswith("# ports: the image exposes none") for line in comments)
    # Given a port, it builds as the image says: as root.
    assert (
        resolve(written, ImageConfig(**{**config.__dict__, "exposed": ("80/tcp",)})).run_as == ROOT
    )


def test_an_image_config_an_entry_cannot_hold_leaves_nothing(tmp_path: Path) -> None:
    config = ImageConfig(reference=APP, cmd=("/app", "two\nlines"), exposed=("80/tcp",))
    with pytest.raises(CatalogError) as refused:
        written_entry(tmp_path, config)
    assert "\n" not in refused.value.message
    assert not list((tmp_path / "images").glob("shop.yaml*"))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    field=st.sampled_from(["entrypoint", "cmd", "user", "workdir", "exposed", "passwd", "env"]),
    value=st.text(min_size=1, max_size=60),
    index=st.integers(min_value=0, max_value=2),
)
def test_a_hostile_image_config_writes_an_entry_of_the_same_shape_or_none(
    field: str, value: str, index: int
) -> None:
    """Any value in any field of the image's config: refused in one line, or an entry
    whose YAML has the fields the benign image's has, each value the image's own."""
    items = getattr(CONFIG, field)
    given_value: Any = value
    if isinstance(items, tuple):
        given_value = tuple(value if i == index % len(items) else v for i, v in enumerate(items))
    config = ImageConfig(**{**CONFIG.__dict__, field: given_value})
    try:
        text = starting_entry("shop", APP, config)
    except MeshexpError as exc:
        text, refused = "", exc.message
    if not text:
        assert "\n" not in refused
        return
    document = yaml.safe_load(text)
    benign = yaml.safe_load(starting_entry("shop", APP, CONFIG))
    assert set(document) <= set(benign)
    for left_out in set(benign) - set(document):  # only with a note saying why
        assert left_out in {"user", "ports", "command"}
        assert any(line.startswith(f"# {left_out}: ") for line in text.splitlines())
    assert document.get("command", []) == list(config.entrypoint + config.cmd)
    assert document["workdir"] == config.workdir
    assert document["from"] == {"image": APP}
    # The environment is comments only, each variable's own name and value.
    pairs = {tuple(pair.partition("=")[::2]) for pair in config.env}
    for line in text.splitlines():
        if line.startswith("#   "):
            variable, _, quoted = line[4:].partition(": ")
            assert (variable, json.loads(quoted)) in pairs, line


def test_an_image_names_the_workload_it_was_built_for(tmp_path: Path) -> None:
    """check --lab and run find an image's workload by its labels: the catalog's entry,
    or for an image made --from with no entry, the workload its application makes."""
    made = image_contract.ImageContract(workload="shop", namespace="stores", application_image=APP)
    workload = workload_of_image(made)
    assert (workload.name, workload.namespace) == ("shop", "stores")
    assert workload.from_image is not None
    assert workload.from_image.image == APP
    assert resolve(workload, CONFIG).command == resolve(from_entry(APP, "shop"), CONFIG).command
    # A catalog image is its entry; a name no catalog has, without an application, refused.
    catalog = image_contract.ImageContract(workload="smiley", namespace="faces")
    assert workload_of_image(catalog) == find_workload("smiley")
    with pytest.raises(CatalogError):
        workload_of_image(image_contract.ImageContract(workload="shop", namespace="stores"))
    # An entry of the image's own name that is made from an image wins (it may say more).
    folder = tmp_path / "images"
    write_new_entry(new_entry_path(name="shop", folder=folder), starting_entry("shop", APP, CONFIG))
    assert workload_of_image(made, [folder]).source_file.startswith("images/shop.yaml")


def test_a_multi_platform_build_takes_applications_from_their_registries() -> None:
    """publish --platform A,B --from: BuildKit pulls each platform's application image,
    over plain HTTP from a registry on this machine; one only the engine holds is
    refused in one line."""
    local = ImageConfig(**{**CONFIG.__dict__, "reference": "127.0.0.1:5000/shop/app:1.4"})
    made = [
        resolve(from_entry(config.reference, name), config)
        for name, config in (("remote", CONFIG), ("local", local))
    ]
    assert application_hosts([*made, find_workload("smiley")]) == ["127.0.0.1:5000"]
    engine_only = ImageConfig(
        **{**CONFIG.__dict__, "reference": "shop/app:dev", "digest": "local image sha256:1"}
    )
    with pytest.raises(BuildError) as refused:
        application_hosts([resolve(from_entry(engine_only.reference, "dev"), engine_only)])
    assert "\n" not in refused.value.message
    assert "shop/app:dev is in the Docker engine only" in refused.value.message


def test_workloads_new_from_refuses_a_bad_name_before_reading_any_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[str] = []
    monkeypatch.setattr(catalog_cli, "read_image_config", lambda ref, *_: read.append(ref))
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "shop.yaml").write_text("kept\n")
    for name, says in (("Shop_1", "is not a workload name"), ("shop", "exists; edit it")):
        result = CliRunner().invoke(
            main, ["workloads", "new", name, "--from", APP, "--dir", str(folder)]
        )
        assert result.exit_code == 1, result.output
        assert says in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
    assert read == []  # refused before the image is pulled
    assert (folder / "shop.yaml").read_text() == "kept\n"
