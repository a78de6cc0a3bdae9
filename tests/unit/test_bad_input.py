"""Every command with broken input: a non-zero exit with the README's code, one line that
names the input and the fix, no traceback, and nothing written (issue 32's reproductions
among them: a non-UTF-8 entry, YAML alias bombs, an --output under a file or in /proc, a
pattern with a positional field, a name that is not a DNS label).

Each case is (what, the arguments with {tmp} for a scratch folder, the exit code, words
the error line must hold). The scratch folder holds a benign catalog entry, a settings
file and certificates to start from; a case may break one of them first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from builder.cli.main import MAX_LINE, bounded, main
from builder.cluster.certs import create_certs

ENTRY = (
    "name: inventory\nnamespace: shop\nports: [{name: http, port: 8080}]\n"
    "user: {name: inventory, uid: 2400}\ndebian: {packages: [busybox]}\n"
    "command: [/bin/busybox, httpd, -f, -p, '8080']\n"
)


def alias_bomb(levels: int) -> str:
    """A catalog entry whose labels hold 9**levels strings through aliases (a few hundred
    bytes: the 'billion laughs')."""
    lines = ["  a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"  a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]" for n in range(1, levels)]
    return ENTRY + "labels:\n" + "\n".join(lines) + "\n"


def deep(levels: int) -> str:
    return ENTRY + "labels: " + "[" * levels + "]" * levels + "\n"


@dataclass(frozen=True)
class Case:
    what: str
    args: list[str]
    code: int
    says: tuple[str, ...]
    prepare: Callable[[Path], None] = lambda tmp: None


def write(relative: str, data: str | bytes) -> Callable[[Path], None]:
    def prepare(tmp: Path) -> None:
        target = tmp / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            target.write_bytes(data)
        else:
            target.write_text(data)

    return prepare


def folder(relative: str) -> Callable[[Path], None]:
    def prepare(tmp: Path) -> None:
        (tmp / relative).unlink(missing_ok=True)
        (tmp / relative).mkdir(parents=True)

    return prepare


RENDER = ["render", "--workload", "inventory", "--catalog", "{tmp}/cat", "--output", "{tmp}/out"]
MANIFESTS = ["manifests", "--workload", "smiley", "--ip", "172.18.0.5"]

CASES = [
    Case(
        "a catalog entry that is not UTF-8",
        RENDER,
        1,
        ("inventory.yaml", "not UTF-8", "line 4", "save it as UTF-8"),
        write(
            "cat/inventory.yaml",
            ENTRY.replace("name: inventory,", "name: inv\xff,").encode("latin-1"),
        ),
    ),
    Case(
        "a 9**9 alias bomb in a catalog entry",
        RENDER,
        1,
        ("inventory.yaml", "alias (*a0)", "write the value out"),
        write("cat/inventory.yaml", alias_bomb(9)),
    ),
    Case(
        "a catalog entry nested 1000 deep",
        RENDER,
        1,
        ("inventory.yaml", "nested deeper than"),
        write("cat/inventory.yaml", deep(1000)),
    ),
    Case(
        "a catalog entry of 2 MiB",
        RENDER,
        1,
        ("inventory.yaml", "larger than"),
        write("cat/inventory.yaml", ENTRY + "# " + "x" * (2 << 20) + "\n"),
    ),
    Case(
        "a catalog entry that is a folder",
        RENDER,
        1,
        ("inventory.yaml", "is a folder"),
        folder("cat/inventory.yaml"),
    ),
    Case("an empty catalog entry", RENDER, 1, ("inventory.yaml",), write("cat/inventory.yaml", "")),
    Case(
        "a catalog entry that is not YAML",
        RENDER,
        1,
        ("inventory.yaml", "not valid YAML", "line 2"),
        write("cat/inventory.yaml", "name: [inventory\n"),
    ),
    Case(
        "--output under a regular file",
        [*RENDER[:-1], "{tmp}/a-file/out"],
        1,
        ("a-file", "is a file, not a folder"),
        write("a-file", "x"),
    ),
    Case("--output in /proc", [*RENDER[:-1], "/proc/meshexp-out"], 1, ("/proc/meshexp-out",)),
    Case(
        "--output --force over a project folder",
        [*RENDER, "--force"],
        1,
        ("did not write", "choose an empty or new folder"),
        write("out/.git/HEAD", "ref: refs/heads/main\n"),
    ),
    Case(
        "image_name with a positional field",
        [*RENDER, "--image-name", "meshexp/{}"],
        1,
        ("image_name", "unknown field {}", "{workload}"),
    ),
    Case(
        "image_name with an attribute",
        [*RENDER, "--image-name", "meshexp/{workload.__class__}"],
        1,
        ("image_name", "unknown field {workload.__class__}"),
    ),
    Case(
        "a settings file that is not UTF-8",
        [*RENDER, "--config", "{tmp}/meshexp.yaml"],
        1,
        ("meshexp.yaml", "not UTF-8"),
        write("meshexp.yaml", b"tag: \xfe\n"),
    ),
    Case(
        "a settings file with an alias bomb",
        [*RENDER, "--config", "{tmp}/meshexp.yaml"],
        1,
        ("meshexp.yaml", "alias"),
        write("meshexp.yaml", "x: &a [1, 2]\nlabels: {a: *a}\n"),
    ),
    Case(
        "a settings file that is missing",
        [*RENDER, "--config", "{tmp}/none.yaml"],
        1,
        ("none.yaml", "cannot read the settings file"),
    ),
    Case(
        "a settings file that is a folder",
        [*RENDER, "--config", "{tmp}/conf"],
        2,
        ("--config", "conf", "is a directory"),
        folder("conf"),
    ),
    Case(
        "manifests --name with a newline",
        [*MANIFESTS, "--name", "smiley\nkind: Secret"],
        1,
        ("--name", "DNS-1123"),
    ),
    Case(
        "manifests --namespace with a newline",
        [*MANIFESTS, "--namespace", "faces\n---"],
        1,
        ("--namespace", "DNS-1123"),
    ),
    Case(
        "manifests --ip that is not one",
        ["manifests", "--workload", "smiley", "--ip", "x"],
        1,
        ("--ip",),
    ),
    Case(
        "certs --output under a regular file",
        ["certs", "--output", "{tmp}/a-file/certs"],
        1,
        ("a-file",),
        write("a-file", "x"),
    ),
    Case(
        "certs --force in the middle of a rotation",
        ["certs", "--output", "{tmp}/certs", "--force"],
        1,
        ("rotation is under way", "--rotate status"),
        lambda tmp: (tmp / "certs-anchor" / "next-ca.key").write_text("x"),
    ),
    Case(
        "certs --rotate finish with the new anchor's key corrupt",
        ["certs", "--output", "{tmp}/certs", "--rotate", "issuer"],
        1,
        ("next-ca.key", "unreadable"),
        lambda tmp: (
            CliRunner().invoke(main, ["certs", "--output", f"{tmp}/certs", "--rotate", "bundle"]),
            (tmp / "certs-anchor" / "next-ca.key").write_text("-----BEGIN EC PRIVATE KEY-----\n"),
        ),
    ),
    Case(
        "node-cert with an anchor file holding a key",
        ["node-cert", "--workload", "smiley", "--certs", "{tmp}/certs", "--output", "{tmp}/node"],
        1,
        ("ca.crt", "PRIVATE KEY"),
        lambda tmp: (tmp / "certs" / "ca.crt").write_text(
            (tmp / "certs" / "ca.crt").read_text() + (tmp / "certs" / "issuer.key").read_text()
        ),
    ),
    Case(
        "a catalog folder that does not exist",
        ["workloads", "--catalog", "{tmp}/none"],
        1,
        ("none", "is not a folder", "workloads new"),
    ),
    Case(
        "an unknown workload", ["render", "--workload", "nope", "--output", "{tmp}/o"], 1, ("nope",)
    ),
    Case("an unknown option", ["render", "--no-such-option"], 2, ("--no-such-option",)),
    Case(
        "register with an empty kubeconfig",
        ["register", "--kubeconfig", "{tmp}/kc", "--once"],
        1,
        ("kc", "not a kubeconfig"),
        write("kc", ""),
    ),
    Case(
        "register --namespace that is not a DNS label",
        ["register", "--kubeconfig", "{tmp}/kc", "--once", "--namespace", "Faces"],
        1,
        ("namespace", "DNS-1123"),
        write("kc", "clusters: []\n"),
    ),
    Case(
        "register --label with a newline",
        ["register", "--kubeconfig", "{tmp}/kc", "--once", "--label", "team=a\nb"],
        1,
        ("labels", "control character"),
        write("kc", "clusters: []\n"),
    ),
    Case(
        "register --once where no API server answers",
        ["register", "--kubeconfig", "{tmp}/kc", "--once"],
        1,
        ("register --once: nothing registered", "did not answer"),
        write(
            "kc",
            "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]\n"
            "users: [{name: u, user: {token: x}}]\n"
            "contexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n",
        ),
    ),
    Case("stop --name with a newline", ["stop", "--name", "smiley\nx"], 1, ("--name",)),
    Case("lab status without a lab", ["lab", "status", "--dir", "{tmp}/none"], 1, ("lab up",)),
    Case("image of an unknown workload", ["image", "--workload", "nope"], 1, ("nope",)),
    Case(
        "a Linkerd release before ExternalWorkload",
        ["doctor", "--linkerd-version", "stable-2.14"],
        1,
        ("stable-2.14", "predates ExternalWorkload"),
    ),
    Case("schema of an unknown kind", ["schema", "bogus"], 2, ("bogus",)),
    Case("check --env without =", ["check", "--env", "NOEQUALS", "x"], 2, ("NAME=VALUE",)),
    Case(
        "certs --anchor-key that names no file",
        ["certs", "--output", "{tmp}/new-certs", "--anchor-key", ""],
        1,
        ("--anchor-key", "give the path of a file"),
    ),
    Case(
        "a catalog value of 500 kB (the error line stays short)",
        RENDER,
        1,
        ("inventory.yaml", "namespace", "(500002 characters)"),
        write(
            "cat/inventory.yaml", ENTRY.replace("namespace: shop", "namespace: " + "s" * 500_000)
        ),
    ),
    Case(
        "a group file with an alias",
        ["register", "--group", "{tmp}/group.yaml", "--once", "--kubeconfig", "{tmp}/kc"],
        1,
        ("group.yaml", "alias (*a)"),
        lambda tmp: (
            write("group.yaml", "namespace: &a faces\nlabels: {x: *a}\n")(tmp),
            write("kc", "")(tmp),
        ),
    ),
    Case(
        "a group file that is not UTF-8",
        ["register", "--group", "{tmp}/group.yaml", "--once", "--kubeconfig", "{tmp}/kc"],
        1,
        ("group.yaml", "not UTF-8"),
        lambda tmp: (write("group.yaml", b"namespace: \xff\n")(tmp), write("kc", "")(tmp)),
    ),
]


def files_of(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize("case", CASES, ids=[case.what for case in CASES])
def test_broken_input_gets_one_line_its_exit_code_and_writes_nothing(
    tmp_path: Path, case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write("cat/inventory.yaml", ENTRY)(tmp_path)
    create_certs(folder=tmp_path / "certs")
    case.prepare(tmp_path)
    before = files_of(tmp_path)
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in case.args]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == case.code, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # no traceback
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if case.code == 2:  # click's usage errors: the usage line, a hint, then the error
        lines = [line for line in lines if line.startswith("Error:")]
    assert len(lines) == 1, result.stderr[:2000]
    [line] = lines
    assert line.startswith("Error: ")
    assert len(line) < 1000, len(line)
    for words in case.says:
        assert words in line, line
    assert files_of(tmp_path) == before
    assert not [p for p in tmp_path.rglob(".meshexp-*")], "a scratch file was left"


def test_the_last_net_bounds_every_line_of_a_message_and_keeps_the_lines() -> None:
    """Whatever a message quotes, each of its lines stays under about 4000 characters;
    a build log's lines are kept as lines."""
    huge = "x" * 1_000_000
    message = bounded(f"first {huge} last\nlog line 1\nlog line 2")
    lines = message.split("\n")
    assert lines[1:] == ["log line 1", "log line 2"]
    assert len(lines[0]) < MAX_LINE + 100
    assert lines[0].startswith("first x")
    assert lines[0].endswith("x last")
    assert f"({1_000_011 - MAX_LINE} characters cut)" in lines[0]
