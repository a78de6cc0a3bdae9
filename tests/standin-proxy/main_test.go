package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
)

func env(values map[string]string) func(string) string {
	return func(name string) string { return values[name] }
}

func complete() map[string]string {
	return map[string]string{
		"LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS": "pem",
		"LINKERD2_PROXY_IDENTITY_SERVER_ID":     "spiffe://td/smiley",
		"LINKERD2_PROXY_IDENTITY_SERVER_NAME":   "smiley.cluster.local",
		"LINKERD2_PROXY_DESTINATION_SVC_ADDR":   "dst:8086",
		"LINKERD2_PROXY_DESTINATION_SVC_NAME":   "dst",
		"LINKERD2_PROXY_POLICY_SVC_ADDR":        "policy:8090",
		"LINKERD2_PROXY_POLICY_SVC_NAME":        "policy",
		"LINKERD2_PROXY_POLICY_WORKLOAD":        `{"ns":"faces","external_workload":"smiley"}`,
		spireSocketNew:                          "unix:///run/spire/agent/public/api.sock",
		"LINKERD2_PROXY_INBOUND_DEFAULT_POLICY": "all-unauthenticated",
	}
}

func TestCompleteEnvironmentIsAccepted(t *testing.T) {
	cfg, problems := loadConfig(env(complete()))
	if len(problems) != 0 {
		t.Fatalf("unexpected problems: %v", problems)
	}
	if cfg.socket != "/run/spire/agent/public/api.sock" || cfg.inboundPort != "4143" || cfg.outboundPort != "4140" {
		t.Fatalf("bad config: %+v", cfg)
	}
}

func TestOldSocketNameStillWorks(t *testing.T) {
	values := complete()
	delete(values, spireSocketNew)
	values[spireSocketOld] = "/run/x.sock"
	cfg, problems := loadConfig(env(values))
	if len(problems) != 0 || cfg.socket != "/run/x.sock" {
		t.Fatalf("old name refused: %v %+v", problems, cfg)
	}
}

func TestEachMissingOrBadVariableIsNamed(t *testing.T) {
	for _, name := range append(required, spireSocketNew) {
		values := complete()
		delete(values, name)
		_, problems := loadConfig(env(values))
		if len(problems) != 1 || !strings.Contains(problems[0], name) {
			t.Errorf("removing %s gave %v", name, problems)
		}
	}
	values := complete()
	values["LINKERD2_PROXY_IDENTITY_SERVER_ID"] = "smiley"
	values["LINKERD2_PROXY_POLICY_WORKLOAD"] = `{"ns":"faces"}`
	values["LINKERD2_PROXY_INBOUND_DEFAULT_POLICY"] = "allow"
	if _, problems := loadConfig(env(values)); len(problems) != 3 {
		t.Errorf("want 3 problems, got %v", problems)
	}
}

func field(number int, payload []byte) []byte {
	out := binary.AppendUvarint(nil, uint64(number<<3|2))
	out = binary.AppendUvarint(out, uint64(len(payload)))
	return append(out, payload...)
}

func TestDecodeX509SVIDResponse(t *testing.T) {
	first := append(field(1, []byte("spiffe://td/a")), field(2, []byte{1, 2, 3})...)
	first = append(first, 0x28, 0x05) // field 5, varint: skipped
	second := field(1, []byte("spiffe://td/b"))
	message := append(field(1, first), field(1, second)...)
	message = append(message, field(3, []byte("federated"))...)
	svids, err := decodeX509SVIDResponse(message)
	if err != nil {
		t.Fatal(err)
	}
	if len(svids) != 2 || svids[0].spiffeID != "spiffe://td/a" || string(svids[0].certs) != "\x01\x02\x03" || svids[1].spiffeID != "spiffe://td/b" {
		t.Fatalf("decoded %+v", svids)
	}
	if _, err := decodeX509SVIDResponse([]byte{0x0a, 0x10, 0x01}); err == nil {
		t.Fatal("a truncated message must fail")
	}
}

func TestDefaultPolicyAdmitsAsTheProxyDoesWithoutAController(t *testing.T) {
	inside := &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 5000}
	outside := &net.TCPAddr{IP: net.ParseIP("172.18.0.1"), Port: 5000}
	cases := []struct {
		name            string
		inside, outside bool
		refusal         int
	}{
		{"all-unauthenticated", true, true, 403},
		{"cluster-unauthenticated", true, false, 403},
		{"cluster-authenticated", false, false, 403},
		{"all-authenticated", false, false, 403},
		{"deny", false, false, 404},
	}
	for _, c := range cases {
		policy, err := parsePolicy(c.name, "10.0.0.0/8")
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if policy.admits(inside) != c.inside || policy.admits(outside) != c.outside {
			t.Errorf("%s: admits inside=%v outside=%v, want %v %v", c.name,
				policy.admits(inside), policy.admits(outside), c.inside, c.outside)
		}
		if policy.refusalStatus() != c.refusal {
			t.Errorf("%s: refusal %d, want %d", c.name, policy.refusalStatus(), c.refusal)
		}
	}
}

// policyProblems: what loadConfig says of a complete environment with this
// default policy and these cluster networks.
func policyProblems(policy, networks string) []string {
	values := complete()
	values["LINKERD2_PROXY_INBOUND_DEFAULT_POLICY"] = policy
	values["LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS"] = networks
	_, problems := loadConfig(env(values))
	return problems
}

func TestPolicyConfigurationIsCheckedAsTheProxyChecksIt(t *testing.T) {
	cases := []struct{ policy, networks, problem string }{
		{"cluster-unauthenticated", "", "LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS"},
		{"cluster-unauthenticated", "10.0.0.0/8,not-a-net", "not-a-net"},
		// "audit" is the policy controller's mode: the proxy refuses it as its default.
		{"audit", "", "audit"},
	}
	for _, c := range cases {
		problems := policyProblems(c.policy, c.networks)
		if len(problems) != 1 || !strings.Contains(problems[0], c.problem) {
			t.Errorf("%s %q: problems = %v", c.policy, c.networks, problems)
		}
	}
	if problems := policyProblems("cluster-unauthenticated", "10.0.0.0/8"); len(problems) != 0 {
		t.Errorf("a valid cluster policy: problems = %v", problems)
	}
}

func TestRefusedPlaintextRequestGetsTheProxysStatus(t *testing.T) {
	for policy, want := range map[string]string{"all-authenticated": "HTTP/1.1 403 ", "deny": ""} {
		listener, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			conn, err := listener.Accept()
			if err == nil {
				refuse(conn, inboundPolicy{name: policy})
				conn.Close()
			}
		}()
		client, err := net.Dial("tcp", listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(client, "GET / HTTP/1.0\r\nHost: check\r\n\r\n")
		answer, _ := io.ReadAll(client)
		client.Close()
		listener.Close()
		if !strings.HasPrefix(string(answer), want) || (want == "" && len(answer) != 0) {
			t.Errorf("%s: answered %q, want %q", policy, answer, want)
		}
	}
}
