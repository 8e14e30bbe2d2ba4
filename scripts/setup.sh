#!/usr/bin/env bash
# Installs what muri needs on a Debian machine and builds it: Debian packages
# that are missing, faiss from Debian's source package (C API on, SIMD level
# of this CPU; cached outside the clone, keyed by version and flags), then
# meson + ninja. Idempotent: with nothing to do it takes a few seconds.
#
#   scripts/setup.sh [BUILD_DIR [extra meson options...]]
#   scripts/setup.sh --deps      packages and faiss only; prints faiss's folder
#
# MURI_FAISS_VERSION picks faiss (default 1.7.3, this release's own source
# package). Another version comes from the Debian suite whose source package
# has it (1.11.0: trixie, 1.13.2: sid; MURI_FAISS_SUITE for others), fetched
# through a private apt state under the cache with deb-src entries derived
# from this machine's Debian entries (the machine's apt configuration is not
# changed). MURI_FAISS_SOURCE=DIR builds an unpacked faiss source tree of
# that version instead, for an archive that does not serve the suite's
# source files.
set -euo pipefail
shopt -s inherit_errexit

root=$(cd "$(dirname "$0")/.." && pwd)
deps_only=0
if [ "${1:-}" = --deps ]; then deps_only=1; shift; fi
build=${1:-$root/build}
shift || true
cache=${MURI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/muri}
faiss_version=${MURI_FAISS_VERSION:-1.7.3}
case "$faiss_version" in
  *[!0-9.]* | '') printf 'setup: MURI_FAISS_VERSION: "%s" is not a version like 1.7.3\n' "$faiss_version" >&2; exit 1 ;;
esac

say() { printf 'setup: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

packages=(
  build-essential meson ninja-build pkg-config cmake dpkg-dev
  libgrpc-dev protobuf-c-compiler libprotobuf-c-dev protobuf-compiler
  protobuf-compiler-grpc libsodium-dev libssl-dev libsqlite3-dev libcurl4-openssl-dev
  libopenblas-dev libmicrohttpd-dev openssl curl procps iproute2
  clang libclang-rt-dev
  python3 python3-grpcio python3-grpc-tools python3-numpy python3-pytest python3-venv
  chromium python3-websocket
)
# what a caller needs beyond the build (scripts/devnet.sh: its demo data)
read -r -a extra_packages <<<"${MURI_EXTRA_PACKAGES:-}"
packages+=("${extra_packages[@]}")

# apt-get with its arguments. Another package manager at work (an
# unattended upgrade, a second install) holds apt's locks: wait for it, up to
# MURI_APT_LOCK_WAIT seconds (default 900), instead of failing at once.
apt_run() {
  local start=$SECONDS out rc
  while :; do
    rc=0
    out=$(as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=60 "$@" 2>&1) || rc=$?
    printf '%s\n' "$out" >&2
    if [ $rc -ne 0 ] && grep -qiE 'could not get lock|unable to acquire|another process using it' <<<"$out" &&
      [ $((SECONDS - start)) -lt "${MURI_APT_LOCK_WAIT:-900}" ]; then
      say "another package manager holds apt's lock; waiting for it"
      sleep 5
      continue
    fi
    return $rc
  done
}

apt_updated=0
apt_update() {
  if [ "$apt_updated" = 0 ]; then
    apt_run update -q || say "apt-get update failed; trying with the package lists this machine has"
    apt_updated=1
  fi
}

install_packages() {
  local missing=() p
  for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$p")
    fi
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    apt_update
    if ! apt_run install -y -q --no-install-recommends "${missing[@]}"; then
      local still=()
      for p in "${missing[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || still+=("$p")
      done
      say "could not install: ${still[*]} (see apt-get's messages above); install them and run this again"
      return 1
    fi
  fi
}

# Adds deb-src entries that mirror this machine's own Debian entries (same
# URIs, suites, components and key), so `apt-get source` works without
# naming any mirror here.
add_deb_src() {
  local codename out=/etc/apt/sources.list.d/muri-deb-src.sources
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -n "$codename" ] || { say "cannot tell the Debian codename"; return 1; }
  local tmp; tmp=$(mktemp)
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    [ "$f" = "$out" ] && continue
    # deb822 stanzas: keep those of type deb whose suites name this release.
    awk -v cn="$codename" '
      function flush() {
        if (stanza != "" && isdeb && hascn) {
          sub(/(^|\n)Types:[^\n]*/, "\nTypes: deb-src", stanza)
          sub(/^\n/, "", stanza)
          print stanza; print ""
        }
        stanza = ""; isdeb = 0; hascn = 0
      }
      /^[ \t]*$/ { flush(); next }
      /^#/ { next }
      {
        if ($1 == "Types:") { for (i = 2; i <= NF; i++) if ($i == "deb") isdeb = 1 }
        if ($1 == "Suites:") { for (i = 2; i <= NF; i++) if (index($i, cn) == 1) hascn = 1 }
        stanza = stanza (stanza == "" ? "" : "\n") $0
      }
      END { flush() }' "$f" >> "$tmp"
  done
  if [ -f /etc/apt/sources.list ]; then
    awk -v cn="$codename" '$1 == "deb" {
        for (i = 2; i <= NF; i++) if (index($i, cn) == 1) { $1 = "deb-src"; print "#one-line " $0; break } }' \
      /etc/apt/sources.list >> "$tmp"
  fi
  if [ ! -s "$tmp" ]; then rm -f "$tmp"; say "no Debian entry found in the apt configuration"; return 1; fi
  if grep -q '^#one-line ' "$tmp"; then
    sed -n 's/^#one-line //p' "$tmp" | as_root tee /etc/apt/sources.list.d/muri-deb-src.list >/dev/null
    sed -i '/^#one-line /d' "$tmp"
  fi
  if [ -s "$tmp" ]; then as_root cp "$tmp" "$out"; fi
  rm -f "$tmp"
  apt_updated=0
  apt_update
}

