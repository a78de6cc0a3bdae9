package main

import (
	"fmt"
	"net"
	"strings"
)

// inboundPolicy is the proxy's default inbound policy as linkerd2-proxy
// applies it while no policy controller answers: to the inbound port and to
// its own admin port alike. The stand-in does no TLS, so no client of it is
// ever authenticated.
type inboundPolicy struct {
	name     string
	clusters []*net.IPNet
}

func parsePolicy(name, networks string) (inboundPolicy, error) {
	if name == "" {
		name = "all-unauthenticated"
	}
	policy := inboundPolicy{name: name}
	for _, text := range strings.Split(networks, ",") {
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		_, network, err := net.ParseCIDR(text)
		if err != nil {
			return policy, fmt.Errorf("LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS: %q is not a network", text)
		}
		policy.clusters = append(policy.clusters, network)
	}
	if strings.HasPrefix(name, "cluster-") && len(policy.clusters) == 0 {
		return policy, fmt.Errorf("LINKERD2_PROXY_INBOUND_DEFAULT_POLICY=%s needs LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS", name)
	}
	return policy, nil
}

// admits reports whether a plaintext client at addr may pass.
func (p inboundPolicy) admits(addr net.Addr) bool {
	switch p.name {
	case "all-unauthenticated":
		return true
	case "cluster-unauthenticated":
		tcp, ok := addr.(*net.TCPAddr)
		if !ok {
			return false
		}
		for _, network := range p.clusters {
			if network.Contains(tcp.IP) {
				return true
			}
		}
		return false
	default: // deny, all-authenticated, cluster-authenticated
		return false
	}
}

// refusalStatus is the HTTP status the proxy answers a refused request with:
// under deny no server is known for the port (404), otherwise the client is
// not authorized (403).
func (p inboundPolicy) refusalStatus() int {
	if p.name == "deny" {
		return 404
	}
	return 403
}
