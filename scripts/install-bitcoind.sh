#!/bin/sh
# scripts/install-bitcoind.sh - put a real bitcoind (Debian's bitcoin-knots) into a private
# prefix on Debian 12 without touching /etc/apt, dpkg's database or system libraries.
#
# It runs apt-get with a throw-away configuration (own sources.list, lists, cache,
# empty dpkg status), resolves bitcoin-knots' shared-library closure itself,
# downloads the .debs (hash-checked against the signed index), unpacks them with
# dpkg-deb -x into PREFIX/root and writes wrappers PREFIX/bin/<tool> that start the
# real binary through the unpacked glibc loader:
#   PREFIX/root/.../ld-linux-x86-64.so.2 --library-path PREFIX/root/... PREFIX/root/usr/bin/bitcoind "$@"
#
# Usage: [PREFIX=dir] [BTC_DIST=trixie-backports|sid|trixie] [FORCE=1] scripts/install-bitcoind.sh [PREFIX]
# Env:   PREFIX (default <repo root>/.bitcoind: the parent of this scripts/ folder, which is
#        where micronode-testenv looks; BITCOIND_EXE overrides that lookup),
#        BTC_DIST (default trixie-backports; when the package is missing there it
#        falls back to sid unless BTC_DIST was set),
#        BTC_PACKAGE (default bitcoin-knots), DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR,
#        DEBIAN_KEYRING, FORCE=1 (reinstall), BTC_KEEP_DOCS=1 (keep usr/share/{doc,man}).
# Needs: apt-get, apt-cache, dpkg-deb, network access to the Debian mirror. Root not required.
# shellcheck disable=SC2086,SC2046  # package lists are word-split on purpose
set -eu

die() { echo "install-bitcoind: ERROR: $*" >&2; exit 1; }
say() { echo "install-bitcoind: $*" >&2; }

# The repository root is the parent of the folder holding this script, wherever it is run from.
SCRIPT_DIR=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd -P) || die "cannot locate the script's folder"
REPO_ROOT=$(dirname -- "$SCRIPT_DIR")
PREFIX=${1:-${PREFIX:-$REPO_ROOT/.bitcoind}}
PKG=${BTC_PACKAGE:-bitcoin-knots}
# Mirrors default to the ones this machine's own apt sources already use.
sys_uri() { # $1 = suffix the URI must end with ("debian" or "debian-security")
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    sed -n -e 's/^URIs:[[:space:]]*//p' -e 's/^deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]\{1,\}\)\{0,1\}\([^[:space:]]*\).*/\2/p' |
    tr ' ' '\n' | grep -E "/$1/?\$" | head -n1 | sed 's:/*$::'
}
MIRROR=${DEBIAN_MIRROR:-$(sys_uri debian)}
SECMIRROR=${DEBIAN_SECURITY_MIRROR:-$(sys_uri debian-security)}
[ -n "$MIRROR" ] || die "no Debian mirror found in /etc/apt sources; set DEBIAN_MIRROR"
[ -n "$SECMIRROR" ] || SECMIRROR="$MIRROR-security"
KEYRING=${DEBIAN_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}
if [ -n "${BTC_DIST:-}" ]; then DISTS=$BTC_DIST; else DISTS="trixie-backports sid"; fi
TOOLS="bitcoind bitcoin-cli bitcoin-tx bitcoin-wallet bitcoin-util"
STAMP=.install-bitcoind.stamp

for t in apt-get apt-cache apt-config dpkg dpkg-deb sha256sum find sed awk; do
  command -v "$t" >/dev/null 2>&1 || die "required tool '$t' not found"
done
[ "$(dpkg --print-architecture)" = amd64 ] || die "only amd64 is supported"
[ -r "$KEYRING" ] || die "keyring $KEYRING not readable (package debian-archive-keyring)"

mkdir -p "$PREFIX" || die "cannot create $PREFIX"
PREFIX=$(cd "$PREFIX" && pwd -P)
case $PREFIX in *[!A-Za-z0-9/._+-]*) die "prefix path '$PREFIX' has characters the wrappers cannot quote (use [A-Za-z0-9/._+-])";; esac

# ---- idempotence: an intact install is left alone ------------------------------
if [ "${FORCE:-0}" != 1 ] && [ -f "$PREFIX/$STAMP" ] &&
   { [ -z "${BTC_DIST:-}" ] || grep -qx "dist=$BTC_DIST" "$PREFIX/$STAMP"; } &&
   "$PREFIX/bin/bitcoind" -version >/dev/null 2>&1 &&
   "$PREFIX/bin/bitcoin-cli" -version >/dev/null 2>&1; then
  say "already installed: $(sed -n 's/^version=//p' "$PREFIX/$STAMP") in $PREFIX (FORCE=1 to redo)"
  exit 0
fi
if [ -n "$(ls -A "$PREFIX")" ] && [ ! -f "$PREFIX/$STAMP" ] && [ ! -f "$PREFIX/.install-bitcoind.partial" ]; then
  die "$PREFIX is not empty and was not made by this script; refusing to overwrite it"
fi

