#!/usr/bin/env bash
# Build the auditagent .deb: a self-contained agent under /opt/auditagent with its own
# Python venv (the target's system python3.X, wheels from PyPI at build time, nothing
# downloaded at install time), /etc/auditagent/agent.yaml (conffile), a systemd service
# and timer, a desktop entry for the staff self-check and /usr/bin/auditagent.
#
#   packaging/linux/build-deb.sh [OUTDIR]        → OUTDIR/auditagent_<version>_<arch>.deb
#
# Environment:
#   PYTHON        interpreter the venv is made from (default /usr/bin/python3 — must be the
#                 Debian/Ubuntu release's own python3, as the package depends on it)
#   PIP_CONSTRAINT, PIP_INDEX_URL …  passed to pip as usual (pin the agent's dependencies)
#   KEEP_STAGE=1  keep the staging tree (printed) for inspection
#
# The venv is built in a staging tree and relocated to /opt/auditagent: script shebangs
# and pyvenv.cfg are rewritten, bytecode is compiled with the final paths and
# "unchecked-hash" validation (so Python never rewrites it under /opt), and the build
# fails if any staging path is left in the tree. Needs: python3-venv, dpkg-deb, PyPI
# (or a local index / pip cache) at build time.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
OUTDIR="$(mkdir -p "${1:-$REPO/dist}" && cd "${1:-$REPO/dist}" && pwd)"
PYTHON="${PYTHON:-/usr/bin/python3}"
PREFIX=/opt/auditagent

VERSION="$("$PYTHON" - "$REPO/pyproject.toml" <<'PY'
import sys, tomllib
print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])
PY
)"
PYVER="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
PYBIN="/usr/bin/python$PYVER"
[ -x "$PYBIN" ] || { echo "build-deb: $PYBIN not found (PYTHON=$PYTHON must be a system python)" >&2; exit 2; }
ARCH="$(dpkg --print-architecture)"
DEB="$OUTDIR/auditagent_${VERSION}_${ARCH}.deb"

BUILD="$(mktemp -d "${TMPDIR:-/tmp}/auditagent-deb.XXXXXX")"
cleanup() { if [ "${KEEP_STAGE:-0}" = 1 ]; then echo "staging tree kept: $BUILD" >&2; else rm -rf "$BUILD"; fi; }
trap cleanup EXIT
ROOT="$BUILD/root"
STAGE_PREFIX="$ROOT$PREFIX"

echo "build-deb: auditagent $VERSION for $ARCH with python$PYVER"

# 1. The agent wheel, then a venv in the staging tree with the wheel and its dependencies.
#    Built from a copy of the sources, so the checkout gets no build/ or *.egg-info.
mkdir -p "$BUILD/src"
tar -C "$REPO" --exclude=./.git --exclude=./.venv --exclude=./dist --exclude=./build --exclude=./tests \
    --exclude=./bench --exclude='*.egg-info' --exclude=__pycache__ --exclude='.*_cache' -cf - . | tar -C "$BUILD/src" -xf -
"$PYBIN" -m venv "$STAGE_PREFIX"
"$STAGE_PREFIX/bin/pip" wheel -q --disable-pip-version-check --no-deps -w "$BUILD/wheels" "$BUILD/src" >/dev/null
"$STAGE_PREFIX/bin/pip" install -q --disable-pip-version-check --no-compile --only-binary=:all: \
    "$BUILD"/wheels/auditagent-*.whl
"$STAGE_PREFIX/bin/pip" uninstall -q -y pip setuptools >/dev/null 2>&1 || true

# 2. Agent only: the collector ships separately (packaging/collector/).
SITE="$STAGE_PREFIX/lib/python$PYVER/site-packages"
rm -rf "$SITE/server"
find "$STAGE_PREFIX/bin" -mindepth 1 ! -name auditagent ! -name 'python*' -exec rm -f {} +
find "$SITE" -name direct_url.json -delete
find "$STAGE_PREFIX" -name __pycache__ -type d -prune -exec rm -rf {} +

