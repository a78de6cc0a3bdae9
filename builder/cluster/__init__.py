"""The mesh around an image: certificates, the Kubernetes API (kube.py is the one module
that imports lightkube), the local API server, manifests, `run` and `stop`, the status
keeper and the external SPIRE server of the production topology.

It may import builder.build and everything below it; not builder.oci.
"""
