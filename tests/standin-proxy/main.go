// Command standin-proxy is TEST EQUIPMENT, not a Linkerd proxy.
//
// Where no real linkerd2-proxy binary is at hand (the tests use the real one
// whenever it exists), image checks run against this stand-in. It honours the parts of the proxy's contract that an image
// check can observe: the required LINKERD2_PROXY_* environment, an X.509 SVID
// fetched from the SPIRE agent's Workload API whose SPIFFE ID must equal
// LINKERD2_PROXY_IDENTITY_SERVER_ID and chain to the trust anchors, the admin
// endpoints (/live, /ready, /metrics, /shutdown), and TCP relaying of
// redirected inbound (4143) connections to their original
// destination under the default inbound policy, which also guards the admin
// port, as linkerd2-proxy does while no policy controller answers. Outbound
// connections are accepted and held, as linkerd2-proxy holds them until the
// policy controller answers for their target; the stand-in never has one.
// It does no mTLS and no routing.
package main

import (
	"fmt"
	"log"
	"os"
	"strings"
)

const banner = "PROXY STAND-IN: not a Linkerd proxy"

func main() {
	fmt.Println(banner)
	log.SetFlags(log.LstdFlags | log.LUTC)
	log.SetPrefix("standin-proxy: ")
	cfg, missing := loadConfig(os.Getenv)
	if len(missing) > 0 {
		for _, problem := range missing {
			fmt.Fprintln(os.Stderr, "standin-proxy: "+problem)
		}
		os.Exit(64)
	}
	state := &proxyState{}
	go watchIdentity(cfg, state)
	errs := make(chan error, 3)
	go func() { errs <- serveAdmin(cfg, state) }()
	go func() { errs <- relay(cfg, "inbound", state) }()
	go func() { errs <- relay(cfg, "outbound", state) }()
	err := <-errs
	log.Printf("fatal: %v", err)
	os.Exit(1)
}

func portOf(addr string) string {
	if i := strings.LastIndex(addr, ":"); i >= 0 {
		return addr[i+1:]
	}
	return addr
}
