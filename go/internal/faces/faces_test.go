package faces

import (
	"testing"
	"time"
)

func TestParseBuckets(t *testing.T) {
	got, err := parseBuckets("0, 50,100")
	if err != nil || len(got) != 3 || got[1] != 50*time.Millisecond {
		t.Fatalf("got %v %v", got, err)
	}
	if empty, err := parseBuckets(""); err != nil || len(empty) != 0 {
		t.Fatalf("empty: %v %v", empty, err)
	}
	if _, err := parseBuckets("5,x"); err == nil {
		t.Fatal("want an error for x")
	}
}

func TestParsePercent(t *testing.T) {
	if v, err := parsePercent("12.5"); err != nil || v != 12.5 {
		t.Fatalf("got %v %v", v, err)
	}
	for _, bad := range []string{"-1", "101", "lots"} {
		if _, err := parsePercent(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestLookup(t *testing.T) {
	table := map[string]string{"Grinning": "g"}
	if Lookup(table, "grinning") != "g" || Lookup(table, "#123456") != "#123456" {
		t.Fatal("lookup")
	}
}
