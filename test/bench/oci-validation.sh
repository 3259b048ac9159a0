#!/bin/bash
# OCI runtime-tools validation (not a test, issue 13's reach): every validation/<name> TAP
# program of opencontainers/runtime-tools, run once with RUNTIME=runc and once with
# RUNTIME=bin/sl-runtime on this machine. Prints per runtime passed/failed/skipped (TAP
# "ok", "not ok", "# SKIP"; a program that dies or times out with nothing failed counts as
# one failure), then every check runc passes and sl-runtime fails.
#   sudo test/bench/oci-validation.sh [TEST_NAME_REGEX]
# Environment:
#   OCI_RUNTIME_TOOLS_SRC  a runtime-tools checkout (git clone https://github.com/opencontainers/runtime-tools);
#                          default: $CACHE/src, cloned there when the network allows
#   SL_OCI_CACHE           build cache (default /var/tmp/sl-oci-validation): binaries are rebuilt only when
#                          their source is newer
#   SL_OCI_TIMEOUT         seconds per test program (default 120)
#   SL_OCI_RUNTIMES        "runc sl-runtime" (default) or one of them
#   SL_OCI_KEEP            1: keep the run's TAP output (printed at the end) instead of deleting it
# Everything the run makes (state roots, bundles, their mounts, the tests' cgroups) lives under
# one run directory and the groups it names, and is removed at exit, also on ^C.
set -u -o pipefail
export LC_ALL=C

REPO=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${SL_OCI_CACHE:-/var/tmp/sl-oci-validation}
TIMEOUT=${SL_OCI_TIMEOUT:-120}
RUNTIMES=${SL_OCI_RUNTIMES:-runc sl-runtime}
FILTER=${1:-.}
die() { echo "oci-validation: $*" >&2; exit 2; }

[ "$(id -u)" = 0 ] || die "needs root (both runtimes make namespaces and cgroups)"
[ -x "$REPO/native/build/sl-monitor" ] && [ -f "$REPO/dist/agent/oci/main.js" ] || die "build the tree first: npm run build"

