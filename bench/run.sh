#!/bin/bash
# bench/run.sh - run bench/churn under several allocators and print a table.
#
# Every (workload, allocator) measurement is a process of its own, because
# peak RSS belongs to the whole process.  Repetitions are the outer loop and
# the allocators the inner one, in an order that rotates every repetition, so
# noise from the machine (other jobs, frequency changes) hits all of them
# alike.  The table gives the median over the repetitions of each process's
# ns per malloc+free pair (itself the median of -r in-process runs), the
# spread (lowest-highest process), the median CPU time per pair (all
# threads, user+system: unlike wall time it hardly grows when another job
# takes a core away, so it is a second opinion on a noisy machine), and the
# median peak RSS.
#
# On a shared machine, -q waits before each process until other jobs use
# under 10% of the CPUs (for at most the given seconds) and repeats a
# process during which they used more; -N runs the benchmark at another
# niceness.  Both are off by default; the summary line counts the
# runs that other jobs disturbed either way.
#
# Allocators (-a, space-separated):
#   keyheap       LD_PRELOAD of libkeyheap.so, with its built-in defaults
#   keyheap=CONF  the same with MALLOC_CONF=CONF (one row per CONF)
#   jemalloc      LD_PRELOAD of Debian's libjemalloc.so.2, no MALLOC_CONF:
#                 the reference of both ratio columns
#   glibc         no preload
#   mimalloc      LD_PRELOAD of libmimalloc.so.2
# MALLOC_CONF is removed from every run's environment (Debian's jemalloc
# would read it too); give keyheap options with keyheap=CONF or -c CONF.
#
# Each run's reported malloc provider (dladdr of dlsym(RTLD_DEFAULT,
# "malloc")) is checked against the library that was meant; a preload that
# did not take effect stops the run.
set -euo pipefail

usage() {
    cat >&2 <<'EOF'
usage: run.sh [-b CHURN] [-k LIBKEYHEAP] [-j LIBJEMALLOC] [-m LIBMIMALLOC]
              [-n REPS] [-r INPROC_REPS] [-w "WORKLOADS"] [-a "ALLOCATORS"]
              [-c CONF] [-o RAWFILE] [-x "CHURN ARGS"] [-q MAXWAIT] [-N NICE]
  -b  the benchmark program (default ./bench/churn: run from the build dir)
  -k  libkeyheap.so (default: $KEYHEAP_LIB, else ./.libs/libkeyheap.so)
  -j  Debian's jemalloc (default /usr/lib/x86_64-linux-gnu/libjemalloc.so.2)
  -m  mimalloc (default /usr/lib/x86_64-linux-gnu/libmimalloc.so.2)
  -n  processes per (workload, allocator) (default 5)
  -r  in-process repetitions, median taken (default 3)
  -w  workloads as NAME:THREADS (default "churn:1 churn:2 xthread:1
      xthread:2 stress:8")
  -a  allocators (default "keyheap jemalloc glibc mimalloc"); see the header
  -c  MALLOC_CONF for the plain "keyheap" rows
  -o  also keep every raw result line in RAWFILE
  -x  extra arguments for every churn run (e.g. "-n 500000")
  -q  on a shared machine: before each process, wait until other jobs use
      under 10% of the CPUs, for at most MAXWAIT seconds, and run a process
      again (twice at most) if they took more meanwhile (default 0: neither)
  -N  run the benchmark with nice -n NICE (e.g. -5; needs privileges)
EOF
    exit 2
}

die() {
    echo "run.sh: $*" >&2
    exit 1
}

churn=./bench/churn
keyheap_so=${KEYHEAP_LIB:-./.libs/libkeyheap.so}
jemalloc_so=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
mimalloc_so=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2
reps=5
inproc=3
workloads="churn:1 churn:2 xthread:1 xthread:2 stress:8"
allocators="keyheap jemalloc glibc mimalloc"
keyheap_conf=
rawfile=
extra=
maxwait=0
niceness=

while getopts b:k:j:m:n:r:w:a:c:o:x:q:N:h opt; do
    case $opt in
    b) churn=$OPTARG ;;
    k) keyheap_so=$OPTARG ;;
    j) jemalloc_so=$OPTARG ;;
    m) mimalloc_so=$OPTARG ;;
    n) reps=$OPTARG ;;
    r) inproc=$OPTARG ;;
    w) workloads=$OPTARG ;;
    a) allocators=$OPTARG ;;
    c) keyheap_conf=$OPTARG ;;
    o) rawfile=$OPTARG ;;
    x) extra=$OPTARG ;;
    q) maxwait=$OPTARG ;;
    N) niceness=$OPTARG ;;
    *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
[[ $reps =~ ^[1-9][0-9]*$ ]] || die "-n wants a positive count, not '$reps'"
[[ $inproc =~ ^[1-9][0-9]*$ ]] || die "-r wants a positive count, not '$inproc'"
[[ $maxwait =~ ^[0-9]+$ ]] || die "-q wants seconds, not '$maxwait'"
[[ -z $niceness || $niceness =~ ^-?[0-9]+$ ]] || die "-N wants a niceness, not '$niceness'"

