"""The ``advisor`` command: arguments in, tables, JSON and plots out (``main`` is the entry).

``main`` parses the command line (its value types are ``advisor_core.data.argtypes``, shared
with the exporters' flags), ``commands`` builds each subcommand's JSON-ready answer, ``tables``
and ``plotting`` render it. The top layer: it may import every other package of advisor_core;
no library package and no exporter imports it.
"""
