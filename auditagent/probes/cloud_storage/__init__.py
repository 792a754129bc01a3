"""File-sync clients and the account/tenant/server each is tied to, on every OS.

One module per OS (``linux.py``, ``windows.py``, ``macos.py``), each with ``probe(ctx)``;
the parsers a probe uses sit beside it (``<os>_<source>.py``).
"""
