// Command color answers with the color named by COLOR (default blue).
package main

import (
	"net/http"
	"os"

	"meshexp.dev/components/internal/faces"
)

var colors = map[string]string{
	"blue": "#0173b2", "orange": "#de8f05", "green": "#029e73", "red": "#d55e00",
	"purple": "#cc78bc", "grey": "#949494", "yellow": "#ece133", "white": "#ffffff",
	"black": "#000000",
}

func main() {
	name := os.Getenv("COLOR")
	if name == "" {
		name = "blue"
	}
	color := faces.Lookup(colors, name)
	faces.Serve("color", func(*http.Request) (map[string]any, error) {
		return map[string]any{"color": color}, nil
	})
}
