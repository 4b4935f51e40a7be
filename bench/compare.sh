#!/bin/bash
# bench/compare.sh - the one comparison table of `make bench`.
#
# It measures nothing itself: it joins, from the same `make bench` run,
#   - bench/domain's rows (-d: the file its -o wrote): enter+leave against a
#     raw RDPKRU+WRPKRU+WRPKRU sequence, glibc's pkey_set pair, an mprotect
#     pair and libsodium's sodium_mprotect_readwrite/noaccess pair; malloc+free
#     in a domain against jemalloc's explicit arena, sodium_malloc/sodium_free
#     and OPENSSL_secure_malloc/OPENSSL_secure_free.  Each row there is a
#     process of its own, with its own peak RSS;
#   - bench/run.sh's raw lines (-r: the file its -o wrote) for the churn
#     workload at 1 and 2 threads: plain malloc under keyheap (LD_PRELOAD),
#     Debian's jemalloc, glibc and mimalloc, one process per measurement;
# and prints one markdown table (ns/op, spread, ratio to the group's
# reference, peak RSS), writes it to OUTDIR/compare.md with a description of
# the machine, and draws OUTDIR/compare.svg with gnuplot when there is one.
#
# References: enter+leave against the raw WRPKRU pair; on a CPU without PKU
# the key-based rows say "needs PKU" and the ratios are to the mprotect pair
# instead (the table says which).  Domain malloc+free against jemalloc's
# explicit arena + thread cache.  Plain malloc against Debian's jemalloc at
# the same thread count.
set -euo pipefail

usage() {
    echo "usage: compare.sh -d DOMAIN_TSV -r CHURN_RAW [-o OUTDIR] [-g GNUPLOT] [-c 'COMMAND']" >&2
    exit 2
}

domain_tsv=
churn_raw=
outdir=bench/results
gnuplot=$(command -v gnuplot || true)
command_line='make bench'
while getopts d:r:o:g:c:h opt; do
    case $opt in
    d) domain_tsv=$OPTARG ;;
    r) churn_raw=$OPTARG ;;
    o) outdir=$OPTARG ;;
    g) gnuplot=$OPTARG ;;
    c) command_line=$OPTARG ;;
    *) usage ;;
    esac
done
if [ -z "$domain_tsv" ] || [ -z "$churn_raw" ]; then usage; fi
command_line=${command_line% BENCH_FLAGS=\"\"}
[ -s "$domain_tsv" ] || { echo "compare.sh: $domain_tsv is missing or empty (run bench/domain -o)" >&2; exit 1; }
[ -s "$churn_raw" ] || { echo "compare.sh: $churn_raw is missing or empty (run bench/run.sh -o)" >&2; exit 1; }
mkdir -p "$outdir"

# The machine, for the markdown file.
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
ncpu=$(nproc)
if grep -qw pku /proc/cpuinfo && grep -qw ospke /proc/cpuinfo; then pku=yes; else pku=no; fi
kernel=$(uname -r)
glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null || echo "glibc ?")
when=$(date -u '+%Y-%m-%d %H:%M UTC')

