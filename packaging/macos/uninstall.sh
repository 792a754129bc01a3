#!/bin/sh
# Remove auditagent from a Mac (run as root). --purge also removes the config, the device
# key and the enrolment (the device must then be enrolled anew).
set -u
launchctl bootout system/org.auditagent.agent 2>/dev/null || true
rm -f /Library/LaunchDaemons/org.auditagent.agent.plist /usr/local/bin/auditagent /Library/Logs/auditagent.log
rm -rf /usr/local/auditagent "/Applications/auditagent Check.app"
pkgutil --forget org.auditagent.agent >/dev/null 2>&1 || true
if [ "${1:-}" = "--purge" ]; then
	rm -rf "/Library/Application Support/auditagent"
fi
echo "auditagent removed"
