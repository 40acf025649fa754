"""Control: the socket's wire format, its server, the command handlers, the CLI client.

The handlers read the daemon through :class:`perfwarden.readmodel.DaemonView` and act
through the narrow operations it offers; they never import ``app``.
"""