# rows.tsv: group, what, ns, spread, ratio, peak RSS MiB, status (ok, needs
# PKU, not built, not run), chart label.  One line per table row.
rows=$outdir/compare.rows
awk -F'\t' -v OFS='\t' -v pku="$pku" '
FILENAME == ARGV[1] {
    # bench/domain: part, id, status, ns, lo, hi, rss_kib, reference, name
    n++; part[n] = $1; st[n] = $3; ns[n] = $4; lo[n] = $5; hi[n] = $6
    rss[n] = $7; name[n] = $9; label[n] = ($2 in short ? short[$2] : $9)
    if ($8 == 1) ref[$1] = $4
    if ($8 == 1) refname[$1] = $9
    next
}
function field(k,   i) {
    for (i = 1; i <= NF; i++)
        if (index($i, k "=") == 1)
            return substr($i, length(k) + 2)
    return ""
}
function median(list,   m, v, i, j, x) {
    m = split(list, v, " ")
    for (i = 2; i <= m; i++) {
        x = v[i] + 0
        for (j = i - 1; j >= 1 && v[j] + 0 > x; j--)
            v[j + 1] = v[j]
        v[j + 1] = x
    }
    mlo = v[1]; mhi = v[m]
    return m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
}
{
    # bench/run.sh raw lines (space-separated key=value)
    FS = " "; $0 = $0
    w = field("workload"); t = field("threads"); a = field("alloc")
    if (w != "churn" || (t != 1 && t != 2))
        next
    if (!((t, a) in seen)) { seen[t, a] = 1; order[t] = order[t] " " a }
    cns[t, a] = cns[t, a] " " field("ns_per_op")
    crss[t, a] = crss[t, a] " " field("maxrss_kib")
}
BEGIN {
    # the chart has less room
    short["raw"] = "raw RDPKRU+WRPKRU pair"; short["enter"] = "keyheap enter+leave"
    short["mprotect"] = "mprotect pair"; short["sodium_mprotect"] = "sodium_mprotect pair"
    short["jemalloc"] = "jemalloc explicit arena"; short["noscrub"] = "domain, NOSCRUB"
    short["scrub"] = "domain, scrubbing"; short["sodium_malloc"] = "sodium_malloc/free"
    short["openssl_secure"] = "OPENSSL_secure_malloc/free"
}
END {
    ga = pku == "yes" ? "enter+leave (ratio to the raw WRPKRU pair)" \
                      : "enter+leave (ratio to the mprotect pair: no PKU here)"
    gb = "domain malloc+free (ratio to jemalloc explicit arena)"
    for (i = 1; i <= n; i++) {
        g = part[i] == "a" ? ga : gb
        if (st[i] != "ok") {
            print g, name[i], st[i], "-", st[i], st[i], st[i], label[i]
            continue
        }
        r = ref[part[i]]
        print g, name[i], sprintf("%.1f", ns[i]), sprintf("%.1f-%.1f", lo[i], hi[i]),
              (r == "-" || r == "" ? "-" : sprintf("%.2f", ns[i] / r)),
              sprintf("%.1f", rss[i] / 1024), "ok", label[i]
    }
    for (t = 1; t <= 2; t++) {
        g = "plain malloc, churn, " t (t == 1 ? " thread" : " threads") " (ratio to jemalloc)"
        if (!((t, "jemalloc") in seen)) {
            print g, "(churn:" t " was not run)", "not run", "-", "not run", "not run", "not run", "churn:" t
            continue
        }
        jns = median(cns[t, "jemalloc"])
        m = split(substr(order[t], 2), al, " ")
        for (j = 1; j <= m; j++) {
            a = al[j]
            v = median(cns[t, a]); sp = sprintf("%.1f-%.1f", mlo, mhi)
            rs = median(crss[t, a]) / 1024
            what = (a == "glibc" ? "glibc malloc" : a == "jemalloc" ? "Debian jemalloc" : \
                    a == "mimalloc" ? "mimalloc" : a " (LD_PRELOAD)")
            print g, what, sprintf("%.1f", v), sp, sprintf("%.2f", v / jns),
                  sprintf("%.1f", rs), "ok", (a == "keyheap" ? "keyheap" : what) ", " t " thr"
        }
    }
}' "$domain_tsv" "$churn_raw" >"$rows"

table() {
    echo "| comparison | what | ns/op | spread | ratio | peak RSS MiB |"
    echo "|---|---|---:|---:|---:|---:|"
    awk -F'\t' '{
        g = ($1 == last ? "" : $1); last = $1
        printf "| %s | %s | %s | %s | %s | %s |\n", g, $2, $3, $4, $5, $6
    }' "$rows"
}

