#!/usr/bin/env bash
# Build the auditagent .rpm from the .deb's tree (same venv, same files), with rpmbuild.
#
#   packaging/linux/build-rpm.sh DEB [OUTDIR]      → OUTDIR/auditagent-<version>-1.<arch>.rpm
#
# The .deb must have been built against the same python3.X the RPM targets (for example
# on a machine with python3.11 for RHEL 9's python3.11). Needs: rpmbuild (Debian: apt
# install rpm), dpkg-deb.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
DEB="$(cd "$(dirname "${1:?usage: build-rpm.sh DEB [OUTDIR]}")" && pwd)/$(basename "$1")"
OUTDIR="$(mkdir -p "${2:-$REPO/dist}" && cd "${2:-$REPO/dist}" && pwd)"
command -v rpmbuild >/dev/null || { echo "build-rpm: rpmbuild not found (apt install rpm)" >&2; exit 2; }

VERSION="$(dpkg-deb -f "$DEB" Version)"
PYVER="$(dpkg-deb -f "$DEB" Depends | sed -n 's/.*python\(3\.[0-9]*\).*/\1/p')"
case "$(dpkg-deb -f "$DEB" Architecture)" in amd64) ARCH=x86_64 ;; arm64) ARCH=aarch64 ;; *) ARCH="$(uname -m)" ;; esac

WORK="$(mktemp -d "${TMPDIR:-/tmp}/auditagent-rpm.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
TREE="$WORK/tree"
dpkg-deb -x "$DEB" "$TREE"
# RPM distributions keep units in /usr/lib/systemd/system.
mkdir -p "$TREE/usr/lib/systemd/system"
mv "$TREE"/lib/systemd/system/* "$TREE/usr/lib/systemd/system/"
rm -rf "$TREE/lib"

rpmbuild -bb --quiet \
    --define "_topdir $WORK/rpmbuild" --define "_rpmdir $OUTDIR" \
    --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
    --define "_unitdir /usr/lib/systemd/system" \
    --define "version $VERSION" --define "pyver $PYVER" --define "arch $ARCH" --define "tree $TREE" \
    --target "$ARCH" "$HERE/auditagent.spec" >/dev/null
echo "$OUTDIR/auditagent-$VERSION-1.$ARCH.rpm"
