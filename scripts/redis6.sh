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
# debian-archive-keyring (Debian; on Ubuntu, apt-get install debian-archive-keyring).
# KJR_TEST_REDIS6 names a redis-server 6 of your own instead (any OS); REDIS6_MIRROR another
# Debian mirror (once bullseye leaves deb.debian.org: http://archive.debian.org).
set -euo pipefail
cd "$(dirname "$0")/.."

dir=$PWD/.cache/redis6
wrapper=$dir/bin/redis-server

is_redis6() { "$1" --version 2>/dev/null | grep -q ' v=6\.'; }

fetch() {
  if [ -n "${KJR_TEST_REDIS6:-}" ]; then
    is_redis6 "$KJR_TEST_REDIS6" || {
      echo "redis6: KJR_TEST_REDIS6=$KJR_TEST_REDIS6 is not a redis-server 6" >&2
      exit 1
    }
    echo "$KJR_TEST_REDIS6"
    return
  fi
  if [ -x "$wrapper" ] && is_redis6 "$wrapper"; then
    echo "$wrapper"
    return
  fi
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null || [ ! -r "$keyring" ]; then
    echo "redis6: fetching Debian's Redis 6.0 needs apt-get, dpkg-deb and $keyring;" \
      "or set KJR_TEST_REDIS6 to a redis-server 6 binary" >&2
    exit 1
  fi
  local mirror=${REDIS6_MIRROR:-http://deb.debian.org}
  local arch
  arch=$(dpkg --print-architecture)
  rm -rf "$dir"
  mkdir -p "$dir/apt/lists/partial" "$dir/apt/cache/archives/partial" "$dir/debs" "$dir/bin"
  touch "$dir/apt/status"
  printf 'deb [signed-by=%s] %s/debian bullseye main\ndeb [signed-by=%s] %s/debian-security bullseye-security main\n' \
    "$keyring" "$mirror" "$keyring" "$mirror" >"$dir/apt/sources.list"
  local apt=(apt-get -qq
    -o "Dir::Etc::SourceList=$dir/apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
    -o "Dir::State::Lists=$dir/apt/lists" -o "Dir::State::status=$dir/apt/status"
    -o "Dir::Cache=$dir/apt/cache" -o "APT::Architecture=$arch"
    -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
  echo "redis6: fetching Debian 11's redis-server 6.0 from $mirror into .cache/redis6" >&2
  if ! "${apt[@]}" update >&2; then
    echo "redis6: apt could not read bullseye from $mirror (set REDIS6_MIRROR to a mirror" \
      "that has it, or KJR_TEST_REDIS6 to a redis-server 6 binary)" >&2
    exit 1
  fi
  # redis-tools holds the server binary (redis-server is a link to redis-check-rdb); the rest
  # are the libraries bullseye's build links that a newer Debian no longer has (OpenSSL 1.1) or
  # may lack (Lua 5.1 and its bit and cjson modules). libjemalloc2 and liblzf1 are the machine's.
  (cd "$dir/debs" && "${apt[@]}" download redis-tools libssl1.1 liblua5.1-0 lua-bitop lua-cjson >&2)
  for deb in "$dir"/debs/*.deb; do dpkg-deb -x "$deb" "$dir/root"; done
  ln -sf redis-check-rdb "$dir/root/usr/bin/redis-server"
  local lib
  lib=$(dirname "$(find "$dir/root" -name 'libssl.so.1.1' | head -1)")
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
  echo "$wrapper"
}

case "${1:-}" in
  fetch) fetch ;;
  test)
    server=$(fetch)
    echo "redis6: $("$server" --version)" >&2
    export KJR_TEST_REDIS_SERVER=$server
    # The suites that drive a Redis, in the two passes `npm test` has: the parallel one against
    # one redis-server (and the servers, Clusters and sentinels the suites start), then the
    # timing suites (PostgreSQL's aside) one file at a time.
    npx vitest run --project redis test/integration test/contract
    npx vitest run --project timing --no-file-parallelism \
      test/integration/sentinel-failover.test.ts test/integration/cluster-failover.test.ts \
      test/integration/session-cache.test.ts test/integration/session-cache-reshard.test.ts \
      test/integration/store-timeout.test.ts test/integration/outage.test.ts \
      test/integration/faults-under-load.test.ts
    ;;
  *)
    echo "usage: scripts/redis6.sh fetch|test" >&2
    exit 2
    ;;
esac
