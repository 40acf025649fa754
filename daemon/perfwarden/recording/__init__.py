"""Recording: the accepted samples, appended to rotating compressed segment files.

The daemon writes what it accepted (raw series key, values, arrival or ``|T`` time)
so that ``perfwarden backtest`` can replay history through the daemon's own
judgement. :mod:`.segments` is the file format, :mod:`.recorder` the writer (off
the event loop, bounded), :mod:`.reader` the reader the replay uses.

May import ``ingest`` (the parsed batch), ``config``, ``logs`` and the root
utilities; never ``series``, ``alerts``, ``optimize``, ``views``, ``commands``,
``control`` or ``app``.
"""
