"""Proof that an image meets the mesh contract: the checks of `check IMAGE` (static and
live), the probes in each port's protocol over gRPC's wire format, `doctor`, and the k3d
end-to-end walk-through.

It may import builder.oci, builder.cluster and everything below them.
"""
