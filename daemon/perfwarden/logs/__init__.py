"""Logs: structlog set up for JSON lines, and a writer that never blocks the loop.

Imports nothing of perfwarden but the root utilities.
"""
