"""The core every room builds on: the error hierarchy, progress reporting, the component
cache and where the shipped data lives.

It imports nothing of builder and no third-party library; every other package may import it.
"""
