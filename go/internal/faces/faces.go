// Package faces serves Faces-compatible workloads: the same port flag, the
// same environment (SMILEY, COLOR, DELAY_BUCKETS, ERROR_FRACTION) and the
// same JSON shape as the Faces demo, written here because the Go module
// proxy of this workplace does not serve the upstream module.
package faces

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Answer computes the workload-specific fields of one response, or an error
// that becomes a 500 answer.
type Answer func(r *http.Request) (map[string]any, error)

// Serve parses -port, then answers every path but /healthz with Answer.
func Serve(name string, answer Answer) {
	port := flag.Int("port", 8000, "TCP port to listen on")
	flag.Parse()
	delays, err := parseBuckets(os.Getenv("DELAY_BUCKETS"))
	if err != nil {
		log.Fatalf("%s: DELAY_BUCKETS: %v", name, err)
	}
	errorPercent, err := parsePercent(os.Getenv("ERROR_FRACTION"))
	if err != nil {
		log.Fatalf("%s: ERROR_FRACTION: %v", name, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if len(delays) > 0 {
			time.Sleep(delays[rand.IntN(len(delays))])
		}
		status := http.StatusOK
		body := map[string]any{}
		if rand.Float64()*100 < errorPercent {
			status = http.StatusInternalServerError
			body["errors"] = []string{name + ": injected error (ERROR_FRACTION)"}
		} else if fields, err := answer(r); err != nil {
			status = http.StatusBadGateway
			body["errors"] = []string{err.Error()}
		} else {
			for key, value := range fields {
				body[key] = value
			}
		}
		respond(w, r, status, body)
	})
	addr := fmt.Sprintf(":%d", *port)
	log.Printf("%s: listening on %s", name, addr)
	log.Fatal(http.ListenAndServe(addr, mux))
}

func respond(w http.ResponseWriter, r *http.Request, status int, fields map[string]any) {
	body := map[string]any{
		"path":           r.URL.Path,
		"client_address": r.RemoteAddr,
		"method":         r.Method,
		"headers":        r.Header,
		"status":         status,
	}
	for key, value := range fields {
		body[key] = value
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// parseBuckets reads "0,5,10" (milliseconds) into delays; empty means none.
func parseBuckets(text string) ([]time.Duration, error) {
	var delays []time.Duration
	for _, part := range strings.Split(text, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		ms, err := strconv.Atoi(part)
		if err != nil || ms < 0 {
			return nil, fmt.Errorf("%q is not a list of milliseconds like 0,50,100", text)
		}
		delays = append(delays, time.Duration(ms)*time.Millisecond)
	}
	return delays, nil
}

// parsePercent reads ERROR_FRACTION, a percentage from 0 to 100; empty means 0.
func parsePercent(text string) (float64, error) {
	if strings.TrimSpace(text) == "" {
		return 0, nil
	}
	value, err := strconv.ParseFloat(text, 64)
	if err != nil || value < 0 || value > 100 {
		return 0, fmt.Errorf("%q is not a percentage from 0 to 100", text)
	}
	return value, nil
}

// Lookup returns table[key] (case-insensitive), or key itself when it is not
// a known name (so a literal emoji or #rrggbb passes through).
func Lookup(table map[string]string, key string) string {
	for name, value := range table {
		if strings.EqualFold(name, key) {
			return value
		}
	}
	return key
}
