// Command multicall is SPIRE's server and agent and meshexp's certcheck in one
// binary, chosen by the name it is called by. The two SPIRE programs share
// most of their code, so one binary saves about 50 MB in the demo topology's
// image (bench/NOTES.md).
package main

import (
	"os"
	"path/filepath"

	agent "github.com/spiffe/spire/cmd/spire-agent/cli"
	server "github.com/spiffe/spire/cmd/spire-server/cli"
	"github.com/spiffe/spire/pkg/common/entrypoint"

	"meshexp.dev/components/internal/certcheck"
	"meshexp.dev/components/internal/probe"
)

func main() {
	switch filepath.Base(os.Args[0]) {
	case "spire-agent":
		os.Exit(entrypoint.NewEntryPoint(new(agent.CLI).Run).Main())
	case "meshexp-certcheck":
		os.Exit(certcheck.Main(os.Args[1:]))
	case "meshexp-probe":
		os.Exit(probe.Main(os.Args[1:]))
	default:
		os.Exit(entrypoint.NewEntryPoint(new(server.CLI).Run).Main())
	}
}