if [ -n "${MALLOC_CONF+set}" ]; then
    echo "run.sh: note: MALLOC_CONF='$MALLOC_CONF' is ignored; use -c or keyheap=CONF" >&2
    unset MALLOC_CONF
fi

[ -x "$churn" ] || die "$churn is missing: build it with 'make bench/churn' (or pass -b)"

# need_lib PATH WHAT HOWTO: the library must exist; say how to get it.
need_lib() {
    [ -n "$1" ] || die "$2 not found (configure found none): $3"
    [ -f "$1" ] || die "$2 not found at $1: $3"
}

# The library each allocator name preloads ("" for none), and the file that
# must then provide malloc.
lib_of() {
    case $1 in
    keyheap | keyheap=*) echo "$keyheap_so" ;;
    jemalloc) echo "$jemalloc_so" ;;
    mimalloc) echo "$mimalloc_so" ;;
    glibc) echo "" ;;
    *) die "unknown allocator '$1' (keyheap, keyheap=CONF, jemalloc, glibc, mimalloc)" ;;
    esac
}

have_jemalloc=no
for a in $allocators; do
    case $a in
    keyheap | keyheap=*)
        need_lib "$keyheap_so" "libkeyheap.so" "build keyheap first ('make'), or pass -k" ;;
    jemalloc)
        have_jemalloc=yes
        need_lib "$jemalloc_so" "Debian's jemalloc" "apt-get install libjemalloc2 (or libjemalloc-dev)" ;;
    mimalloc)
        need_lib "$mimalloc_so" "mimalloc" "apt-get install libmimalloc2.0 (or libmimalloc-dev)" ;;
    glibc) ;;
    *) lib_of "$a" >/dev/null ;;
    esac
done
libc_so=$(ldd "$churn" | awk '$1 ~ /^libc\.so/ { print $3 }')
[ -n "$libc_so" ] || die "cannot find the libc of $churn with ldd"
if ldd "$churn" | grep -Eq 'lib(jemalloc|mimalloc|keyheap|tcmalloc)'; then
    die "$churn is linked to an allocator; it must get one only by LD_PRELOAD"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/khbench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# With -o, lines go straight to RAWFILE, so an interrupted run keeps them.
raw=${rawfile:-$tmp/raw}
: >"$raw"

# cpu_sample: "BUSY TOTAL", jiffies of all CPUs so far (/proc/stat).
# Steal counts as busy: it is time someone else had.
cpu_sample() {
    local user nice sys idle iowait irq softirq steal rest
    read -r _ user nice sys idle iowait irq softirq steal rest </proc/stat
    echo "$((user + nice + sys + irq + softirq + steal))" \
         "$((user + nice + sys + idle + iowait + irq + softirq + steal))"
}

# Other jobs may take at most this much of the machine (per mille of all
# CPUs) during a run, whatever its thread count: on a virtual machine two
# vCPUs may be hyperthreads of one core, and then even a 1-thread run slows
# down by half when the other vCPU is busy (measured here).
others_limit=100

# wait_quiet LIMIT: wait until other jobs were under LIMIT per mille of the
# CPUs over 0.3 s, at most maxwait seconds.
wait_quiet() {
    local deadline=$((SECONDS + maxwait)) b0 t0 b1 t1
    while :; do
        read -r b0 t0 < <(cpu_sample)
        sleep 0.3
        read -r b1 t1 < <(cpu_sample)
        [ $(((b1 - b0) * 10000)) -ge $(((t1 - t0) * $1)) ] || return 0
        [ $SECONDS -lt $deadline ] || return 0
        sleep 0.5
    done
}

# run_one WORKLOAD THREADS ALLOCATOR: one process, one raw line appended.
# With -q, a run during which other jobs took more than others_limit is
# made again, at most twice; the line keeps the last attempt, how busy the
# others were (per mille of all CPUs) in "others=", and "disturbed=1" if
# that was more than allowed.
run_one() {
    local w=$1 t=$2 a=$3 lib conf='' out want got attempt b0 t0 b1 t1 mine others
    local limit=$others_limit
    lib=$(lib_of "$a")
    case $a in
    keyheap=*) conf=${a#keyheap=} ;;
    keyheap) conf=$keyheap_conf ;;
    esac
    for ((attempt = 0; ; attempt++)); do
        [ "$maxwait" -eq 0 ] || wait_quiet "$limit"
        read -r b0 t0 < <(cpu_sample)
        # shellcheck disable=SC2086  # $extra is a list of arguments
        if ! out=$(${niceness:+nice -n "$niceness"} \
                   env ${lib:+LD_PRELOAD="$lib"} ${conf:+MALLOC_CONF="$conf"} \
                   "$churn" "$w" "$t" -r "$inproc" $extra); then
            die "churn $w $t failed under $a"
        fi
        read -r b1 t1 < <(cpu_sample)
        mine=$(sed -n 's/.* proc_cpu_ms=\([0-9]*\).*/\1/p' <<<"$out")
        # jiffies are 1/100 s (USER_HZ); the clamp covers their rounding.
        others=$(((b1 - b0) * 10 - ${mine:-0}))
        others=$((others < 0 ? 0 : others * 100 / ((t1 - t0) > 0 ? (t1 - t0) : 1)))
        if [ "$others" -le "$limit" ] || [ "$maxwait" -eq 0 ] || [ $attempt -ge 2 ]; then
            break
        fi
    done
    want=$(readlink -f "${lib:-$libc_so}")
    got=$(sed -n 's/.* malloc_from=\([^ ]*\).*/\1/p' <<<"$out")
    got=$(readlink -f "$got" 2>/dev/null || echo "$got")
    [ "$got" = "$want" ] ||
        die "under $a, malloc came from '$got', not '$want': the preload did not take effect"
    printf '%s others=%s disturbed=%d attempts=%s alloc=%s\n' "$out" "$others" \
        $((others > limit)) $((attempt + 1)) "$a" >>"$raw"
}

