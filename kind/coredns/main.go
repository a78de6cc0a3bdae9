// Command coredns is CoreDNS with only the plugins the node image's Corefiles
// use: kubeadm's (errors, health, ready, kubernetes, prometheus, forward,
// cache, loop, reload, loadbalance) and the walk-through's DNS forwarder
// (forward, log). CoreDNS's own main imports every plugin; a plugin not
// imported here is neither compiled nor linked, and a Corefile naming one
// fails at start with CoreDNS's own "unknown directive" error.
package main

import (
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

func main() {
	coremain.Run()
}