# The Debian suite whose faiss source package is the given version: empty
# for this machine's own release (its deb-src entries, add_deb_src).
faiss_suite() {
  if [ -n "${MURI_FAISS_SUITE:-}" ]; then echo "$MURI_FAISS_SUITE"; return; fi
  case "$1" in
    1.7.3) echo "" ;;
    1.11.0) echo trixie ;;
    1.13.2) echo sid ;;
    *) say "MURI_FAISS_VERSION $1: no Debian suite known for it (set MURI_FAISS_SUITE)"; return 1 ;;
  esac
}

# Fetches faiss's source package of `suite` into the current folder through
# an apt state of its own (under the cache): deb-src entries with the URIs,
# components and key of this machine's entries for its own release (not its
# -updates / -security suites), the suite replaced.
fetch_other_suite() {
  local suite=$1 codename state f
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -n "$codename" ] || { say "cannot tell the Debian codename"; return 1; }
  state=$cache/apt-$suite
  mkdir -p "$state/parts" "$state/lists/partial" "$state/cache/archives/partial"
  : > "$state/parts/src.sources"
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    awk -v cn="$codename" -v suite="$suite" '
      function flush() {
        if (stanza != "" && isdeb && hascn) print stanza "\nTypes: deb-src\nSuites: " suite "\n"
        stanza = ""; isdeb = 0; hascn = 0
      }
      /^[ \t]*$/ { flush(); next }
      /^#/ { next }
      {
        if ($1 == "Types:") { for (i = 2; i <= NF; i++) if ($i == "deb") isdeb = 1; next }
        if ($1 == "Suites:") { for (i = 2; i <= NF; i++) if ($i == cn) hascn = 1; next }
        stanza = stanza (stanza == "" ? "" : "\n") $0
      }
      END { flush() }' "$f" >> "$state/parts/src.sources"
  done
  : > "$state/parts/src.list"
  if [ -f /etc/apt/sources.list ]; then
    awk -v cn="$codename" -v suite="$suite" '$1 == "deb" {
        for (i = 2; i <= NF; i++) if ($i == cn) { $1 = "deb-src"; $i = suite; print; break } }' \
      /etc/apt/sources.list > "$state/parts/src.list"
  fi
  [ -s "$state/parts/src.sources" ] || rm -f "$state/parts/src.sources"
  [ -s "$state/parts/src.list" ] || rm -f "$state/parts/src.list"
  ls "$state/parts"/src.* >/dev/null 2>&1 || { say "no Debian entry for $codename in the apt configuration"; return 1; }
  local opts=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$state/parts"
    -o Dir::State::Lists="$state/lists" -o Dir::Cache="$state/cache" -o Debug::NoLocking=1
    -o APT::Sandbox::User=root)
  apt-get "${opts[@]}" update -q >&2
  apt-get "${opts[@]}" source -q --download-only "faiss/$suite" >&2
}

simd_flags() {
  local f; f=$(grep -m1 '^flags' /proc/cpuinfo || true)
  if [[ " $f " == *" avx2 "* && " $f " == *" fma "* && " $f " == *" f16c "* && " $f " == *" popcnt "* ]]; then
    echo "-mavx2 -mfma -mf16c -mpopcnt"
  else
    echo ""
  fi
}

