"""Images leave the machine: pushing through the engine, and multi-platform images through
BuildKit (buildkitd and buildctl), with attestations and an OCI index assembled through the
registry API.

It may import builder.build and everything below it; not builder.cluster.
"""
