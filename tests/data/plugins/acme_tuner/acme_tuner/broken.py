"""A plugin module that fails to import."""

raise ImportError("acme_tuner.broken needs a library that is not installed")