# 3. Relocate: shebangs (isolated mode: no PYTHONPATH, no user site for a root tool), pyvenv.cfg.
for f in "$STAGE_PREFIX"/bin/*; do
    if [ -f "$f" ] && [ ! -L "$f" ] && head -c2 "$f" | grep -q '#!'; then
        sed -i "1s|^#!.*python[0-9.]*\$|#!$PREFIX/bin/python$PYVER -I|" "$f"
    fi
done
sed -i "s|$ROOT||g" "$STAGE_PREFIX/pyvenv.cfg"
install -d "$STAGE_PREFIX/libexec"
install -m 0644 "$REPO/packaging/common/auditagent_setup.py" "$STAGE_PREFIX/libexec/"

# 4. Bytecode with the final paths; never rewritten at run time.
"$PYBIN" -m compileall -q -j0 --invalidation-mode unchecked-hash -s "$ROOT" -p / \
    "$STAGE_PREFIX/lib" "$STAGE_PREFIX/libexec" >/dev/null
if grep -rlI --exclude='*.pyc' -- "$ROOT" "$STAGE_PREFIX" | grep . ; then
    echo "build-deb: staging path left in the files above" >&2; exit 1
fi

# 5. The rest of the file system.
install -d -m 0755 "$ROOT/usr/bin" "$ROOT/etc/auditagent" "$ROOT/lib/systemd/system" \
    "$ROOT/usr/share/applications" "$ROOT/usr/share/doc/auditagent"
install -d -m 0700 "$ROOT/var/lib/auditagent"
ln -s "$PREFIX/bin/auditagent" "$ROOT/usr/bin/auditagent"
install -m 0644 "$REPO/packaging/common/agent.yaml" "$ROOT/etc/auditagent/agent.yaml"
install -m 0644 "$HERE/auditagent.service" "$HERE/auditagent.timer" "$ROOT/lib/systemd/system/"
install -m 0644 "$HERE/auditagent-check.desktop" "$ROOT/usr/share/applications/"
install -m 0644 "$REPO/docs/deploying.md" "$ROOT/usr/share/doc/auditagent/README.deploying"
cat > "$ROOT/usr/share/doc/auditagent/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: auditagent
License: Apache-2.0
Comment: /opt/auditagent bundles the agent's Python dependencies (psutil, cryptography,
 PyYAML and theirs) under their own licences, listed in
 /opt/auditagent/lib/python$PYVER/site-packages/*.dist-info.
EOF

# 6. Control files.
install -d -m 0755 "$ROOT/DEBIAN"
install -m 0755 "$HERE/debian/postinst" "$HERE/debian/prerm" "$HERE/debian/postrm" "$ROOT/DEBIAN/"
echo /etc/auditagent/agent.yaml > "$ROOT/DEBIAN/conffiles"
SIZE="$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)"
cat > "$ROOT/DEBIAN/control" <<EOF
Package: auditagent
Version: $VERSION
Architecture: $ARCH
Maintainer: auditagent maintainers <auditagent@localhost>
Installed-Size: $SIZE
Depends: python$PYVER, init-system-helpers (>= 1.54)
Recommends: util-linux, e2fsprogs, cryptsetup-bin, dmsetup, nftables | iptables
Suggests: fscrypt, xdg-utils
Section: admin
Priority: optional
Homepage: https://github.com/auditagent/auditagent
Description: remote-work readiness audit agent
 Checks that a laptop is fit to carry confidential case files home (disk
 encryption, OS patches, approved cloud storage, firewall, screen lock,
 supported OS), tells staff in Swedish, Danish or English what to fix, and
 sends signed readiness reports to the organisation's collector every hour
 (auditagent.timer).
EOF

dpkg-deb --root-owner-group -Zxz -z6 --build "$ROOT" "$DEB" >/dev/null
echo "$DEB"
