#!/usr/bin/env bash
# Fetch the package files the real photos come from into the cache (no install): Debian's darknet package
# (photos in usr/share/darknet/data), the few OpenCV sample photos the catalogue uses from Debian's opencv-doc
# (a 96 MB package: only those files are kept) and PyPI's scikit-image wheel (photos in skimage/data). Never fatal: a
# photo whose package cannot be had here is skipped, with a note, by the demo, the bench and the tests.
# Usage: scripts/fetch_photos.sh CACHE_DIR PYTHON
set -u
cache=${1:?cache folder}
python=${2:-python3}
mkdir -p "$cache" || exit 0

sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo -n"

# debian_photos PACKAGE SUBDIR FILE...: unpack FILEs of SUBDIR from the Debian package into $cache/PACKAGE
debian_photos() {
  local package=$1 subdir=$2; shift 2
  local missing="" f
  for f in "$@"; do [ -f "$cache/$package/$subdir/$f" ] || missing=1; done
  [ -z "$missing" ] && return 0
  if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
    echo "photos: note: no apt-get/dpkg-deb here; $package's photos are skipped"; return 0
  fi
  local tmp; tmp=$(mktemp -d)
  ( cd "$tmp" && { apt-get download -q "$package" || { $sudo apt-get update -q && apt-get download -q "$package"; }; } ) \
    >"$tmp/log" 2>&1
  local deb; deb=$(ls "$tmp/${package}"_*.deb 2>/dev/null | head -n 1)
  local ok=""
  if [ -n "$deb" ] && dpkg-deb -x "$deb" "$tmp/x" && mkdir -p "$cache/$package/$subdir"; then
    ok=1
    for f in "$@"; do cp "$tmp/x/$subdir/$f" "$cache/$package/$subdir/" || ok=""; done
  fi
  if [ -n "$ok" ]; then
    echo "photos: $package's photos in $cache/$package"; rm -rf "$tmp"
  else
    echo "photos: note: could not fetch Debian's $package package (see $tmp/log); its photos are skipped"
  fi
}

debian_photos darknet usr/share/darknet/data dog.jpg eagle.jpg giraffe.jpg horses.jpg kite.jpg person.jpg
debian_photos opencv-doc usr/share/doc/opencv-doc/examples/data butterfly.jpg fruits.jpg squirrel_cls.jpg messi5.jpg stuff.jpg basketball1.png

if ! ls "$cache"/wheels/scikit_image-*.whl >/dev/null 2>&1; then
  if "$python" -m pip download -q --no-deps --only-binary=:all: -d "$cache/wheels" scikit-image==0.26.0 \
      >/dev/null 2>&1; then
    echo "photos: scikit-image's wheel in $cache/wheels"
  else
    echo "photos: note: could not fetch scikit-image's wheel; its photos are skipped"
  fi
fi
exit 0
