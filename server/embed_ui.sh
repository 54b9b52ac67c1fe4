#!/bin/sh
# embed_ui.sh OUT FILE...: the dashboard's files (server/ui/) as one C file for flowd, so that the
# page is part of the binary and nothing is read from disk or fetched at run time. Each file becomes
# a byte array (xxd -i) and a row of flowd_ui_assets (server/ui_assets.h): its name under /ui/, its
# Content-Type by extension, and an ETag made of its SHA-256, so that browsers revalidate cheaply.
set -eu
# without it the pipe below would make empty arrays (sh has no pipefail): say so instead
command -v xxd >/dev/null || { echo "embed_ui.sh: xxd is missing (apt-get install xxd)" >&2; exit 1; }
out=$1
shift
tmp=$out.tmp
{
    echo "/* Made by server/embed_ui.sh from server/ui/ (make): do not edit. */"
    echo "#include \"ui_assets.h\""
    echo
    i=0
    for f in "$@"; do
        xxd -i -n "flowd__ui_$i" <"$f" | sed 's/^unsigned char/static const unsigned char/; /_len = /d'
        i=$((i + 1))
    done
    echo
    echo "const flowd_ui_asset_t flowd_ui_assets[] = {"
    i=0
    for f in "$@"; do
        name=$(basename "$f")
        case $name in
        *.html) type="text/html; charset=utf-8" ;;
        *.css) type="text/css; charset=utf-8" ;;
        *.js) type="text/javascript; charset=utf-8" ;;
        *.svg) type="image/svg+xml" ;;
        *.json) type="application/json" ;;
        *) echo "embed_ui.sh: $f: no Content-Type for this extension" >&2; exit 1 ;;
        esac
        etag=$(sha256sum "$f" | cut -c1-20)
        size=$(wc -c <"$f" | tr -d ' ')
        echo "    {\"$name\", \"$type\", \"\\\"$etag\\\"\", flowd__ui_$i, $size},"
        i=$((i + 1))
    done
    echo "};"
    echo "const size_t flowd_ui_nassets = sizeof flowd_ui_assets / sizeof flowd_ui_assets[0];"
} >"$tmp"
mv "$tmp" "$out"
