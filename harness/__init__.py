"""What the tests and the benchmarks share: the test equipment's whereabouts, the Faces
calls, the registration's and the rotation's set-ups, steady load. Both import it; it
imports neither, so that bench/ and tests/ never import each other."""