read -ra alist <<<"$allocators"
nalloc=${#alist[@]}
start=$SECONDS
echo "run.sh: $reps repetitions x ($workloads) x ($allocators)" >&2
[ -z "$keyheap_conf" ] || echo "run.sh: keyheap rows run with MALLOC_CONF=$keyheap_conf" >&2
for ((rep = 0; rep < reps; rep++)); do
    for wt in $workloads; do
        w=${wt%%:*}
        t=${wt#*:}
        [ "$t" != "$wt" ] || die "workload '$wt' wants the form NAME:THREADS"
        for ((i = 0; i < nalloc; i++)); do
            run_one "$w" "$t" "${alist[(i + rep) % nalloc]}"
        done
    done
    echo "run.sh: repetition $((rep + 1))/$reps done after $((SECONDS - start)) s" >&2
done
# How many runs other jobs disturbed, and where the host had put the two
# vCPUs (cache-line round trip between them, before and after each
# multi-thread run: under 300 ns they are near, e.g. sibling hyperthreads).
awk '{ for (i = 1; i <= NF; i++) {
           if ($i ~ /^attempts=/) again += substr($i, 10) - 1
           if ($i == "disturbed=1") busy++
           if ($i ~ /^xcore_rtt_ns=[0-9]/) {
               split(substr($i, 14), r, ",")
               probes += 2; near += (r[1] < 300) + (r[2] < 300)
           } } }
     END { printf "run.sh: %d runs; %d re-run because other jobs were busy; " \
                  "%d kept although other jobs competed for the CPUs\n", NR, again, busy
           if (probes)
               printf "run.sh: vCPU placement: %d of %d probes found the two " \
                      "CPUs near (round trip < 300 ns), the rest far\n", near, probes }' \
    "$raw" >&2

# The table.  For each (workload, threads, allocator): median ns/op, the
# lowest and highest process, and the median peak RSS; ratios to jemalloc's
# medians when jemalloc was measured.
awk -v order="$allocators" -v wlist="$workloads" -v haveje="$have_jemalloc" '
function field(k,   i) {
    for (i = 1; i <= NF; i++)
        if (index($i, k "=") == 1)
            return substr($i, length(k) + 2)
    return ""
}
function median(list,   n, v, i, j, x) {
    n = split(list, v, " ")
    for (i = 2; i <= n; i++) {          # insertion sort, n is small
        x = v[i] + 0
        for (j = i - 1; j >= 1 && v[j] + 0 > x; j--)
            v[j + 1] = v[j]
        v[j + 1] = x
    }
    lo = v[1]; hi = v[n]
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
{
    key = field("workload") ":" field("threads") SUBSEP field("alloc")
    ns[key] = ns[key] " " field("ns_per_op")
    cpu[key] = cpu[key] " " field("cpu_ns_per_op")
    rss[key] = rss[key] " " field("maxrss_kib")
}
END {
    print "| workload | threads | allocator | ns/op | spread | ratio to jemalloc | CPU ns/op | peak RSS MiB | RSS ratio to jemalloc |"
    print "|---|---|---|---:|---:|---:|---:|---:|---:|"
    nw = split(wlist, ws, " ")
    na = split(order, as, " ")
    for (i = 1; i <= nw; i++) {
        split(ws[i], wt, ":")
        jkey = ws[i] SUBSEP "jemalloc"
        if (haveje == "yes") {
            jns = median(ns[jkey]); jrss = median(rss[jkey])
        }
        for (j = 1; j <= na; j++) {
            key = ws[i] SUBSEP as[j]
            m = median(ns[key]); spread = sprintf("%.1f-%.1f", lo, hi)
            c = median(cpu[key])
            r = median(rss[key]) / 1024
            nr = haveje == "yes" ? sprintf("%.2f", m / jns) : "-"
            rr = haveje == "yes" ? sprintf("%.2f", r * 1024 / jrss) : "-"
            printf "| %s | %s | %s | %.1f | %s | %s | %.1f | %.1f | %s |\n", \
                wt[1], wt[2], as[j], m, spread, nr, c, r, rr
        }
    }
}' "$raw"
echo "run.sh: done in $((SECONDS - start)) s" >&2
