#!/bin/sh
# Jamf Pro script: enrol an installed auditagent. Parameters (Jamf passes $1-$3 itself):
#   $4  collector URL, e.g. https://audit.example.org
#   $5  enrolment token of the unit
# Add it to the same policy as the package, priority "After". Jamf keeps script
# parameters in its policy logs only as "Parameter 5" — but restrict who can read the
# policy, and use a token limited to the unit with an expiry.
set -eu
SERVER="${4:?parameter 4: collector URL}"
TOKEN="${5:?parameter 5: enrolment token}"
SETUP="/usr/local/auditagent/python/bin/python3 -I -B /usr/local/auditagent/libexec/auditagent_setup.py"
$SETUP configure --server "$SERVER"
printf '%s' "$TOKEN" | $SETUP stash-token
unset TOKEN
$SETUP enroll-pending
