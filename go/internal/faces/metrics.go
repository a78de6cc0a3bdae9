package faces

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MetricsPort is fixed, as upstream's is: one Faces workload per network
// namespace.
const MetricsPort = 9090

type metrics struct {
	registry *prometheus.Registry
	hostname string
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(hostname string) *metrics {
	labels := []string{"provider", "hostname", "key"}
	m := &metrics{
		hostname: hostname,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "requests_total", Help: "Requests answered, by status code.",
		}, append(labels, "status")),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "request_duration_seconds", Help: "Time to answer a request.",
			Buckets: prometheus.DefBuckets,
		}, labels),
	}
	// A registry per provider (with the Go and process collectors upstream's
	// default registry has), so that tests can make several providers.
	m.registry = prometheus.NewRegistry()
	m.registry.MustRegister(m.requests, m.duration, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observe(provider, key string, status int, took time.Duration) {
	m.requests.WithLabelValues(provider, m.hostname, key, fmt.Sprintf("%03d", status)).Inc()
	m.duration.WithLabelValues(provider, m.hostname, key).Observe(took.Seconds())
}

// ServeMetrics serves /metrics on MetricsPort in the background; a taken port
// ends the program, as upstream's does.
func (p *Provider) ServeMetrics() {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(p.metrics.registry, promhttp.HandlerOpts{}))
	go func() {
		err := http.ListenAndServe(fmt.Sprintf(":%d", MetricsPort), mux)
		slog.Error("metrics server stopped", "error", err)
		os.Exit(1)
	}()
}
