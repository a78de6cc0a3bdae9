// Command face asks the smiley and color workloads (SMILEY_SERVICE,
// COLOR_SERVICE, host:port) and answers with both.
package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"time"

	"meshexp.dev/components/internal/faces"
)

var client = &http.Client{Timeout: 5 * time.Second}

func fetch(service, path, field string) (string, error) {
	resp, err := client.Get("http://" + service + path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", service, err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", fmt.Errorf("%s: answer is not JSON: %w", service, err)
	}
	value, ok := body[field].(string)
	if resp.StatusCode != http.StatusOK || !ok {
		return "", fmt.Errorf("%s: status %d, no %q in the answer", service, resp.StatusCode, field)
	}
	return value, nil
}

func env(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}

func main() {
	smileyService := env("SMILEY_SERVICE", "smiley:8000")
	colorService := env("COLOR_SERVICE", "color:8000")
	faces.Serve("face", func(r *http.Request) (map[string]any, error) {
		smiley, err := fetch(smileyService, r.URL.Path, "smiley")
		if err != nil {
			return nil, err
		}
		color, err := fetch(colorService, r.URL.Path, "color")
		if err != nil {
			return nil, err
		}
		return map[string]any{"smiley": smiley, "color": color}, nil
	})
}
