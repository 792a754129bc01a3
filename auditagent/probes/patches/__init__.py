"""When OS updates were last installed, pending (security) updates, reboot pending.

One module per OS (``linux.py``, ``windows.py``, ``macos.py``), each with ``probe(ctx)``;
the parsers a probe uses sit beside it (``<os>_<source>.py``).
"""
