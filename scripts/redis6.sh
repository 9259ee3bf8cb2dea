#!/usr/bin/env bash
# Redis 6.0 for `npm run test:redis6`: the store's suites again, on the oldest Redis the library
# supports (Redis 6 added ACLs, RESP3 and the client-side caching the session cache uses).
#
#   scripts/redis6.sh fetch   puts Debian 11's redis-server 6.0 in .cache/redis6 (once), prints
#                             the path of a redis-server that runs it
#   scripts/redis6.sh test    fetches it if needed, then runs the suites with it
#
# The packages come from Debian's own archive (bullseye and bullseye-security), through apt
# with a private state directory: apt checks their signatures against the machine's Debian
# keyring, and nothing is installed on the machine. Needs apt-get, dpkg-deb and the
# debian-archive-keyring (Debian; on Ubuntu, apt-get install debian-archive-keyring), and
# redis-cli on PATH (the tests' own probes and `--cluster create`; any version).
# KJR_TEST_REDIS6 names a redis-server 6 of your own instead (any OS). REDIS6_MIRROR names the
# Debian mirror; by default deb.debian.org, then archive.debian.org, where Debian moves a release
# some time after its support ends (bullseye's ended in August 2026).
set -euo pipefail
# `server=$(fetch)` below: a failing step inside it must stop the script there.
shopt -s inherit_errexit
if [ -n "${KJR_TEST_REDIS6:-}" ]; then KJR_TEST_REDIS6=$(realpath "$KJR_TEST_REDIS6"); fi
cd "$(dirname "$0")/.."

dir=$PWD/.cache/redis6
wrapper=$dir/bin/redis-server
# What the fetch takes: redis-tools holds the server binary (redis-server is a link to
# redis-check-rdb); the rest are the libraries bullseye's build links that a newer Debian no
# longer has (OpenSSL 1.1) or may lack. A new list fetches again (the stamp).
PACKAGES='redis-tools libssl1.1 liblua5.1-0 lua-bitop lua-cjson liblzf1 libjemalloc2'

is_redis6() { "$1" --version 2>/dev/null | grep -q ' v=6\.'; }

# Reads bullseye from mirror $1 into the private apt state; fails unless every index was read.
apt_update() {
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  printf 'deb [signed-by=%s] %s/debian bullseye main\ndeb [signed-by=%s] %s/debian-security bullseye-security main\n' \
    "$keyring" "$1" "$keyring" "$1" >"$dir/apt/sources.list"
  rm -rf "$dir/apt/lists"
  mkdir -p "$dir/apt/lists/partial"
  "${apt[@]}" --error-on=any update >&2
}

fetch() {
  if [ -n "${KJR_TEST_REDIS6:-}" ]; then
    is_redis6 "$KJR_TEST_REDIS6" || {
      echo "redis6: KJR_TEST_REDIS6=$KJR_TEST_REDIS6 is not a redis-server 6" >&2
      exit 1
    }
    echo "$KJR_TEST_REDIS6"
    return
  fi
  if [ -x "$wrapper" ] && [ "$(cat "$dir/stamp" 2>/dev/null)" = "$PACKAGES" ] && is_redis6 "$wrapper"; then
    echo "$wrapper"
    return
  fi
  if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null ||
    [ ! -r /usr/share/keyrings/debian-archive-keyring.gpg ]; then
    echo "redis6: fetching Debian's Redis 6.0 needs apt-get, dpkg-deb and" \
      "/usr/share/keyrings/debian-archive-keyring.gpg; or set KJR_TEST_REDIS6 to a redis-server 6" >&2
    exit 1
  fi
  local arch
  arch=$(dpkg --print-architecture)
  rm -rf "$dir"
  mkdir -p "$dir/apt/cache/archives/partial" "$dir/debs" "$dir/bin"
  touch "$dir/apt/status"
  # Only this directory's state and sources; no translations, no other architecture; retries
  # for a flaky network; an archived release's Release file is past its Valid-Until.
  apt=(apt-get -qq
    -o "Dir::Etc::SourceList=$dir/apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
    -o "Dir::State::Lists=$dir/apt/lists" -o "Dir::State::status=$dir/apt/status"
    -o "Dir::Cache=$dir/apt/cache" -o "APT::Architecture=$arch" -o "APT::Architectures=$arch"
    -o Acquire::Languages=none -o Acquire::Retries=3 -o Acquire::Check-Valid-Until=false
    -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
  local mirror mirrors=${REDIS6_MIRROR:-http://deb.debian.org http://archive.debian.org} read=''
  for mirror in $mirrors; do
    echo "redis6: fetching Debian 11's redis-server 6.0 from $mirror into .cache/redis6" >&2
    if apt_update "$mirror"; then
      read=$mirror
      break
    fi
  done
  if [ -z "$read" ]; then
    echo "redis6: apt could not read bullseye and bullseye-security from $mirrors (set" \
      "REDIS6_MIRROR to a mirror that has both, or KJR_TEST_REDIS6 to a redis-server 6 binary)" >&2
    exit 1
  fi
  # shellcheck disable=SC2086 # one word per package
  (cd "$dir/debs" && "${apt[@]}" download $PACKAGES >&2)
  for deb in "$dir"/debs/*.deb; do dpkg-deb -x "$deb" "$dir/root"; done
  ln -sf redis-check-rdb "$dir/root/usr/bin/redis-server"
  local ssl lib
  ssl=$(find "$dir/root" -name 'libssl.so.1.1' | head -1)
  [ -n "$ssl" ]
  lib=$(dirname "$ssl")
  cat >"$wrapper" <<EOF
#!/bin/sh
# Debian 11's redis-server 6.0 with the libraries fetched beside it (scripts/redis6.sh).
here=\$(cd "\$(dirname "\$0")/.." && pwd)
LD_LIBRARY_PATH="\$here/${lib#"$dir"/}\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "\$here/root/usr/bin/redis-server" "\$@"
EOF
  chmod +x "$wrapper"
  rm -rf "$dir/apt" "$dir/debs"
  if ! is_redis6 "$wrapper"; then
    echo "redis6: the fetched redis-server does not run here:" >&2
    "$wrapper" --version >&2 || true
    exit 1
  fi
  echo "$PACKAGES" >"$dir/stamp"
  echo "$wrapper"
}

case "${1:-}" in
  fetch) fetch ;;
  test)
    server=$(fetch)
    echo "redis6: $("$server" --version)" >&2
    export KJR_TEST_REDIS_SERVER=$server
    # Every Redis of the run is one the tests start from it: not a REDIS_URL's.
    unset REDIS_URL
    # The suites that drive a Redis, in the two passes `npm test` has: the parallel one against
    # one redis-server and against a 3-master Cluster (and the servers, Clusters and sentinels
    # the suites start), then the timing suites, PostgreSQL's aside, one file at a time.
    npx --no vitest run --project redis --project cluster test/integration test/contract
    npx --no vitest run --project timing --no-file-parallelism \
      --exclude test/integration/postgres.test.ts
    ;;
  *)
    echo "usage: scripts/redis6.sh fetch|test" >&2
    exit 2
    ;;
esac
