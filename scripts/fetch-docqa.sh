#!/bin/sh
# Fetch the real documentation that `rlmx bench generate docqa` asks questions about:
# Debian's sqlite3-doc package, unpacked with `dpkg -x` (no root needed).
#
#   sh scripts/fetch-docqa.sh DIR [SQLITE3_DOC_DEB]
#
# leaves the HTML pages in DIR/sqlite3-doc (index.html, rescode.html, c3ref/...). Without
# SQLITE3_DOC_DEB (or $RLMX_DOCQA_DEB), the package is fetched with `apt-get download
# sqlite3-doc` (run `apt-get update` first where the package lists are empty; as root this
# script does it). The Python half of docqa needs no download: it reads the standard library.
set -eu
dir=${1:?usage: sh scripts/fetch-docqa.sh DIR [SQLITE3_DOC_DEB]}
deb=${2:-${RLMX_DOCQA_DEB:-}}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
out="$dir/sqlite3-doc"
if [ -f "$out/rescode.html" ]; then
  echo "fetch-docqa: $out is already there"
  exit 0
fi
command -v dpkg >/dev/null 2>&1 || { echo "fetch-docqa: dpkg not found (a Debian or Ubuntu host is needed)" >&2; exit 1; }
work=$(mktemp -d "$dir/.fetch-docqa.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
if [ -z "$deb" ]; then
  command -v apt-get >/dev/null 2>&1 || {
    echo "fetch-docqa: apt-get not found: download sqlite3-doc_*_all.deb (packages.debian.org/sqlite3-doc)" \
      "and pass it as the second argument" >&2
    exit 1
  }
  if ! (cd "$work" && apt-get download -qq sqlite3-doc); then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && (cd "$work" && apt-get download -qq sqlite3-doc)
    else
      echo "fetch-docqa: apt-get download sqlite3-doc failed: run 'sudo apt-get update' and try again," \
        "or pass a downloaded sqlite3-doc .deb as the second argument" >&2
      exit 1
    fi
  fi
  deb=$(ls "$work"/sqlite3-doc_*.deb)
fi
dpkg -x "$deb" "$work/root"
[ -f "$work/root/usr/share/doc/sqlite3/rescode.html" ] || {
  echo "fetch-docqa: $deb holds no usr/share/doc/sqlite3/rescode.html: is it sqlite3-doc?" >&2
  exit 1
}
mv "$work/root/usr/share/doc/sqlite3" "$out"
echo "fetch-docqa: $(find "$out" -name '*.html' | wc -l) HTML pages in $out"
