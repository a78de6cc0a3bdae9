"""The one error hierarchy of meshexp-build; each error carries its exit code.

Plain exceptions, with no dependency on the command-line library: the CLI
package alone turns a MeshexpError into its one-line "Error: ..." and the exit
code below (documented in the README): 1 user error (catalog, settings,
render, certificates), 2 usage, 3 engine unavailable, 4 build failed, 5 check
failed.
"""

from __future__ import annotations


class MeshexpError(Exception):
    """Base class: a message that says what went wrong and how to fix it."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class CatalogError(MeshexpError):
    """A workload catalog entry is missing or invalid."""


class SettingsError(MeshexpError):
    """Build settings (file or flags) are invalid."""


class RenderError(MeshexpError):
    """The build context could not be rendered."""


class CertsError(MeshexpError):
    """Certificates could not be created or read."""


class SourceError(MeshexpError):
    """A component source (image, file, url, go, debian) cannot be had."""

    exit_code = 4


class EngineError(MeshexpError):
    """No Docker engine answers."""

    exit_code = 3


class BuildError(MeshexpError):
    """An image build failed; the message carries the last build-log lines."""

    exit_code = 4


class CheckError(MeshexpError):
    """An image failed a check."""

    exit_code = 5
