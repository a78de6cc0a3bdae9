"""Running a program, written once: its output, or an error that names the command and
ends with the last lines it printed (where a tool says what went wrong), cut so that a
chatty tool cannot flood the one-line error the CLI prints.

Each caller says which error its failure is (a BuildError for a build step, a
ProviderError for kind, ...), so that the exit code stays the caller's.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from builder.core.errors import MeshexpError

TAIL_LINES = 15
TAIL_CHARS = 1500


class CommandFailed(MeshexpError):
    """A command exited non-zero (or could not start, or ran past its time limit);
    `output` is what it printed on stdout, `returncode` its exit status (-1 when it
    never ran to an end)."""

    def __init__(self, message: str, output: str = "", returncode: int = -1) -> None:
        super().__init__(message)
        self.output = output
        self.returncode = returncode


def tail(text: str, lines: int = TAIL_LINES, chars: int = TAIL_CHARS) -> str:
    """The last `lines` non-empty lines of `text`, at most `chars` characters of them."""
    kept = [line.rstrip() for line in text.strip().splitlines() if line.strip()][-lines:]
    joined = "\n".join(kept)
    return joined if len(joined) <= chars else "..." + joined[-chars:]


def shown(command: Sequence[str | os.PathLike[str]], words: int = 4, width: int = 40) -> str:
    """A command as an error names it, on one line: its program's name and first words
    (each with its white space collapsed and cut to `width` characters)."""
    parts = [str(word) for word in command]
    if not parts:
        return "``"
    head = [_word(word, width) for word in [Path(parts[0]).name, *parts[1:words]]]
    return "`" + " ".join(head) + (" ...`" if len(parts) > words else "`")


def _word(word: str, width: int) -> str:
    flat = " ".join(word.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def run(
    command: Sequence[str | os.PathLike[str]],
    *,
    what: str = "",
    stdin: str | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    error: type[MeshexpError] = CommandFailed,
) -> str:
    """Run `command`; its stdout. On a non-zero exit, a missing program or a time limit
    passed: `error` (CommandFailed by default) saying `what` (default: the command) failed,
    with the exit status and the tail of stderr (stdout where stderr is empty)."""
    name = what or shown(command)
    try:
        done = subprocess.run(
            [str(word) for word in command],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise _error(error, f"{name} failed: {command[0]} is not there", "", -1) from None
    except subprocess.TimeoutExpired:
        raise _error(error, f"{name} did not end within {timeout:.0f}s", "", -1) from None
    if done.returncode != 0:
        said = tail(done.stderr or done.stdout)
        raise _error(
            error,
            f"{name} failed ({done.returncode})" + (f":\n{said}" if said else ""),
            done.stdout,
            done.returncode,
        )
    return done.stdout


def _error(error: type[MeshexpError], message: str, output: str, code: int) -> MeshexpError:
    """`error` with the message; a CommandFailed also keeps the output and the status."""
    if issubclass(error, CommandFailed):
        return error(message, output, code)
    return error(message)
