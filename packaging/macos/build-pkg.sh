#!/usr/bin/env bash
# Build auditagent-<version>-<arch>.pkg on macOS (pkgbuild/productbuild; the CI's macos job).
#
#   packaging/macos/build-pkg.sh [OUTDIR]
#
# Installs:
#   /usr/local/auditagent/python/          a relocatable CPython (python-build-standalone)
#                                          with the agent and its wheels
#   /usr/local/auditagent/bin/auditagent   command line (linked from /usr/local/bin by postinstall)
#   /usr/local/auditagent/libexec/auditagent_setup.py, share/agent.yaml.sample
#   /Library/LaunchDaemons/org.auditagent.agent.plist   hourly + at load, as root
#   /Applications/auditagent Check.app     the staff self-check ("Kontrollera min dator" in
#                                          Swedish, "Tjek min computer" in Danish Finder)
# and its postinstall writes /Library/Application Support/auditagent/agent.yaml from the
# configuration profile (see postinstall) and starts the daemon.
#
# Environment:
#   PBS_URL        python-build-standalone "install_only" tarball for this machine's arch
#                  (default: CPython $PY_VERSION from release $PBS_RELEASE)
#   SIGN_APP / SIGN_INSTALLER   Developer ID identities; when set, the app and the pkg are
#                  signed (MDM needs a signed pkg; notarise it with `xcrun notarytool`)
set -euo pipefail
[ "$(uname -s)" = Darwin ] || { echo "build-pkg: runs on macOS only (pkgbuild, productbuild)" >&2; exit 2; }

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
OUTDIR="$(mkdir -p "${1:-$REPO/dist}" && cd "${1:-$REPO/dist}" && pwd)"
ARCH="$(uname -m)"                       # arm64 or x86_64
PBS_ARCH="$([ "$ARCH" = arm64 ] && echo aarch64 || echo x86_64)"
PY_VERSION="${PY_VERSION:-3.12.7}"
PBS_RELEASE="${PBS_RELEASE:-20241016}"
PBS_URL="${PBS_URL:-https://github.com/astral-sh/python-build-standalone/releases/download/$PBS_RELEASE/cpython-$PY_VERSION+$PBS_RELEASE-$PBS_ARCH-apple-darwin-install_only.tar.gz}"
PREFIX=/usr/local/auditagent
IDENT=org.auditagent.agent

VERSION="$(python3 - "$REPO/pyproject.toml" <<'PY'
import sys, tomllib
print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])
PY
)"
BUILD="$(mktemp -d)"
trap 'rm -rf "$BUILD"' EXIT
ROOT="$BUILD/root"
mkdir -p "$ROOT$PREFIX"/{bin,libexec,share} "$ROOT/Library/LaunchDaemons" "$ROOT/Applications"

# 1. Relocatable CPython, then the agent wheel and its dependencies into it.
curl -fsSL "$PBS_URL" | tar -xz -C "$ROOT$PREFIX"          # → $PREFIX/python
PY="$ROOT$PREFIX/python/bin/python3"
"$PY" -m pip wheel -q --no-deps -w "$BUILD/wheels" "$REPO"
"$PY" -m pip install -q --no-compile --only-binary=:all: "$BUILD"/wheels/auditagent-*.whl
"$PY" -m pip uninstall -q -y pip setuptools >/dev/null 2>&1 || true
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
rm -rf "$SITE/server"
# Console scripts pip made point at the build folder: the wrapper below replaces them.
grep -lIr -- "$ROOT" "$ROOT$PREFIX/python/bin" | xargs rm -f
"$PY" -m compileall -q -j0 --invalidation-mode unchecked-hash -s "$ROOT" -p / "$SITE" >/dev/null

cat > "$ROOT$PREFIX/bin/auditagent" <<EOF
#!/bin/sh
exec $PREFIX/python/bin/python3 -I -m auditagent.cli "\$@"
EOF
chmod 755 "$ROOT$PREFIX/bin/auditagent"
install -m 0644 "$REPO/packaging/common/auditagent_setup.py" "$ROOT$PREFIX/libexec/"
install -m 0644 "$REPO/packaging/common/agent.yaml" "$ROOT$PREFIX/share/agent.yaml.sample"
install -m 0644 "$HERE/org.auditagent.agent.plist" "$ROOT/Library/LaunchDaemons/"
install -m 0755 "$HERE/uninstall.sh" "$ROOT$PREFIX/uninstall.sh"

# 2. The self-check app: a tiny bundle whose executable runs the self-check page.
APP="$ROOT/Applications/auditagent Check.app/Contents"
mkdir -p "$APP/MacOS" "$APP/Resources/en.lproj" "$APP/Resources/sv.lproj" "$APP/Resources/da.lproj"
cat > "$APP/MacOS/auditagent-check" <<EOF
#!/bin/sh
exec $PREFIX/python/bin/python3 -I -B $PREFIX/libexec/auditagent_setup.py selfcheck
EOF
chmod 755 "$APP/MacOS/auditagent-check"
cat > "$APP/Info.plist" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
  <key>CFBundleIdentifier</key><string>$IDENT.check</string>
  <key>CFBundleName</key><string>auditagent Check</string>
  <key>CFBundleDisplayName</key><string>Check my computer</string>
  <key>CFBundleExecutable</key><string>auditagent-check</string>
  <key>CFBundlePackageType</key><string>APPL</string>
  <key>CFBundleShortVersionString</key><string>$VERSION</string>
  <key>CFBundleVersion</key><string>$VERSION</string>
  <key>CFBundleDevelopmentRegion</key><string>en</string>
  <key>CFBundleLocalizations</key><array><string>en</string><string>sv</string><string>da</string></array>
  <key>LSUIElement</key><true/>
  <key>LSMinimumSystemVersion</key><string>12.0</string>
</dict></plist>
EOF
printf '"CFBundleDisplayName" = "Check my computer";\n' > "$APP/Resources/en.lproj/InfoPlist.strings"
printf '"CFBundleDisplayName" = "Kontrollera min dator";\n' > "$APP/Resources/sv.lproj/InfoPlist.strings"
printf '"CFBundleDisplayName" = "Tjek min computer";\n' > "$APP/Resources/da.lproj/InfoPlist.strings"
plutil -lint "$APP/Info.plist" "$ROOT/Library/LaunchDaemons/org.auditagent.agent.plist" >/dev/null

if [ -n "${SIGN_APP:-}" ]; then
    find "$ROOT$PREFIX/python" -type f \( -name '*.so' -o -name '*.dylib' -o -perm -111 \) \
        -exec codesign --force --options runtime --timestamp --sign "$SIGN_APP" {} + 2>/dev/null || true
    codesign --force --options runtime --timestamp --sign "$SIGN_APP" "$ROOT/Applications/auditagent Check.app"
fi

# 3. Component package (scripts: preinstall stops the old daemon, postinstall configures
#    and starts it), then the product archive MDMs want.
COMPONENT="$BUILD/auditagent-component.pkg"
pkgbuild --root "$ROOT" --scripts "$HERE/scripts" --identifier "$IDENT" --version "$VERSION" \
    --install-location / --ownership recommended "$COMPONENT"
PKG="$OUTDIR/auditagent-$VERSION-$ARCH.pkg"
productbuild --identifier "$IDENT" --version "$VERSION" --package "$COMPONENT" \
    ${SIGN_INSTALLER:+--sign "$SIGN_INSTALLER"} "$PKG"
echo "$PKG"
