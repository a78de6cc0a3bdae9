// Package faces serves workloads that behave like the Faces demo v2.0.0
// (github.com/BuoyantIO/faces-demo): the same flag, environment, JSON
// answers, headers, fault injection and metrics, so that our builds and the
// upstream programs can be mixed in one mesh. It is written here because the
// Go module proxy of some workplaces does not serve the upstream module; the
// conformance test in tests/integration runs both side by side.
package faces

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Request is what a provider needs from one call, whatever the protocol.
type Request struct {
	Subrequest string // first path segment: "center", "edge" or ""
	User       string
	UserAgent  string
	Row, Col   int
}

// Response is a status code (HTTP codes, also for gRPC) plus answer fields
// and error lines.
type Response struct {
	Status int
	Data   map[string]any
	Errors []string
}

// AddError appends one line to the answer's `errors` list.
func (r *Response) AddError(text string) { r.Errors = append(r.Errors, text) }

// Provider holds the behaviour every Faces workload shares: the environment,
// fault injection (rate limit, latching, error fraction, delays) and metrics.
type Provider struct {
	Name string // "Smiley", "Color", "Face": log prefix, metrics label, error text
	Key  string // metrics label: what this workload serves

	lock           sync.Mutex
	logger         *slog.Logger
	delayBuckets   []int
	errorFraction  int
	latchFraction  int
	maxRate        float64
	UserHeaderName string
	HostIP         string
	latched        bool
	rate           *rateCounter
	lastRequest    time.Time
	metrics        *metrics
}

// NewProvider reads the shared environment the way upstream does: malformed
// or out-of-range values are clamped or ignored, never fatal.
func NewProvider(name string) *Provider {
	logger := slog.New(slog.NewTextHandler(os.Stdout, nil)).With("provider", name+"Provider")
	p := &Provider{Name: name, logger: logger}
	for _, part := range strings.Split(os.Getenv("DELAY_BUCKETS"), ",") {
		if ms, err := strconv.Atoi(part); err == nil {
			p.delayBuckets = append(p.delayBuckets, max(ms, 0))
		}
	}
	p.errorFraction = percentFromEnv("ERROR_FRACTION")
	p.latchFraction = percentFromEnv("LATCH_FRACTION")
	if rate, err := strconv.ParseFloat(os.Getenv("MAX_RATE"), 64); err == nil {
		p.maxRate = rate
	}
	if p.maxRate >= 0.1 {
		p.rate = newRateCounter(10)
	}
	p.UserHeaderName = envOr("USER_HEADER_NAME", "X-Faces-User")
	p.HostIP = envOr("HOST_IP", envOr("HOSTNAME", "unknown"))
	host, _ := os.Hostname()
	p.Infof("booted on %s (%s)", host, p.HostIP)
	p.Infof("userHeaderName %s", p.UserHeaderName)
	p.Infof("debug_enabled %v", debugEnabled())
	p.Infof("delay_buckets %v", p.delayBuckets)
	p.Infof("error_fraction %d", p.errorFraction)
	p.Infof("latch_fraction %d", p.latchFraction)
	p.Infof("max_rate %f", p.maxRate)
	p.metrics = newMetrics(host)
	return p
}

func debugEnabled() bool {
	enabled, err := strconv.ParseBool(os.Getenv("DEBUG_ENABLED"))
	return err == nil && enabled
}

func envOr(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}

// percentFromEnv reads an integer percentage: malformed is 0, and the value
// is clamped to 0..100.
func percentFromEnv(name string) int {
	value, err := strconv.Atoi(os.Getenv(name))
	if err != nil {
		return 0
	}
	return min(max(value, 0), 100)
}

// Infof logs one line prefixed with the provider's name, as upstream does.
func (p *Provider) Infof(format string, args ...any) {
	p.logger.Info(p.Name + ": " + fmt.Sprintf(format, args...))
}

// Warnf logs one warning line prefixed with the provider's name.
func (p *Provider) Warnf(format string, args ...any) {
	p.logger.Warn(p.Name + ": " + fmt.Sprintf(format, args...))
}

// verdict decides, before any work, whether this request fails: rate limit
// first (429), then a latched error state (599), then the error fraction
// (500, latching with LATCH_FRACTION). An empty message means "use the
// provider's own".
func (p *Provider) verdict(now time.Time) (status int, message string) {
	p.lock.Lock()
	defer p.lock.Unlock()
	if p.latched && now.Sub(p.lastRequest) > 30*time.Second {
		p.latched = false
	}
	if p.rate != nil {
		p.rate.mark(now)
		if rate := p.rate.current(); rate >= p.maxRate {
			return http.StatusTooManyRequests,
				fmt.Sprintf("Rate limited (%.1f RPS > max %.1f RPS)", rate, p.maxRate)
		}
	}
	if p.latched {
		return 599, "Latched into error state"
	}
	// rand.IntN(100) <= f fails (f+1)% of requests, exactly as upstream.
	if p.errorFraction > 0 && rand.IntN(100) <= p.errorFraction {
		if p.latchFraction > 0 && rand.IntN(100) <= p.latchFraction {
			p.latched = true
			return 599, "Latched into error state"
		}
		return http.StatusInternalServerError, ""
	}
	return http.StatusOK, ""
}

// Handle runs one request: the verdict, the configured delay, then answer
// unless the verdict failed it; it records the request's metrics.
func (p *Provider) Handle(req Request, answer func(Request) Response) Response {
	start := time.Now()
	status, message := p.verdict(start)
	if len(p.delayBuckets) > 0 {
		time.Sleep(time.Duration(p.delayBuckets[rand.IntN(len(p.delayBuckets))]) * time.Millisecond)
	}
	var resp Response
	switch {
	case status == http.StatusOK:
		resp = answer(req)
	case message == "":
		resp = Response{Status: status}
		resp.AddError(fmt.Sprintf("%s error! (error fraction %d%%)", p.Name, p.errorFraction))
	default:
		resp = Response{Status: status}
		resp.AddError(message)
	}
	end := time.Now()
	p.lock.Lock()
	p.lastRequest = end
	p.lock.Unlock()
	p.metrics.observe(p.Name, p.Key, resp.Status, end.Sub(start))
	return resp
}

// rateCounter counts requests in one-second buckets over a sliding window.
type rateCounter struct {
	buckets []int
	first   time.Time
}

func newRateCounter(seconds int) *rateCounter {
	return &rateCounter{buckets: make([]int, seconds)}
}

func (rc *rateCounter) slide(now time.Time) int {
	if rc.first.IsZero() {
		rc.first = now
	}
	n := len(rc.buckets)
	bucket := int(now.Sub(rc.first).Seconds())
	if bucket >= n {
		past := bucket - n + 1
		rc.first = rc.first.Add(time.Duration(past) * time.Second)
		if past >= n {
			rc.buckets = make([]int, n)
		} else {
			rc.buckets = append(rc.buckets[past:], make([]int, past)...)
		}
		bucket = int(now.Sub(rc.first).Seconds())
	}
	return bucket
}

func (rc *rateCounter) mark(now time.Time) { rc.buckets[rc.slide(now)]++ }

func (rc *rateCounter) current() float64 {
	rc.slide(time.Now())
	sum := 0
	for _, count := range rc.buckets {
		sum += count
	}
	return float64(sum) / float64(len(rc.buckets))
}
