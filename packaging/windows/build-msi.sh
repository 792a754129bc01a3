#!/usr/bin/env bash
# Build auditagent-<version>-x64.msi with msitools' wixl (Linux; apt install wixl msitools).
#
#   packaging/windows/build-msi.sh PYTHON_DIR [OUTDIR]
#
# PYTHON_DIR is the Windows payload that build.ps1 makes on a Windows machine: the
# embeddable CPython (python.exe, pythonw.exe, python3XX.zip, python3XX._pth …) with the
# agent and its wheels in Lib\site-packages. The helper files (auditagent_setup.py,
# agent.yaml.sample, auditagent-task.xml, auditagent.cmd) come from this repository.
#
# wixl builds WiX 3 sources but ignores Property/@Secure, Property/@Hidden and
# CustomAction/@HideTarget; this script applies them to the MSI afterwards with msibuild
# (SecureCustomProperties += SERVER;TOKEN;SHORTCUTLANG, HideTarget bit on StashToken) and
# checks the result, so the enrolment token never reaches msiexec's log.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PYDIR="$(cd "${1:?usage: build-msi.sh PYTHON_DIR [OUTDIR]}" && pwd)"
OUTDIR="$(mkdir -p "${2:-$REPO/dist}" && cd "${2:-$REPO/dist}" && pwd)"
for tool in wixl wixl-heat msibuild msiinfo; do
    command -v "$tool" >/dev/null || { echo "build-msi: $tool not found (apt install wixl msitools)" >&2; exit 2; }
done
[ -f "$PYDIR/python.exe" ] && [ -f "$PYDIR/pythonw.exe" ] || { echo "build-msi: $PYDIR has no python.exe/pythonw.exe" >&2; exit 2; }

VERSION="$(python3 - "$REPO/pyproject.toml" <<'PY'
import re, sys, tomllib
v = tomllib.load(open(sys.argv[1], "rb"))["project"]["version"]
print(".".join(re.findall(r"\d+", v)[:3]))  # MSI ProductVersion: numbers only
PY
)"
MSI="$OUTDIR/auditagent-$VERSION-x64.msi"

STAGE="$(mktemp -d "${TMPDIR:-/tmp}/auditagent-msi.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT
cp -r "$PYDIR" "$STAGE/python"
find "$STAGE/python" -name __pycache__ -type d -prune -exec rm -rf {} +
cp "$REPO/packaging/common/auditagent_setup.py" "$STAGE/"
cp "$REPO/packaging/common/agent.yaml" "$STAGE/agent.yaml.sample"
cp "$HERE/auditagent-task.xml" "$HERE/auditagent.cmd" "$STAGE/"

# Every payload file but the two executables (declared in auditagent.wxs, custom actions use them).
(cd "$STAGE" && find python -type f ! -path python/python.exe ! -path python/pythonw.exe | LC_ALL=C sort) \
    | wixl-heat -p python/ --directory-ref PYTHONDIR --component-group Payload --var var.PythonDir --win64 \
    > "$STAGE/payload.wxs"

cp "$HERE/auditagent.wxs" "$STAGE/"
# wixl resolves File/@Source relative to the current folder only.
(cd "$STAGE" && wixl -a x64 -D Version="$VERSION" -D PayloadDir=. -D PythonDir=python -D Win64=yes \
    -o "$MSI" auditagent.wxs payload.wxs 2> >(grep -v -e "has no property named '\(Secure\|Hidden\|HideTarget\)'" -e '^$' >&2))

# --- what wixl leaves out
row() { msiinfo export "$MSI" "$1" | awk -F'\t' -v k="$2" '$1 == k { print $'"$3"' }' | tr -d '\r'; }
secure="$(row Property SecureCustomProperties 2)"
msibuild "$MSI" -q "UPDATE \`Property\` SET \`Value\` = '${secure:+$secure;}SERVER;TOKEN;SHORTCUTLANG' WHERE \`Property\` = 'SecureCustomProperties'"
[ -n "$secure" ] || msibuild "$MSI" -q "INSERT INTO \`Property\` (\`Property\`, \`Value\`) VALUES ('SecureCustomProperties', 'SERVER;TOKEN;SHORTCUTLANG')"
# Start-menu shortcut in the system's language (Swedish: sv-SE 1053, sv-FI 2077; Danish: 1030),
# or SHORTCUTLANG=sv|da|en; see auditagent.wxs.
SV='(SystemLanguageID=1053 OR SystemLanguageID=2077)'
DA='SystemLanguageID=1030'
cond() { msibuild "$MSI" -q "UPDATE \`Component\` SET \`Condition\` = '$2' WHERE \`Component\` = '$1'"; }
cond ShortcutSv "SHORTCUTLANG=\"sv\" OR (NOT SHORTCUTLANG AND $SV)"
cond ShortcutDa "SHORTCUTLANG=\"da\" OR (NOT SHORTCUTLANG AND $DA)"
cond ShortcutEn "SHORTCUTLANG=\"en\" OR (NOT SHORTCUTLANG AND NOT $SV AND NOT $DA)"
type="$(row CustomAction StashToken 2)"
msibuild "$MSI" -q "UPDATE \`CustomAction\` SET \`Type\` = $(( type | 8192 )) WHERE \`Action\` = 'StashToken'"

# --- check
[ "$(row Property MsiHiddenProperties 2)" = TOKEN ] || { echo "build-msi: MsiHiddenProperties missing" >&2; exit 1; }
row Property SecureCustomProperties 2 | grep -q 'TOKEN' || { echo "build-msi: TOKEN not secure" >&2; exit 1; }
(( $(row CustomAction StashToken 2) & 8192 )) || { echo "build-msi: StashToken does not hide its target" >&2; exit 1; }
echo "$MSI"