# ---- guard: /etc/apt must be byte-for-byte untouched ----------------------------
sysdigest() {
  { find /etc/apt \( -type f -o -type l \) -print | LC_ALL=C sort |
      while IFS= read -r f; do
        if [ -L "$f" ]; then echo "L $f $(readlink "$f")"; else sha256sum "$f"; fi
      done
  } | sha256sum | cut -d' ' -f1
}
BEFORE=$(sysdigest)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/install-bitcoind.XXXXXX")
chmod 755 "$WORK"   # apt's download methods run as user _apt and must reach it
STAGE="$PREFIX.stage.$$"
cleanup() { rm -rf "$WORK" "$STAGE"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- private apt configuration ------------------------------------------------
mkdir -p "$WORK/etc/empty" "$WORK/state/lists/partial" "$WORK/cache/archives/partial" "$WORK/debs" "$WORK/log"
: > "$WORK/state/status"
if [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1; then
  chown _apt "$WORK/state/lists/partial" "$WORK/cache/archives/partial" "$WORK/debs"
fi
write_conf() { # $1 = dist
  case $1 in
    sid|unstable) suites="$1" ; sec="" ;;
    *-backports)  base=${1%-backports}; suites="$base $base-updates $1"; sec="$base-security" ;;
    *)            suites="$1 $1-updates"; sec="$1-security" ;;
  esac
  : > "$WORK/etc/sources.list"
  for s in $suites; do
    echo "deb [signed-by=$KEYRING] $MIRROR $s main" >> "$WORK/etc/sources.list"
  done
  [ -z "$sec" ] || echo "deb [signed-by=$KEYRING] $SECMIRROR $sec main" >> "$WORK/etc/sources.list"
  W=$WORK
  cat > "$WORK/apt.conf" <<EOF
Dir::Etc::Parts "$W/etc/empty";
Dir::Etc::main "/dev/null";
Dir::Etc::SourceList "$W/etc/sources.list";
Dir::Etc::SourceParts "$W/etc/empty";
Dir::Etc::Preferences "/dev/null";
Dir::Etc::PreferencesParts "$W/etc/empty";
Dir::Etc::Trusted "/dev/null";
Dir::Etc::TrustedParts "$W/etc/empty";
Dir::State "$W/state";
Dir::State::Lists "$W/state/lists";
Dir::State::status "$W/state/status";
Dir::State::extended_states "$W/state/extended_states";
Dir::Cache "$W/cache";
Dir::Cache::archives "$W/cache/archives";
Dir::Log "$W/log";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
Acquire::Languages "none";
Acquire::Retries "3";
Debug::NoLocking "true";
EOF
  # Keep the machine's own network policy (proxies; snapshot mirrors that need
  # Check-Valid-Until/Check-Date off) but nothing else of the system apt config.
  (unset APT_CONFIG; apt-config dump) |
    grep -E '^Acquire::(https?::Proxy|Check-Valid-Until|Check-Date)( |::)' >> "$WORK/apt.conf" || true
}
APT_CONFIG="$WORK/apt.conf"; export APT_CONFIG

DIST=""
for d in $DISTS; do
  write_conf "$d"
  say "apt-get update ($d) with private config"
  apt-get -q update > "$WORK/log/update.$d" 2>&1 || { cat "$WORK/log/update.$d" >&2; die "apt-get update failed for $d"; }
  if grep -E '^(E|W):' "$WORK/log/update.$d" >&2; then die "apt-get update reported problems for $d"; fi
  if apt-cache show --no-all-versions "$PKG" >/dev/null 2>&1; then DIST=$d; break; fi
  say "$PKG not available in $d"
done
[ -n "$DIST" ] || die "$PKG not found in: $DISTS"

# ---- resolve the shared-library closure ------------------------------------------
# Follow Depends/Pre-Depends only into packages of Section "libs"; debconf/systemd
# (needed by maintainer scripts only) are skipped. The loader check below proves
# that every DT_NEEDED library then resolves inside the prefix.
show() { apt-cache show --no-all-versions "$@" 2>/dev/null || true; }
# "name section" for each name that is a real package (virtual ones print nothing)
sections() { show "$@" | awk '/^Package: /{p=$2} /^Section: /{s=$2}
  /^$/{if(p!="")print p, s; p=""; s=""} END{if(p!="")print p, s}'; }
# dependency groups of the given packages, one per line as "alt1|alt2"
groups() { show "$@" | awk '/^(Pre-)?Depends: /{sub(/^[^:]*: /,""); n=split($0,g,",")
  for(i=1;i<=n;i++){x=g[i]; gsub(/\([^)]*\)/,"",x); gsub(/:any/,"",x); gsub(/[ \t]/,"",x); print x}}' | sort -u; }
