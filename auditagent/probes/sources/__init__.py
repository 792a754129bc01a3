"""Structured sources several concerns read on one OS (the PowerShell snapshot, the
registry, mdmclient, Format-List text). Pure parsers plus Host-seam readers; no facts here.
"""
