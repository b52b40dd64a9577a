#!/usr/bin/env bash
# Install the Debian packages SurgPlan needs, only when some are missing.
#   scripts/ensure-debian-packages.sh run    – libraries the desktop window needs
#   scripts/ensure-debian-packages.sh test   – those plus Xvfb, PDF and DICOM tools for the tests
# Where apt is not available or we are not root, print the exact command to run
# and exit 1, instead of failing later with an obscure "cannot load xcb" error.
set -euo pipefail

# Qt's xcb platform plugin and VTK's OpenGL need these at run time.
RUN_PKGS=(libgl1 libegl1 libglx-mesa0 libgl1-mesa-dri libosmesa6 libfontconfig1 libdbus-1-3
          libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0
          libxcb-render-util0 libxcb-xinerama0 libxcb-randr0 libxcb-shape0 libxcb-xkb1
          libxrender1 libxi6)
# The tests drive the window under a virtual X server, render PDFs to PNG
# (poppler) and validate DICOM objects (dicom3tools' dciodvfy).
TEST_PKGS=(xvfb xauth poppler-utils dicom3tools)

case "${1:-test}" in
  run)  want=("${RUN_PKGS[@]}") ;;
  test) want=("${RUN_PKGS[@]}" "${TEST_PKGS[@]}") ;;
  *) echo "usage: $0 run|test" >&2; exit 2 ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "surgplan: this is not a Debian-based system; install the equivalents of: ${want[*]}" >&2
  exit 0
fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "surgplan: missing Debian packages: ${missing[*]}" >&2
  echo "surgplan: run this as root, then try again:" >&2
  echo "    apt-get update && $cmd" >&2
  exit 1
fi

echo "surgplan: installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Update the package lists only when an install from the current lists fails
# (a fresh machine has none; a kept one usually does).
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
