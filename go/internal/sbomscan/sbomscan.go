// Package sbomscan speaks BuildKit's SBOM scanning protocol with syft: the
// filesystems named by BUILDKIT_SCAN_SOURCE (and those under
// BUILDKIT_SCAN_SOURCE_EXTRAS) are scanned one by one, and each SPDX document
// is written to BUILDKIT_SCAN_DESTINATION as an in-toto statement, the
// "bundle" form BuildKit attaches to the image.
package sbomscan

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
)

const (
	statementType = "https://in-toto.io/Statement/v0.1"
	spdxPredicate = "https://spdx.dev/Document"
)

// Target is one filesystem to scan: its name (the last part of its path,
// which names the scan) and where it is mounted.
type Target struct {
	Name string
	Path string
}

// Targets lists the main filesystem and the extras, as the protocol defines
// them; an unset, empty or missing extras folder adds none.
func Targets(getenv func(string) string) ([]Target, error) {
	source := getenv("BUILDKIT_SCAN_SOURCE")
	if source == "" {
		return nil, fmt.Errorf("BUILDKIT_SCAN_SOURCE is not set: run this as BuildKit's SBOM generator")
	}
	targets := []Target{{Name: filepath.Base(source), Path: source}}
	extras := getenv("BUILDKIT_SCAN_SOURCE_EXTRAS")
	if extras == "" {
		return targets, nil
	}
	entries, err := os.ReadDir(extras)
	if err != nil {
		return targets, nil
	}
	names := make([]string, 0, len(entries))
	for _, entry := range entries {
		if entry.IsDir() {
			names = append(names, entry.Name())
		}
	}
	sort.Strings(names)
	for _, name := range names {
		targets = append(targets, Target{Name: name, Path: filepath.Join(extras, name)})
	}
	return targets, nil
}

// Statement wraps one SPDX document for BuildKit; BuildKit fills the subject.
func Statement(document json.RawMessage) ([]byte, error) {
	return json.Marshal(map[string]any{
		"_type":         statementType,
		"predicateType": spdxPredicate,
		"subject":       []any{},
		"predicate":     document,
	})
}

// Run scans every target with the syft at `syft` and writes the statements.
func Run(getenv func(string) string, syft string) error {
	destination := getenv("BUILDKIT_SCAN_DESTINATION")
	if destination == "" {
		return fmt.Errorf("BUILDKIT_SCAN_DESTINATION is not set: run this as BuildKit's SBOM generator")
	}
	targets, err := Targets(getenv)
	if err != nil {
		return err
	}
	for _, target := range targets {
		if err := scan(syft, target, destination); err != nil {
			return err
		}
	}
	return nil
}

func scan(syft string, target Target, destination string) error {
	raw := filepath.Join(os.TempDir(), target.Name+".syft.json")
	command := exec.Command(syft, "scan", "dir:"+target.Path, "--source-name", target.Name,
		"--output", "spdx-json="+raw, "--quiet")
	command.Env = append(os.Environ(), "SYFT_CHECK_FOR_APP_UPDATE=false")
	command.Stderr = os.Stderr
	if err := command.Run(); err != nil {
		return fmt.Errorf("syft on %s: %w", target.Path, err)
	}
	document, err := os.ReadFile(raw)
	if err != nil {
		return err
	}
	if !json.Valid(document) {
		return fmt.Errorf("syft wrote no JSON document for %s", target.Path)
	}
	statement, err := Statement(document)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(destination, target.Name+".spdx.json"), statement, 0o644)
}
