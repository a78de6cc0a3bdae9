"""From models to images: rendering the build context (the one module that imports
Jinja2 is templates.py), fetching and building components (the one module that runs `go`
is gobuild.py), the offline Debian base, provenance labels, and the classic image build.

It may import builder.config, builder.engine and builder.core.
"""
