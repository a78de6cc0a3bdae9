package main

import (
	"encoding/json"
	"fmt"
	"strings"
)

type config struct {
	trustAnchors string
	serverID     string
	serverName   string
	socket       string
	adminAddr    string
	inboundAddr  string
	outboundAddr string
	inboundPort  string
	outboundPort string
	shutdown     bool
	policy       inboundPolicy
}

// The proxy renamed the SPIRE socket variable in v2.304.0; it accepts both.
const (
	spireSocketNew = "LINKERD2_PROXY_IDENTITY_SPIRE_WORKLOAD_API_ADDRESS"
	spireSocketOld = "LINKERD2_PROXY_IDENTITY_SPIRE_SOCKET"
)

var required = []string{
	"LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS",
	"LINKERD2_PROXY_IDENTITY_SERVER_ID",
	"LINKERD2_PROXY_IDENTITY_SERVER_NAME",
	"LINKERD2_PROXY_DESTINATION_SVC_ADDR",
	"LINKERD2_PROXY_DESTINATION_SVC_NAME",
	"LINKERD2_PROXY_POLICY_SVC_ADDR",
	"LINKERD2_PROXY_POLICY_SVC_NAME",
	"LINKERD2_PROXY_POLICY_WORKLOAD",
}

// The policies linkerd2-proxy accepts as its default; like it, the stand-in
// refuses "audit", which is the policy controller's mode, not the proxy's.
var policies = map[string]bool{
	"deny": true, "all-authenticated": true, "all-unauthenticated": true,
	"cluster-authenticated": true, "cluster-unauthenticated": true,
}

// loadConfig reads the environment like the proxy does and lists every problem.
func loadConfig(getenv func(string) string) (config, []string) {
	var problems []string
	for _, name := range required {
		if strings.TrimSpace(getenv(name)) == "" {
			problems = append(problems, name+" is required")
		}
	}
	socket := getenv(spireSocketNew)
	if socket == "" {
		socket = getenv(spireSocketOld)
	}
	if socket == "" {
		problems = append(problems, spireSocketNew+" (or "+spireSocketOld+") is required")
	}
	id := getenv("LINKERD2_PROXY_IDENTITY_SERVER_ID")
	if id != "" && !strings.HasPrefix(id, "spiffe://") {
		problems = append(problems, fmt.Sprintf("LINKERD2_PROXY_IDENTITY_SERVER_ID=%q must be a spiffe:// URI", id))
	}
	if raw := getenv("LINKERD2_PROXY_POLICY_WORKLOAD"); raw != "" {
		var workload struct {
			Ns       string `json:"ns"`
			External string `json:"external_workload"`
		}
		if err := json.Unmarshal([]byte(raw), &workload); err != nil || workload.Ns == "" || workload.External == "" {
			problems = append(problems, "LINKERD2_PROXY_POLICY_WORKLOAD must be JSON {\"ns\":...,\"external_workload\":...}")
		}
	}
	name := getenv("LINKERD2_PROXY_INBOUND_DEFAULT_POLICY")
	if name != "" && !policies[name] {
		problems = append(problems, fmt.Sprintf("LINKERD2_PROXY_INBOUND_DEFAULT_POLICY=%q is not a known policy", name))
	}
	policy, err := parsePolicy(name, getenv("LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS"))
	if err != nil {
		problems = append(problems, err.Error())
	}
	cfg := config{
		trustAnchors: getenv("LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS"),
		serverID:     id,
		serverName:   getenv("LINKERD2_PROXY_IDENTITY_SERVER_NAME"),
		socket:       strings.TrimPrefix(socket, "unix://"),
		adminAddr:    orDefault(getenv("LINKERD2_PROXY_ADMIN_LISTEN_ADDR"), "127.0.0.1:4191"),
		inboundAddr:  orDefault(getenv("LINKERD2_PROXY_INBOUND_LISTEN_ADDR"), "0.0.0.0:4143"),
		outboundAddr: orDefault(getenv("LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR"), "127.0.0.1:4140"),
		shutdown:     getenv("LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED") == "true",
		policy:       policy,
	}
	cfg.inboundPort = portOf(cfg.inboundAddr)
	cfg.outboundPort = portOf(cfg.outboundAddr)
	return cfg, problems
}

func orDefault(value, fallback string) string {
	if value == "" {
		return fallback
	}
	return value
}
