@echo off
rem auditagent command line for IT: "%ProgramFiles%\auditagent\auditagent.cmd" status
"%~dp0python\python.exe" -I -m auditagent.cli %*
