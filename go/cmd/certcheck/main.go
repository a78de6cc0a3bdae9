// Command certcheck checks the certificates mounted into a meshexp image
// before anything starts; see package certcheck.
package main

import (
	"os"

	"meshexp.dev/components/internal/certcheck"
)

func main() {
	os.Exit(certcheck.Main(os.Args[1:]))
}
