package faces

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Port parses the one flag every Faces workload takes.
func Port() int {
	port := flag.Int("port", 8000, "TCP port to listen on")
	flag.Parse()
	return *port
}

// ServeHTTP answers GET on every path with answer (through the provider's
// fault injection), HEAD with 200 and no work, and anything else with 405.
func ServeHTTP(p *Provider, port int, answer func(Request) Response) error {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			respond(w, r, p, p.Handle(requestOf(r, p), answer))
		case http.MethodHead:
			respond(w, r, p, Response{Status: http.StatusOK})
		default:
			resp := Response{Status: http.StatusMethodNotAllowed}
			resp.AddError(fmt.Sprintf("method %s not allowed", r.Method))
			respond(w, r, p, resp)
		}
	})
	addr := fmt.Sprintf(":%d", port)
	p.Infof("Starting server on %s", addr)
	return http.ListenAndServe(addr, handler)
}

// requestOf reads the subrequest, row and col (-1 when absent or malformed),
// the user header and the user agent ("unknown" when absent).
func requestOf(r *http.Request, p *Provider) Request {
	req := Request{
		Subrequest: strings.Split(r.URL.Path, "/")[1],
		User:       r.Header.Get(p.UserHeaderName),
		UserAgent:  r.Header.Get("User-Agent"),
		Row:        intOr(r.URL.Query().Get("row"), -1),
		Col:        intOr(r.URL.Query().Get("col"), -1),
	}
	if req.User == "" {
		req.User = "unknown"
	}
	if req.UserAgent == "" {
		req.UserAgent = "unknown"
	}
	return req
}

func intOr(text string, fallback int) int {
	if value, err := strconv.Atoi(text); err == nil {
		return value
	}
	return fallback
}

// respond writes the standard answer: the request echoed back (path, client
// address, method, headers), the status, the provider's fields and errors.
func respond(w http.ResponseWriter, r *http.Request, p *Provider, resp Response) {
	body := map[string]any{
		"path":           r.URL.Path,
		"client_address": r.RemoteAddr,
		"method":         r.Method,
		"headers":        r.Header,
		"status":         resp.Status,
	}
	for key, value := range resp.Data {
		body[key] = value
	}
	if len(resp.Errors) > 0 {
		body["errors"] = resp.Errors
	}
	encoded, err := json.Marshal(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(p.UserHeaderName, r.Header.Get(p.UserHeaderName))
	w.Header().Set("User-Agent", r.Header.Get("User-Agent"))
	w.Header().Set("X-Faces-Pod", p.HostIP)
	w.WriteHeader(resp.Status)
	_, _ = w.Write(encoded)
}
