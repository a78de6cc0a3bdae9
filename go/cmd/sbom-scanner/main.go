// Command sbom-scanner is BuildKit's SBOM generator made from syft: it scans
// the filesystems BuildKit mounts and writes each scan as an in-toto statement
// with an SPDX predicate, as BuildKit's SBOM scanning protocol asks. Offline,
// docker/buildkit-syft-scanner cannot be pulled; this and syft from the Go
// module proxy take its place (see builder/buildkit.py).
package main

import (
	"fmt"
	"os"

	"meshexp.dev/components/internal/sbomscan"
)

func main() {
	if err := sbomscan.Run(os.Getenv, "/usr/local/bin/syft"); err != nil {
		fmt.Fprintf(os.Stderr, "sbom-scanner: %v\n", err)
		os.Exit(1)
	}
}
