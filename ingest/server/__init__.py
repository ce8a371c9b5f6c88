"""The application shell: the one place that imports everything and runs it.

``serve`` (:mod:`.app`), the command line (:mod:`.cli`, :mod:`.admin_cli`,
:mod:`.admin_commands`), the worker processes (:mod:`.workers`, :mod:`.worker`,
:mod:`.channel`), what both kinds of process build from the configuration
(:mod:`.runtime`), the event loop, the heap and systemd (:mod:`.eventloop`, :mod:`.heap`,
:mod:`.looplag`, :mod:`.systemd`). Only this package imports :mod:`sessions`; the rest
of :mod:`ingest` (the protocol core, FLV parsing, the listener) never does.
"""