[ -n "$(sections "$PKG")" ] || die "$PKG is not a real package in $DIST"
level=$PKG; seen=" $PKG "; list=$PKG
while [ -n "$level" ]; do
  groups $level > "$WORK/groups"
  sections $(tr '|' '\n' < "$WORK/groups" | sort -u) > "$WORK/sections"
  next=""
  while IFS= read -r grp; do
    chosen=""; anyreal=""
    for alt in $(echo "$grp" | tr '|' ' '); do
      sec=$(awk -v p="$alt" '$1==p{print $2; exit}' "$WORK/sections")
      [ -n "$sec" ] || continue
      anyreal=1
      case $sec in libs|*/libs) chosen=$alt; break ;; esac
    done
    if [ -z "$chosen$anyreal" ]; then  # only virtual/missing names
      case "|$grp" in *"|lib"*) die "cannot resolve library dependency '$grp' in $DIST" ;; esac
      say "note: skipping non-library dependency '$grp'"
    fi
    [ -n "$chosen" ] || continue
    case $seen in *" $chosen "*) continue ;; esac
    seen="$seen$chosen "; list="$list $chosen"; next="$next $chosen"
  done < "$WORK/groups"
  level=$next
done
VERSION=$(show "$PKG" | sed -n 's/^Version: //p' | head -n1)
say "$PKG $VERSION from $DIST; packages: $list"

# ---- download (apt checks sizes/hashes against the signed index) ---------------
(cd "$WORK/debs" && apt-get -q download $list) > "$WORK/log/download" 2>&1 ||
  { cat "$WORK/log/download" >&2; die "apt-get download failed"; }
n=$(ls "$WORK/debs"/*.deb | wc -l); set -- $list
[ "$n" -eq "$#" ] || die "expected $# .deb files, got $n"
say "downloaded $n packages, $(du -sk "$WORK/debs" | cut -f1) KiB"

# ---- unpack into a staging dir, verify, then swap into place --------------------
rm -rf "$STAGE"; mkdir -p "$STAGE/root" "$STAGE/bin"
: > "$STAGE/.install-bitcoind.partial"
for deb in "$WORK/debs"/*.deb; do
  dpkg-deb -x "$deb" "$STAGE/root" || die "dpkg-deb -x $deb failed"
done
[ "${BTC_KEEP_DOCS:-0}" = 1 ] || rm -rf "$STAGE/root/usr/share/doc" "$STAGE/root/usr/share/man" \
  "$STAGE/root/usr/share/lintian" "$STAGE/root/usr/share/locale"

LDSO_REL=""
for c in usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 \
         usr/lib64/ld-linux-x86-64.so.2 lib64/ld-linux-x86-64.so.2; do
  if [ -f "$STAGE/root/$c" ] && [ ! -L "$STAGE/root/$c" ]; then LDSO_REL=$c; break; fi
done
[ -n "$LDSO_REL" ] || die "no ld-linux-x86-64.so.2 regular file in the unpacked libc6"
LIBDIRS_REL="usr/lib/x86_64-linux-gnu lib/x86_64-linux-gnu"
libpath() { r=""; for l in $LIBDIRS_REL; do r="${r:+$r:}$1/$l"; done; echo "$r"; }

for t in $TOOLS; do
  [ -x "$STAGE/root/usr/bin/$t" ] || die "$PKG has no usr/bin/$t"
  # every needed library must come from the prefix, none from the host
  "$STAGE/root/$LDSO_REL" --library-path "$(libpath "$STAGE/root")" --list "$STAGE/root/usr/bin/$t" \
    > "$WORK/ldd.$t" 2>&1 || { cat "$WORK/ldd.$t" >&2; die "loader cannot resolve $t"; }
  if grep -E 'not found|=> /' "$WORK/ldd.$t" | grep -v "=> $STAGE/root/" >&2; then
    die "$t would load libraries from outside the prefix (see above)"
  fi
  cat > "$STAGE/bin/$t" <<EOF
#!/bin/sh
# Generated by install-bitcoind.sh: $PKG $VERSION (Debian $DIST) via its own glibc loader.
exec '$PREFIX/root/$LDSO_REL' --library-path '$(libpath "$PREFIX/root")' --argv0 "\$0" '$PREFIX/root/usr/bin/$t' "\$@"
EOF
  chmod 755 "$STAGE/bin/$t"
done
"$STAGE/root/$LDSO_REL" --library-path "$(libpath "$STAGE/root")" "$STAGE/root/usr/bin/bitcoind" -version \
  > "$WORK/version" 2>&1 || { cat "$WORK/version" >&2; die "staged bitcoind does not run"; }
head -n1 "$WORK/version" >&2

printf 'package=%s\nversion=%s\ndist=%s\npackages=%s\n' "$PKG" "$VERSION" "$DIST" "$list" > "$STAGE/$STAMP"
rm -f "$STAGE/.install-bitcoind.partial"
# PREFIX is either empty or ours (checked above)
rm -rf "$PREFIX"
mv "$STAGE" "$PREFIX" || die "could not move $STAGE to $PREFIX"
"$PREFIX/bin/bitcoind" -version >/dev/null 2>&1 ||
  { mv "$PREFIX/$STAMP" "$PREFIX/.install-bitcoind.partial"; die "installed wrapper does not run"; }

AFTER=$(sysdigest)
[ "$BEFORE" = "$AFTER" ] || die "/etc/apt changed during install (before $BEFORE, after $AFTER)"
say "installed $PKG $VERSION ($DIST) into $PREFIX; add $PREFIX/bin to PATH"
