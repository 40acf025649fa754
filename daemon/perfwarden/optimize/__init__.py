"""Optimize: the closed loop from a fired alert to a kept or reverted knob change.

Dispatch of violations, the plugin loader and runtime, the choice policy, the
experiment cycle and its verdict statistics, learning, and the knob store. May import
``alerts``, ``series``, ``config``, ``logs``, ``plugin_api`` and the root utilities;
never ``ingest``, ``views``, ``commands``, ``control`` or ``app``.
"""
