// Command certcheck checks the certificates mounted into a meshexp image
// before anything starts (package certcheck); called meshexp-probe (a link in
// the image), it is the workload's readiness probe (package probe).
package main

import (
	"os"
	"path/filepath"

	"meshexp.dev/components/internal/certcheck"
	"meshexp.dev/components/internal/probe"
)

func main() {
	if filepath.Base(os.Args[0]) == "meshexp-probe" {
		os.Exit(probe.Main(os.Args[1:]))
	}
	os.Exit(certcheck.Main(os.Args[1:]))
}
