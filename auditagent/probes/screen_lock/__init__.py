"""Whether the screen locks by itself, and after how many idle seconds.

One module per OS (``linux.py``, ``windows.py``, ``macos.py``), each with ``probe(ctx)``;
the parsers a probe uses sit beside it (``<os>_<source>.py``).
"""