md=$outdir/compare.md
{
    echo "# keyheap: comparison (\`$command_line\`)"
    echo
    echo "Measured on $when: $cpu, $ncpu CPUs, PKU: $pku, Linux $kernel, $glibc."
    echo "Every figure comes from the same run on the same machine.  ns/op is the"
    echo "median over processes (spread: lowest-highest process); peak RSS is the"
    echo "median VmHWM / ru_maxrss of the row's own process, program and libraries"
    echo "included.  Ratios are to the reference named in each group's first cell;"
    echo "figures that need a CPU with PKU say \"needs PKU\" on a CPU without it."
    [ "$pku" = yes ] || echo "This machine has no PKU: domains ran with \`KEYHEAP_CONF=unprotected:true\`."
    awk '/workload=churn threads=[12] / { n++; if (/ disturbed=1 /) d++ }
         END { if (n) printf "Other jobs took more than 10%% of the CPUs during %d of the %d " \
                             "plain-malloc processes (bench/run.sh'"'"'s count; -q waits for a quiet machine).\n", d, n }' "$churn_raw"
    echo
    table
} >"$md"

echo
echo "## Comparison (one table; every figure from this run)"
echo
table
echo
echo "compare.sh: the table with the machine's description is in $md"

# The chart: ns/op on a log scale and peak RSS, one bar per measured row.
svg=$outdir/compare.svg
if [ -z "$gnuplot" ]; then
    echo "compare.sh: gnuplot not installed, no chart (apt-get install gnuplot-nox)"
    rm -f "$svg"
    exit 0
fi
dat=$outdir/compare.dat
awk -F'\t' -v OFS='\t' '{
    if ($1 != last) { grp++; last = $1 }
    i++
    ns = ($7 == "ok" ? $3 : "?"); rss = ($7 == "ok" ? $6 : "?")
    note = ($7 == "ok" ? "-" : $7)
    print i, grp, $8, ns, rss, note
}' "$rows" >"$dat"
# One key entry per group, in its bar colour.
keys=$(awk -F'\t' '$1 != last { last = $1; g++; sub(/ \(.*/, "", $1)
                   printf ", keyentry with boxes lc %d title \"%s\"", g, $1 }' "$rows")
nrows=$(wc -l <"$dat")
height=$((110 + 24 * nrows))
"$gnuplot" <<EOF
set terminal svg size 1100,$height dynamic font "sans,11" background "white"
set output "$svg"
set datafile separator "\t"
set datafile missing "?"
set termoption noenhanced
set multiplot layout 1,2 title "keyheap comparison, $cpu ($ncpu CPUs, PKU: $pku), $when"
set yrange [$nrows + 0.7:0.3]
set ytics nomirror scale 0
set grid xtics
set key inside right bottom vertical samplen 1.5 font ",10" box opaque
set tmargin at screen 1 - 40.0 / $height
set bmargin at screen 60.0 / $height
set style fill solid 0.8 border -1
set lmargin at screen 0.22
set rmargin at screen 0.75
set logscale x 10
set xrange [1:*]
set xlabel "ns per operation (log scale)"
plot "$dat" using (sqrt(\$4)):1:(1):4:(\$1-0.38):(\$1+0.38):2:ytic(3) with boxxyerror lc variable notitle, \
     "" using 4:1:(sprintf(" %.1f", \$4)) with labels left font ",9" notitle, \
     "" using (1.1):1:(strcol(6) eq "-" ? "" : strcol(6)) with labels left font ",9" tc "gray40" notitle \
     $keys
unset logscale x
set lmargin at screen 0.79
set rmargin at screen 0.98
set xrange [0:*]
set format y ""
set xlabel "peak RSS MiB (whole process)"
unset key
plot "$dat" using (\$5/2):1:(0):5:(\$1-0.38):(\$1+0.38):2 with boxxyerror lc variable
unset multiplot
EOF
echo "compare.sh: the bar chart is in $svg"