build_faiss() {
  local flags level key dir work suite
  flags=$(simd_flags)
  if [ -n "$flags" ]; then level=avx2; else level=generic; fi
  key=$(printf '%s|%s|O3|static|capi' "$faiss_version" "$flags" | sha256sum | cut -c1-12)
  dir=$cache/faiss-$faiss_version-$level-$key
  if [ -f "$dir/.complete" ]; then echo "$dir"; return; fi
  say "building faiss $faiss_version ($level) into $dir; about a minute per core-pair"
  work=$(mktemp -d)
  if [ -n "${MURI_FAISS_SOURCE:-}" ]; then
    grep -Eq "^[[:space:]]*VERSION[[:space:]]+$faiss_version[[:space:]]*\$" "$MURI_FAISS_SOURCE/CMakeLists.txt" 2>/dev/null ||
      { say "MURI_FAISS_SOURCE: $MURI_FAISS_SOURCE is not a faiss $faiss_version source tree"; return 1; }
    cp -a "$MURI_FAISS_SOURCE" "$work/src"
  else
    suite=$(faiss_suite "$faiss_version")
    if [ -n "$suite" ]; then
      (cd "$work" && fetch_other_suite "$suite") ||
        { say "faiss $faiss_version: Debian's $suite source package could not be fetched (MURI_FAISS_SOURCE=DIR builds a local source tree)"; return 1; }
    elif ! (cd "$work" && apt-get source -q --download-only faiss >&2) ; then
      add_deb_src
      (cd "$work" && apt-get source -q --download-only faiss >&2)
    fi
    local dsc; dsc=$(ls "$work"/faiss_"$faiss_version"-*.dsc 2>/dev/null | head -n1)
    [ -n "$dsc" ] || { say "Debian's faiss source is not version $faiss_version"; return 1; }
    (cd "$work" && dpkg-source -x --skip-patches "$dsc" src >&2)
  fi
  local need have
  need=$(sed -n 's/^cmake_minimum_required(VERSION \([0-9.]*\).*/\1/p' "$work/src/CMakeLists.txt" | head -n1)
  have=$(cmake --version | sed -n 's/^cmake version \([0-9.]*\).*/\1/p')
  if [ -n "$need" ] && [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n1)" != "$need" ]; then
    say "faiss $faiss_version needs cmake >= $need, this machine has $have"; return 1
  fi
  rm -rf "$dir.tmp"
  cmake -S "$work/src" -B "$work/build" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DBUILD_TESTING=OFF \
    -DFAISS_ENABLE_GPU=OFF -DFAISS_ENABLE_PYTHON=OFF -DFAISS_ENABLE_C_API=ON \
    -DFAISS_OPT_LEVEL=generic -DBLA_VENDOR=OpenBLAS \
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
    -DCMAKE_CXX_FLAGS="-O3 $flags" -DCMAKE_C_FLAGS="-O3 $flags" \
    -DCMAKE_INSTALL_PREFIX="$dir.tmp" >&2
  cmake --build "$work/build" --target faiss faiss_c >&2
  mkdir -p "$dir.tmp/lib" "$dir.tmp/include"
  cp "$work/build/faiss/libfaiss.a" "$work/build/c_api/libfaiss_c.a" "$dir.tmp/lib/"
  (cd "$work/src" && find faiss -name '*.h' -print0 | xargs -0 cp --parents -t "$dir.tmp/include/")
  (cd "$work/src/c_api" && find . -name '*.h' -print0 | xargs -0 cp --parents -t "$dir.tmp/include/faiss/c_api/" 2>/dev/null) || {
    mkdir -p "$dir.tmp/include/faiss/c_api"
    (cd "$work/src/c_api" && find . -name '*.h' -print0 | xargs -0 cp --parents -t "$dir.tmp/include/faiss/c_api/")
  }
  printf 'version=%s\nlevel=%s\nflags=%s\n' "$faiss_version" "$level" "$flags" > "$dir.tmp/.complete"
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
  rm -rf "$work"
  echo "$dir"
}

install_packages
faiss_dir=$(build_faiss)
if [ "$deps_only" = 1 ]; then echo "$faiss_dir"; exit 0; fi

if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$root" -Dfaiss_dir="$faiss_dir" "$@" >&2
else
  meson configure "$build" -Dfaiss_dir="$faiss_dir" "$@" >/dev/null
fi
ninja -C "$build" >&2
