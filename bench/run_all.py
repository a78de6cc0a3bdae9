"""`make bench`: every benchmark in one run, then the report."""

from __future__ import annotations

import time

from bench import (
    catalog,
    from_image,
    image_size,
    keeper,
    lab,
    memory,
    publish,
    rebuild,
    registration,
    registration_service,
    report,
    spire_build,
    time_to_ready,
    walkthrough,
)


def main() -> None:
    start = time.monotonic()
    for module in (
        time_to_ready,
        rebuild,
        image_size,
        spire_build,
        catalog,
        memory,
        keeper,
        registration,
        registration_service,
        lab,
        publish,
        from_image,
        walkthrough,
    ):
        print(f"== {module.__name__.split('.')[-1]}", flush=True)
        module.main()
    report.main()
    print(f"benchmarks took {time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
