// Command color is the Faces demo's color workload, compatible with upstream
// v2.0.0 (see internal/faces).
package main

import "meshexp.dev/components/internal/faces"

func main() { faces.Main(faces.Color) }
