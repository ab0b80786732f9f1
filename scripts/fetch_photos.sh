#!/usr/bin/env bash
# Fetch the package files the real photos come from into the cache (no install): Debian's darknet package
# (photos in usr/share/darknet/data) and PyPI's scikit-image wheel (photos in skimage/data). Never fatal: a
# photo whose package cannot be had here is skipped, with a note, by the demo, the bench and the tests.
# Usage: scripts/fetch_photos.sh CACHE_DIR PYTHON
set -u
cache=${1:?cache folder}
python=${2:-python3}
mkdir -p "$cache" || exit 0

if [ ! -f "$cache/darknet/usr/share/darknet/data/dog.jpg" ]; then
  tmp=$(mktemp -d)
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
  if command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then
    ( cd "$tmp" && { apt-get download -q darknet || { $sudo apt-get update -q && apt-get download -q darknet; }; } ) \
      >"$tmp/log" 2>&1
    deb=$(ls "$tmp"/darknet_*.deb 2>/dev/null | head -n 1)
    if [ -n "$deb" ] && dpkg-deb -x "$deb" "$tmp/x" && mkdir -p "$cache/darknet" \
        && cp -r "$tmp/x/usr" "$cache/darknet/"; then
      echo "photos: darknet's photos in $cache/darknet"
    else
      echo "photos: note: could not fetch Debian's darknet package (see $tmp/log); its photos are skipped"
    fi
  else
    echo "photos: note: no apt-get/dpkg-deb here; darknet's photos are skipped"
  fi
fi

if ! ls "$cache"/wheels/scikit_image-*.whl >/dev/null 2>&1; then
  if "$python" -m pip download -q --no-deps --only-binary=:all: -d "$cache/wheels" scikit-image==0.26.0 \
      >/dev/null 2>&1; then
    echo "photos: scikit-image's wheel in $cache/wheels"
  else
    echo "photos: note: could not fetch scikit-image's wheel; its photos are skipped"
  fi
fi
exit 0
