"""Views: read-only windows on the daemon for people and scrapers.

The Prometheus/OpenMetrics exposition, the HTTP server and web page, and the
rendering of ``perfwarden top``. They read the daemon through
:class:`perfwarden.readmodel.DaemonView`, never ``app``; they may import ``series``,
``alerts``, ``optimize`` (for types), ``config``, ``logs`` and the root utilities.
"""
