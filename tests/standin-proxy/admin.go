package main

import (
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
)

// serveAdmin answers /live, /ready (503 until certified), /metrics and /shutdown.
func serveAdmin(cfg config, state *proxyState) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/live", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "live") })
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
		state.mu.Lock()
		ready := state.ready
		state.mu.Unlock()
		if !ready {
			http.Error(w, "not ready: no identity yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		state.mu.Lock()
		id, expiry := state.spiffeID, state.notAfter
		state.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintln(w, "# HELP tcp_open_total Total count of opened connections (stand-in proxy).")
		fmt.Fprintln(w, "# TYPE tcp_open_total counter")
		fmt.Fprintf(w, "tcp_open_total{direction=\"inbound\",peer=\"src\"} %d\n", atomic.LoadUint64(&state.inbound))
		fmt.Fprintf(w, "tcp_open_total{direction=\"outbound\",peer=\"src\"} %d\n", atomic.LoadUint64(&state.outbound))
		if id != "" {
			fmt.Fprintf(w, "identity_cert_expiration_timestamp_seconds %d\n", expiry.Unix())
			fmt.Fprintf(w, "standin_identity_info{spiffe_id=%q} 1\n", id)
		}
		fmt.Fprintln(w, "standin_proxy_info{note=\"PROXY STAND-IN: not a Linkerd proxy\"} 1")
	})
	mux.HandleFunc("/shutdown", func(w http.ResponseWriter, r *http.Request) {
		if !cfg.shutdown || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "shutting down")
		go func() { panic("shutdown requested") }()
	})
	// Like linkerd2-proxy without a policy controller: the default inbound
	// policy guards the admin port too.
	guarded := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		remote, err := net.ResolveTCPAddr("tcp", r.RemoteAddr)
		if err != nil || !cfg.policy.admits(remote) {
			w.Header().Set("l5d-proxy-error", "unauthorized by the default inbound policy "+cfg.policy.name)
			http.Error(w, "refused by the default inbound policy", cfg.policy.refusalStatus())
			return
		}
		mux.ServeHTTP(w, r)
	})
	return http.ListenAndServe(cfg.adminAddr, guarded)
}
