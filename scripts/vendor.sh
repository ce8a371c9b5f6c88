#!/usr/bin/env bash
# Refreshes the console's vendored JavaScript from the npm registry: hls.js (the player)
# and uPlot (the ingest-rate graph), copied as plain files into
# sessions/http/console/vendor/ with their licences, and their versions, licences, npm
# tarballs and checksums written to vendor/NOTICE.txt. Needs npm (and the registry) only
# here: users install the package with the files in it, with no build step.
#
#   scripts/vendor.sh                 # the versions pinned below
#   HLS_VERSION=latest UPLOT_VERSION=latest scripts/vendor.sh
#
# Then run the console's tests (tests/http/test_console_*.py) and update the versions in
# README.md ("The operator console").
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

HLS_VERSION=${HLS_VERSION:-1.7.4}
UPLOT_VERSION=${UPLOT_VERSION:-1.6.32}

vendor=sessions/http/console/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# fetch NAME VERSION: the package's tarball unpacked in $work/NAME; prints the exact version.
fetch() {
    local name=$1 version=$2 exact
    exact=$(npm view "$name@$version" version | tail -n 1)
    exact=${exact##* }
    exact=${exact//\'/}
    (cd "$work" && npm pack --silent "$name@$exact" >/dev/null)
    mkdir -p "$work/$name"
    tar -xzf "$work/$name-$exact.tgz" -C "$work/$name" --strip-components=1
    echo "$exact"
}

hls=$(fetch hls.js "$HLS_VERSION")
uplot=$(fetch uplot "$UPLOT_VERSION")

rm -rf "$vendor"
mkdir -p "$vendor/hls.js" "$vendor/uplot"
# The light build: MPEG-TS and fMP4 playback, without subtitles, alternate audio or DRM.
cp "$work/hls.js/dist/hls.light.min.mjs" "$vendor/hls.js/"
cp "$work/hls.js/LICENSE" "$vendor/hls.js/LICENSE.txt"
cp "$work/uplot/dist/uPlot.esm.js" "$work/uplot/dist/uPlot.min.css" "$vendor/uplot/"
cp "$work/uplot/LICENSE" "$vendor/uplot/LICENSE.txt"

# entry NAME VERSION FOLDER: the NOTICE lines of one package.
entry() {
    local name=$1 version=$2 folder=$3 license tarball integrity file
    license=$(node -p "require('$work/$name/package.json').license")
    tarball=$(npm view "$name@$version" dist.tarball)
    integrity=$(npm view "$name@$version" dist.integrity)
    echo "$name $version ($license)"
    echo "  from $tarball"
    echo "  integrity $integrity"
    for file in "$vendor/$folder"/*; do
        echo "  sha256 $(sha256sum "$file" | cut -d' ' -f1) $folder/$(basename "$file")"
    done
    echo
}

{
    echo "Third-party files in this folder, copied unchanged from the npm registry by"
    echo "scripts/vendor.sh. Each package's licence is beside its files (LICENSE.txt)."
    echo
    entry hls.js "$hls" hls.js
    entry uplot "$uplot" uplot
} >"$vendor/NOTICE.txt"

echo "vendored hls.js $hls and uPlot $uplot into $vendor"
