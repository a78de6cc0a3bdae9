"""meshexp-build: build and check images that bring outside workloads into a Linkerd mesh."""

from __future__ import annotations

__version__ = "0.1.0"
