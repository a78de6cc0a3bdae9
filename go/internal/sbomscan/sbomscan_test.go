package sbomscan

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestTargetsFollowTheProtocol(t *testing.T) {
	extras := t.TempDir()
	for _, name := range []string{"sbom-stage2", "sbom-context"} {
		if err := os.Mkdir(filepath.Join(extras, name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"BUILDKIT_SCAN_SOURCE": "/run/src/core/sbom", "BUILDKIT_SCAN_SOURCE_EXTRAS": extras}
	targets, err := Targets(func(key string) string { return env[key] })
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, target := range targets {
		names = append(names, target.Name)
	}
	if len(names) != 3 || names[0] != "sbom" || names[1] != "sbom-context" || names[2] != "sbom-stage2" {
		t.Fatalf("targets %v: want the core scan first, then the extras by name", names)
	}
	env["BUILDKIT_SCAN_SOURCE_EXTRAS"] = filepath.Join(extras, "missing")
	if targets, _ := Targets(func(key string) string { return env[key] }); len(targets) != 1 {
		t.Fatalf("a missing extras folder must add no target, got %v", targets)
	}
	if _, err := Targets(func(string) string { return "" }); err == nil {
		t.Fatal("no BUILDKIT_SCAN_SOURCE must be an error")
	}
}

func TestStatementCarriesTheDocumentAsSPDX(t *testing.T) {
	out, err := Statement(json.RawMessage(`{"spdxVersion":"SPDX-2.3"}`))
	if err != nil {
		t.Fatal(err)
	}
	var statement struct {
		Type          string         `json:"_type"`
		PredicateType string         `json:"predicateType"`
		Predicate     map[string]any `json:"predicate"`
	}
	if err := json.Unmarshal(out, &statement); err != nil {
		t.Fatal(err)
	}
	if statement.PredicateType != spdxPredicate || statement.Predicate["spdxVersion"] != "SPDX-2.3" {
		t.Fatalf("statement %s does not carry the SPDX document", out)
	}
}
