"""Config: ``perfwarden.yaml`` read into a frozen, validated model, and watched.

The model, YAML nodes that keep their lines, value checks, durations, the per-section
schemas, loading and the file watcher. May import ``logs`` and the root utilities
only.
"""
