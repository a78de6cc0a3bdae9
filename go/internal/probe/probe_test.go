package probe

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func port(t *testing.T, address string) int {
	t.Helper()
	_, text, err := net.SplitHostPort(address)
	if err != nil {
		t.Fatal(err)
	}
	value, _ := strconv.Atoi(text)
	return value
}

func TestHTTPPassesOnSuccessAndFailsOnAnErrorStatus(t *testing.T) {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/broken" {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer server.Close()
	p := port(t, server.Listener.Addr().String())
	if answer, err := Run(Spec{Kind: "http", Port: p, Path: "/", Timeout: 2}); err != nil || answer != "http GET /: 200" {
		t.Fatalf("want a pass, got %q %v", answer, err)
	}
	_, err := Run(Spec{Kind: "http", Port: p, Path: "/broken", Timeout: 2})
	if err == nil || !strings.Contains(err.Error(), "500 (want 200-399)") {
		t.Fatalf("want a failure naming 500, got %v", err)
	}
	if _, err := Run(Spec{Kind: "http", Port: p, Path: "/missing", StatusBelow: 500, Timeout: 2}); err != nil {
		t.Fatalf("the default probe takes a 200 below 500: %v", err)
	}
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	nf := port(t, notFound.Listener.Addr().String())
	if _, err := Run(Spec{Kind: "http", Port: nf, Path: "/", StatusBelow: 500, Timeout: 2}); err != nil {
		t.Fatalf("the default probe takes a 404: %v", err)
	}
	if _, err := Run(Spec{Kind: "http", Port: p, Path: "/broken", StatusBelow: 500, Timeout: 2}); err == nil {
		t.Fatal("the default probe must refuse a 500")
	}
	if _, err := Run(Spec{Kind: "http", Port: p, Path: "/", Status: 204, Timeout: 2}); err == nil {
		t.Fatal("an expected status other than the answer must fail")
	}
}

func TestHTTPThatHangsFailsWithinTheTimeout(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close() // accepts (backlog) but never answers
	_, err = Run(Spec{Kind: "http", Port: port(t, listener.Addr().String()), Path: "/", Timeout: 0.3})
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("want a timeout, got %v", err)
	}
}

func TestTCPFailsOnAClosedPort(t *testing.T) {
	listener, _ := net.Listen("tcp", "127.0.0.1:0")
	p := port(t, listener.Addr().String())
	if _, err := Run(Spec{Kind: "tcp", Port: p, Timeout: 1}); err != nil {
		t.Fatalf("an open port must pass: %v", err)
	}
	listener.Close()
	if _, err := Run(Spec{Kind: "tcp", Port: p, Timeout: 1}); err == nil {
		t.Fatal("a closed port must fail")
	}
}

func TestGRPCHealthFollowsTheServingStatus(t *testing.T) {
	listener, _ := net.Listen("tcp", "127.0.0.1:0")
	server := grpc.NewServer()
	checker := health.NewServer()
	healthpb.RegisterHealthServer(server, checker)
	go server.Serve(listener)
	defer server.Stop()
	p := port(t, listener.Addr().String())
	if answer, err := Run(Spec{Kind: "grpc", Port: p, Timeout: 2}); err != nil || !strings.HasSuffix(answer, "SERVING") {
		t.Fatalf("want SERVING, got %q %v", answer, err)
	}
	checker.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if _, err := Run(Spec{Kind: "grpc", Port: p, Timeout: 2}); err == nil || !strings.Contains(err.Error(), "NOT_SERVING") {
		t.Fatalf("want NOT_SERVING, got %v", err)
	}
	_, err := Run(Spec{Kind: "grpc", Port: p, Method: "/No.Such/Method", Timeout: 2})
	if err == nil || !strings.Contains(err.Error(), "grpc-status 12") {
		t.Fatalf("an unknown method answers UNIMPLEMENTED (12), got %v", err)
	}
}

func TestExecFollowsTheExitCode(t *testing.T) {
	if _, err := Run(Spec{Kind: "exec", Command: []string{"true"}, Timeout: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(Spec{Kind: "exec", Command: []string{"false"}, Timeout: 2}); err == nil {
		t.Fatal("false must fail")
	}
	if _, err := Run(Spec{Kind: "exec", Command: []string{"sleep", "5"}, Timeout: 0.2}); err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("want a timeout, got %v", err)
	}
}
