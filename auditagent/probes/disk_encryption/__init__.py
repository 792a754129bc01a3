"""Volumes holding the system, home, other fixed data and swap, and whether each is encrypted.

One module per OS (``linux.py``, ``windows.py``, ``macos.py``), each with ``probe(ctx)``;
the parsers a probe uses sit beside it (``<os>_<source>.py``).
"""
