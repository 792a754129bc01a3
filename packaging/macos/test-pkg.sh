#!/usr/bin/env bash
# macOS CI: install the pkg the way an MDM does (configuration profile first, then the
# package) against a real collector on 127.0.0.1, and check that the LaunchDaemon enrols
# and reports, then uninstall. Needs sudo; run from the repository with the collector's
# dependencies installed (pip install '.[server]').
set -euo pipefail
PKG="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
WORK="$(mktemp -d)"
DB="sqlite:///$WORK/collector.db"
python3 -m server.cli unit add "CI/macOS" --db "$DB" >/dev/null
TOKEN="$(python3 -m server.cli token create --unit "CI/macOS" --db "$DB" | tail -n1)"
python3 -m server.cli serve --db "$DB" --host 127.0.0.1 --port 8766 >"$WORK/collector.log" 2>&1 &
COLLECTOR=$!
trap 'kill $COLLECTOR 2>/dev/null || true' EXIT
for _ in $(seq 60); do curl -fs http://127.0.0.1:8766/healthz >/dev/null && break; sleep 1; done

# What the configuration profile would deliver (managed preferences domain).
MANAGED="/Library/Managed Preferences/org.auditagent.agent.plist"
sudo mkdir -p "/Library/Managed Preferences"
sudo plutil -create xml1 "$MANAGED"
sudo plutil -insert Server -string "http://127.0.0.1:8766" "$MANAGED"
sudo plutil -insert EnrollToken -string "$TOKEN" "$MANAGED"

sudo installer -pkg "$PKG" -target / -verboseR | tee "$WORK/install.log"
if grep -qF "$TOKEN" "$WORK/install.log"; then echo "token in the installer output" >&2; exit 1; fi
DATA="/Library/Application Support/auditagent"
sudo grep -q '^server: http://127.0.0.1:8766' "$DATA/agent.yaml"
sudo launchctl print system/org.auditagent.agent | grep -E "state|run interval" || true
for _ in $(seq 90); do sudo test -f "$DATA/state/enrollment.json" && break; sleep 2; done
sudo test -f "$DATA/state/enrollment.json" || { sudo cat "$DATA/state/last-run.log" || true; exit 1; }
sudo test ! -e "$DATA/state/enroll-token"
[ "$(sudo stat -f %Lp "$DATA/state")" = 700 ]
for _ in $(seq 60); do
    python3 -m server.cli device list --unit "CI/macOS" --json --db "$DB" | grep -q '"last_report_at": "' && break
    sleep 2
done
python3 -m server.cli device list --unit "CI/macOS" --json --db "$DB" | grep -q '"last_report_at": "'
/usr/local/bin/auditagent check --lang en || [ $? -eq 1 ]
plutil -lint "/Applications/auditagent Check.app/Contents/Info.plist"

sudo /bin/sh /usr/local/auditagent/uninstall.sh --purge
sudo rm -f "$MANAGED"
test ! -e /usr/local/auditagent && test ! -e /Library/LaunchDaemons/org.auditagent.agent.plist
echo "pkg install, enrolment, LaunchDaemon report and uninstall: ok"
