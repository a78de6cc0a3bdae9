package faces

import (
	"bytes"
	"net/http"
	"testing"
	"time"
)

func TestEnvironmentIsClampedOrIgnoredNeverFatal(t *testing.T) {
	t.Setenv("DELAY_BUCKETS", "x,-5, 20,7")
	t.Setenv("ERROR_FRACTION", "250")
	t.Setenv("LATCH_FRACTION", "lots")
	t.Setenv("MAX_RATE", "fast")
	p := NewProvider("Test")
	if got := p.delayBuckets; len(got) != 2 || got[0] != 0 || got[1] != 7 {
		t.Errorf("delay buckets %v, want [0 7] (' 20' is not an integer upstream either)", got)
	}
	if p.errorFraction != 100 || p.latchFraction != 0 || p.rate != nil {
		t.Errorf("error %d latch %d rate %v", p.errorFraction, p.latchFraction, p.rate)
	}
}

func TestRateLimitCountsRefusedRequestsToo(t *testing.T) {
	t.Setenv("MAX_RATE", "0.3")
	p := NewProvider("Test")
	now := time.Now()
	var got []int
	for range 4 {
		status, _ := p.verdict(now)
		got = append(got, status)
	}
	want := []int{200, 200, http.StatusTooManyRequests, http.StatusTooManyRequests}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("statuses %v, want %v", got, want)
		}
	}
}

func TestLatchClearsAfterThirtyQuietSeconds(t *testing.T) {
	t.Setenv("ERROR_FRACTION", "100")
	t.Setenv("LATCH_FRACTION", "100")
	p := NewProvider("Test")
	now := time.Now()
	if status, message := p.verdict(now); status != 599 || message != "Latched into error state" {
		t.Fatalf("first: %d %q", status, message)
	}
	p.lastRequest = now
	p.errorFraction = 0
	if status, _ := p.verdict(now.Add(10 * time.Second)); status != 599 {
		t.Fatalf("still latched after 10 s: got %d", status)
	}
	if status, _ := p.verdict(now.Add(31 * time.Second)); status != 200 {
		t.Fatalf("not unlatched after 31 quiet seconds: got %d", status)
	}
}

func TestColorMessagesRoundTripWithNegativeValues(t *testing.T) {
	req := &ColorRequest{Row: -1, Column: 7}
	raw, _ := req.Marshal()
	var back ColorRequest
	if err := back.Unmarshal(raw); err != nil || back != *req {
		t.Fatalf("request %+v -> %x -> %+v (%v)", req, raw, back, err)
	}
	resp := &ColorResponse{Color: "#66CCEE", Errors: []string{"a", "b"}}
	raw, _ = resp.Marshal()
	if !bytes.HasPrefix(raw, []byte{0x0a, 7}) {
		t.Fatalf("field 1 should come first, length-delimited: %x", raw)
	}
	var got ColorResponse
	if err := got.Unmarshal(raw); err != nil || got.Color != resp.Color || len(got.Errors) != 2 {
		t.Fatalf("response %+v (%v)", got, err)
	}
}

func TestLookupsFollowUpstream(t *testing.T) {
	cases := map[string]string{"blue": "#66CCEE", "Blue": "#CCBB44", "#010203": "#010203", "": "#CCBB44"}
	for name, want := range cases {
		if got := ColorNamed(name); got != want {
			t.Errorf("color %q: %s, want %s", name, got, want)
		}
	}
	if entity, used := SmileyNamed("grinning"); used != "Vomiting" || entity != "&#x1F92E;" {
		t.Errorf("smiley names are case-sensitive: %s %s", entity, used)
	}
	if withDefaultPort("color") != "color:80" || withDefaultPort("::1") != "[::1]:80" ||
		withDefaultPort("color:8000") != "color:8000" {
		t.Error("COLOR_SERVICE port default")
	}
}
