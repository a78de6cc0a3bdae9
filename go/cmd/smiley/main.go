// Command smiley answers with the smiley named by SMILEY (default Grinning).
package main

import (
	"net/http"
	"os"

	"meshexp.dev/components/internal/faces"
)

var smileys = map[string]string{
	"Grinning": "\U0001F600", "Sleeping": "\U0001F634", "Cursing": "\U0001F92C",
	"Kaboom": "\U0001F92F", "HeartEyes": "\U0001F60D", "Neutral": "\U0001F610",
	"RollingEyes": "\U0001F644", "Screaming": "\U0001F631", "Vomiting": "\U0001F92E",
}

func main() {
	name := os.Getenv("SMILEY")
	if name == "" {
		name = "Grinning"
	}
	smiley := faces.Lookup(smileys, name)
	faces.Serve("smiley", func(*http.Request) (map[string]any, error) {
		return map[string]any{"smiley": smiley}, nil
	})
}