# --- what it needs: Go, runc, and the runtime-tools library packages (GOPATH fallback) ---
need=()
command -v go >/dev/null || need+=(golang-go)
command -v runc >/dev/null || need+=(runc)
command -v git >/dev/null || need+=(git)
[ -d /usr/share/gocode/src/github.com/opencontainers/runtime-tools ] || need+=(golang-github-opencontainers-runtime-tools-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "oci-validation: apt-get install ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >&2 || die "apt-get install ${need[*]} failed"
fi

# --- the validation sources: Debian's -dev package ships the library only (generate, validate,
# specerror), not validation/ nor cmd/runtimetest nor the rootfs tarball, so a checkout is needed ---
SRC=${OCI_RUNTIME_TOOLS_SRC:-$CACHE/src}
if [ ! -d "$SRC/validation" ]; then
  if [ -n "${OCI_RUNTIME_TOOLS_SRC:-}" ]; then die "$SRC has no validation/ directory (not a runtime-tools checkout)"; fi
  mkdir -p "$CACHE"
  rm -rf "$CACHE/src.part"
  echo "oci-validation: cloning runtime-tools into $SRC" >&2
  if ! timeout 120 git clone -q https://github.com/opencontainers/runtime-tools "$CACHE/src.part" >&2; then
    rm -rf "$CACHE/src.part"
    die "no runtime-tools source: set OCI_RUNTIME_TOOLS_SRC to a checkout (git clone https://github.com/opencontainers/runtime-tools); this machine could not clone it, and Debian's golang-github-opencontainers-runtime-tools-dev has no validation/"
  fi
  mv "$CACHE/src.part" "$SRC"
fi
SRC=$(cd "$SRC" && pwd)
ARCH=$(go env GOARCH)
[ -f "$SRC/rootfs-$ARCH.tar.gz" ] || die "$SRC/rootfs-$ARCH.tar.gz missing (the tests' busybox root)"

# --- build: module mode from the checkout's vendor/ (offline); else module mode through the Go
# proxy (modules cached under $CACHE); without go.mod, GOPATH mode over /usr/share/gocode with the
# checkout linked in as github.com/opencontainers/runtime-tools ---
BIN=$CACHE/bin
WORK=$CACHE/work # the tests run here: they copy ./runtimetest and untar ./rootfs-<arch>.tar.gz
mkdir -p "$BIN" "$WORK" "$CACHE/gocache"
export GOCACHE=$CACHE/gocache GOFLAGS= GOTOOLCHAIN=local
if [ -d "$SRC/vendor" ]; then
  export GO111MODULE=on GOFLAGS=-mod=vendor GOPROXY=off
  BUILD_DIR=$SRC; PKG=.
elif [ -f "$SRC/go.mod" ]; then
  export GO111MODULE=on GOFLAGS=-mod=mod GOMODCACHE=$CACHE/gomod
  BUILD_DIR=$SRC; PKG=.
else
  GP=$CACHE/gopath
  mkdir -p "$GP/src/github.com/opencontainers"
  ln -sfn "$SRC" "$GP/src/github.com/opencontainers/runtime-tools"
  export GO111MODULE=off GOPATH=$GP:/usr/share/gocode GOPROXY=off
  BUILD_DIR=$GP/src/github.com/opencontainers/runtime-tools; PKG=github.com/opencontainers/runtime-tools
fi
newer() { [ ! -x "$1" ] || [ -n "$(find "$2" -name '*.go' -newer "$1" -print -quit 2>/dev/null)" ]; }
build() { # out, package dir (relative), extra flags...
  local out=$1 dir=$2; shift 2
  if newer "$out" "$SRC/$dir" || newer "$out" "$SRC/validation/util"; then
    (cd "$BUILD_DIR" && go build "$@" -o "$out.part" "$PKG/$dir") >"$CACHE/build.log" 2>&1 || { cat "$CACHE/build.log" >&2; return 1; }
    mv "$out.part" "$out"
  fi
}
t0=$(date +%s)
CGO_ENABLED=0 build "$BIN/runtimetest" cmd/runtimetest -tags 'netgo osusergo' || die "building cmd/runtimetest failed"
cp "$BIN/runtimetest" "$WORK/runtimetest"
cp "$SRC/rootfs-$ARCH.tar.gz" "$WORK/"
TESTS=()
while IFS= read -r f; do
  rel=${f#"$SRC"/}
  case $rel in validation/util/*|*_test.go) continue ;; esac
  name=$(basename "$rel" .go)
  [[ $name =~ $FILTER ]] || continue
  # validation/<name>/<name>.go (today's layout) or validation/<name>.go (older)
  dir=$(dirname "$rel")
  if [ "$dir" = validation ]; then
    (cd "$BUILD_DIR" && go build -o "$BIN/$name.t.part" "$rel") >"$CACHE/build.log" 2>&1 && mv "$BIN/$name.t.part" "$BIN/$name.t" || { echo "oci-validation: build $rel failed:" >&2; cat "$CACHE/build.log" >&2; continue; }
  else
    build "$BIN/$name.t" "$dir" || { echo "oci-validation: build $rel failed" >&2; continue; }
  fi
  TESTS+=("$name")
done < <(find "$SRC/validation" -name '*.go' | sort)
[ ${#TESTS[@]} -gt 0 ] || die "no validation program matches ${FILTER}"
echo "oci-validation: ${#TESTS[@]} programs built in $(( $(date +%s) - t0 )) s ($BIN)" >&2

# --- one run directory: state roots, wrappers, bundles (TMPDIR), outputs ---
RUN=$(mktemp -d /var/tmp/sl-oci-run.XXXXXX)
CG_BEFORE=$RUN/cgroups.before
find /sys/fs/cgroup -mindepth 1 -maxdepth 6 -type d 2>/dev/null | sort >"$CG_BEFORE"
cleanup() {
  trap - EXIT INT TERM
  for rt in $RUNTIMES; do
    w=$RUN/$rt
    [ -x "$w" ] || continue
    for id in $("$w" list -q 2>/dev/null); do timeout 30 "$w" delete --force "$id" >/dev/null 2>&1; done
  done
  # mounts a killed test left under the run directory (bundles are in it), deepest first
  awk -v r="$RUN" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  # the groups the tests name (cgroupsPath /cgrouptest, testdir/..., runc's /<uuid>) and
  # sl-runtime's node for its root: only ones that did not exist before the run
  if [ -d /sys/fs/cgroup ]; then
    node=slrt-$(printf %s "$RUN/root-sl-runtime" | sha256sum | cut -c1-10)
    { find /sys/fs/cgroup -mindepth 1 -maxdepth 6 -type d \( -name cgrouptest -o -name testdir -o -name "$node" \) 2>/dev/null
      # runc's own group for a test container without cgroupsPath: /<uuid> under a hierarchy root
      find /sys/fs/cgroup -mindepth 1 -maxdepth 2 -type d -regex '.*/[0-9a-f]\{8\}-[0-9a-f]\{4\}-[0-9a-f]\{4\}-[0-9a-f]\{4\}-[0-9a-f]\{12\}' 2>/dev/null
    } | sort -r | while read -r d; do
      grep -qxF "$d" "$CG_BEFORE" && continue
      find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
  fi
  if [ "${SL_OCI_KEEP:-0}" = 1 ]; then
    find "$RUN" -mindepth 1 -maxdepth 1 ! -name out -exec rm -rf {} + 2>/dev/null
    echo "oci-validation: TAP output kept in $RUN/out" >&2
  else
    rm -rf "$RUN"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

printf '#!/bin/sh\nexec runc --root %s "$@"\n' "$RUN/root-runc" >"$RUN/runc"
printf '#!/bin/sh\nexec %s %s --root %s "$@"\n' "$(command -v node)" "$REPO/bin/sl-runtime" "$RUN/root-sl-runtime" >"$RUN/sl-runtime"
chmod +x "$RUN/runc" "$RUN/sl-runtime"

# TAP → one line per check: "<program>:<n> <description>\t<ok|fail|skip>"
parse() { # program, tap file, exit status
  awk -v prog="$1" -v rc="$3" '
    /^(not )?ok( |$)/ {
      notok = ($1 == "not"); rest = $0; sub(/^(not )?ok */, "", rest)
      n = ""; if (match(rest, /^[0-9]+/)) { n = substr(rest, 1, RLENGTH); rest = substr(rest, RLENGTH + 1) }
      sub(/^ *-? */, "", rest)
      kind = notok ? "fail" : "ok"
      if (rest ~ /# *[Ss][Kk][Ii][Pp]/) kind = "skip"
      desc = rest; sub(/ *#.*$/, "", desc); gsub(/\t/, " ", desc)
      seen++; if (kind == "fail") failed++
      printf "%s:%s %s\t%s\n", prog, (n == "" ? seen : n), desc, kind
    }
    END { if (rc != 0 && !failed) printf "%s:exit %s\tfail\n", prog, (rc == 124 || rc == 137 ? "timeout" : rc) }' "$2"
}

mkdir -p "$RUN/tmp"
for rt in $RUNTIMES; do
  mkdir -p "$RUN/out/$rt"
  : >"$RUN/out/$rt.results"
  s0=$(date +%s)
  for name in "${TESTS[@]}"; do
    # each program in its own session, killed with its children at the timeout
    (cd "$WORK" && TMPDIR=$RUN/tmp RUNTIME=$RUN/$rt timeout -k 10 "$TIMEOUT" setsid "$BIN/$name.t") \
      >"$RUN/out/$rt/$name.tap" 2>"$RUN/out/$rt/$name.err" </dev/null
    parse "$name" "$RUN/out/$rt/$name.tap" $? >>"$RUN/out/$rt.results"
    # what a test left: its containers (force delete)
    for id in $("$RUN/$rt" list -q 2>/dev/null); do timeout 30 "$RUN/$rt" delete --force "$id" >/dev/null 2>&1; done
  done
  secs=$(( $(date +%s) - s0 ))
  r=$RUN/out/$rt.results
  printf '%-10s passed %5d  failed %4d  skipped %4d  (%d programs, %d s)\n' "$rt" \
    "$(grep -c $'\tok$' "$r")" "$(grep -c $'\tfail$' "$r")" "$(grep -c $'\tskip$' "$r")" "${#TESTS[@]}" "$secs"
done

if [ -f "$RUN/out/runc.results" ] && [ -f "$RUN/out/sl-runtime.results" ]; then
  echo "runc passes, sl-runtime does not:"
  comm -12 <(grep $'\tok$' "$RUN/out/runc.results" | cut -f1 | sort -u) \
           <(grep -v $'\tok$' "$RUN/out/sl-runtime.results" | cut -f1 | sort -u) | sed 's/^/  /'
  missing=$(comm -23 <(grep $'\tok$' "$RUN/out/runc.results" | cut -f1 | sort -u) <(cut -f1 "$RUN/out/sl-runtime.results" | sort -u) | wc -l)
  [ "$missing" = 0 ] || echo "  (and $missing checks runc passes that sl-runtime's run never reached)"
fi
