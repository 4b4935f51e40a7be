#!/bin/sh
# tests/check_scan.sh - keyheap-scan(1), from files built here:
#  - tests/scan/gadgets.s (WRPKRU at an instruction start, inside an imm32,
#    inside a disp32, inside a push's imm32 in a local function; XRSTOR
#    without REX, with REX.B, XRSTOR64; LFENCE, which is not a finding)
#    as a shared object, its stripped copy (.dynsym names, "-" for the local
#    one), a non-PIE executable (file offset != address) and its stripped
#    copy (no symbols at all: linear decoding, so the WRPKRU that begins
#    f_after is inside the mov opcode that ends f_tail, and the one after
#    the one-byte f_cut, which no symbol covers, inside f_cut's): the exact
#    lines and exit 1; with a forged
#    .keyheap_wrpkru table (tests/scan/forged_table.s) naming also the
#    embedded WRPKRU and an XRSTOR, only the real WRPKRU is keyheap's;
#  - tests/scan/kh_only.c, a program whose only WRPKRUs are keyheap's inline
#    enters and leaves: exit 0, each recognised (-v) at the addresses where
#    objdump shows a wrpkru; also after Debian's strip; and its twin, the
#    same program without the .keyheap_wrpkru table: exit 1, each reported;
#  - exit 2: a missing file, a file that is not ELF, a truncated ELF file,
#    a bad --pid;
#  - keyheap_scan_self() and KEYHEAP_CONF=scan:true in a program with the
#    gadgets (tests/scan/self.c), with its twin without scan:true;
#  - --pid on a running program (tests/scan/child.c with gadgets.s): its
#    mappings listed by path, the findings at its run-time addresses;
#  - the decoder against objdump -d on tests/scan/encodings.s (forms
#    chosen for their lengths: immediates by opcode, 66, REX.W, moffs,
#    SIB, the maps, VEX, EVEX, XOP), libc.so.6, libcrypto.so.3 and
#    libkeyheap.so (tests/scan/objdump_compare.c): every instruction start
#    the same.
# Needs no protection keys.  Prints PASS/FAIL lines and "N passed, N failed".

srcdir=${KEYHEAP_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
builddir=${KEYHEAP_BUILDDIR:-.}
builddir=$(cd "$builddir" && pwd)
scan=$builddir/tools/keyheap-scan
compare=$builddir/tests/scan/objdump_compare
lib=${KEYHEAP_LIB:-$builddir/.libs/libkeyheap.so}
cc=${KEYHEAP_CC:-cc}
for tool in "$scan" "$compare"; do
	[ -x "$tool" ] || { echo "keyheap: check_scan: $tool is not built"; exit 99; }
done
for tool in objdump nm readelf strip objcopy; do
	command -v $tool >/dev/null 2>&1 || { echo "keyheap: check_scan: needs $tool (binutils)"; exit 99; }
done
d=$(mktemp -d "${TMPDIR:-/tmp}/check_scan.XXXXXX") || exit 99
d=$(cd "$d" && pwd -P)
child_pid=
cleanup() {
	exec 3>&- 4<&- 2>/dev/null
	[ -n "$child_pid" ] && wait "$child_pid" 2>/dev/null
	rm -rf "$d"
}
trap cleanup EXIT

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
# same WHAT WANT-FILE GOT-FILE: exact comparison, with a diff on failure
same() {
	if cmp -s "$2" "$3"; then
		pass "$1"
	else
		fail "$1"
		diff -u "$2" "$3" | sed 's/^/    /'
	fi
}
blind=$("$scan" /dev/null 2>/dev/null | grep '^keyheap-scan: not seen: ')
[ -n "$blind" ] || blind='keyheap-scan: not seen: (missing)'

# seg FILE: "OFFSET VADDR" of the executable PT_LOAD segment (one here)
seg() { readelf -lW "$1" | awk '$1 == "LOAD" && / E / { print $2, $3; exit }'; }
# sym FILE NAME: the symbol's address (.symtab)
sym() { nm "$1" | awk -v n="$2" '$3 == n { print "0x" $1; exit }'; }
# at FILE NAME OFF: "offset 0x.. vaddr 0x.." of NAME+OFF in FILE
at() {
	set -- "$1" "$2" "$3" $(seg "$1") "$(sym "$1" "$2")"
	printf 'offset 0x%x vaddr 0x%x' $(($6 + $3 - $5 + $4)) $(($6 + $3))
}
addr() { printf '0x%x' $(($(sym "$1" "$2") + $3)); }

# The lines for the gadgets in FILE (named as PATH in the output);
# NAMES: "all" (every symbol), "global" (.dynsym: f_local is "-"), "none".
gadget_lines() {
	f=$1 p=$2 names=$3
	name() { # name SYMBOL OFF
		case $names in
		all) echo "$1+0x$2" ;;
		global) if [ "$1" = f_local ]; then echo -; else echo "$1+0x$2"; fi ;;
		none) echo - ;;
		esac
	}
	where() { # where SYMBOL: the embedding instruction at SYMBOL+0
		n=$(name "$1" 0)
		if [ "$n" = - ]; then addr "$f" "$1" 0; else echo "$n"; fi
	}
	echo "$p: $(at "$f" f_start 1) $(name f_start 1): wrpkru instruction"
	echo "$p: $(at "$f" f_imm 1) $(name f_imm 1): wrpkru embedded (in the 5-byte instruction at $(where f_imm): b8 0f 01 ef 00)"
	echo "$p: $(at "$f" f_disp 2) $(name f_disp 2): wrpkru embedded (in the 6-byte instruction at $(where f_disp): 8b 88 0f 01 ef 00)"
	echo "$p: $(at "$f" f_xrstor 0) $(name f_xrstor 0): xrstor instruction"
	echo "$p: $(at "$f" f_xrstor64 0) $(name f_xrstor64 0): xrstor64 instruction"
	echo "$p: $(at "$f" f_xrstor_rexb 0) $(name f_xrstor_rexb 0): xrstor instruction"
	echo "$p: $(at "$f" f_local 1) $(name f_local 1): wrpkru embedded (in the 5-byte instruction at $(where f_local): 68 0f 01 ef 00)"
	if [ "$names" = none ]; then
		echo "$p: $(at "$f" f_after 0) -: wrpkru embedded (in the 5-byte instruction at $(addr "$f" f_tail 0): b8 0f 01 ef c3)"
		echo "$p: $(at "$f" f_cut 1) -: wrpkru embedded (in the 5-byte instruction at $(addr "$f" f_cut 0): b8 0f 01 ef c3)"
	else
		echo "$p: $(at "$f" f_after 0) $(name f_after 0): wrpkru instruction"
		echo "$p: $(at "$f" f_cut 1) -: wrpkru instruction"
	fi
}

# ------------------------------------------------------------ the gadgets
cd "$d" || exit 99
if ! $cc -shared -nostdlib -o gadgets.so "$srcdir/tests/scan/gadgets.s" ||
	! $cc -no-pie -nostdlib -Wl,-e,f_start -o gadgets.exe "$srcdir/tests/scan/gadgets.s"; then
	echo "keyheap: check_scan: cannot build tests/scan/gadgets.s"
	exit 99
fi
strip -o gadgets.stripped.so gadgets.so
strip -o gadgets.stripped.exe gadgets.exe

for v in "gadgets.so all" "gadgets.stripped.so global" "gadgets.exe all" "gadgets.stripped.exe none"; do
	set -- $v
	# symbols of the unstripped copy give the places; the output names $1
	src=$(echo "$1" | sed 's/\.stripped//')
	{
		gadget_lines "$src" "$1" "$2"
		echo "keyheap-scan: 9 findings, 0 of keyheap's own WRPKRUs"
		echo "$blind"
	} >"$1.want"
	"$scan" "$1" >"$1.out" 2>"$1.err"
	status=$?
	same "keyheap-scan $1 ($2 symbols): the exact lines" "$1.want" "$1.out"
	[ "$status" = 1 ] && ! [ -s "$1.err" ] && pass "keyheap-scan $1: exit 1, nothing on stderr" ||
		fail "keyheap-scan $1: exit $status (want 1), stderr: $(cat "$1.err")"
done
# A table entry makes only a WRPKRU that begins an instruction keyheap's
# own: not bytes embedded in an immediate, not an XRSTOR; 0 is ignored.
if $cc -shared -nostdlib -o forged.so "$srcdir/tests/scan/gadgets.s" "$srcdir/tests/scan/forged_table.s"; then
	{
		gadget_lines forged.so forged.so all | grep -v ' f_start+0x1: '
		echo "keyheap-scan: 8 findings, 1 of keyheap's own WRPKRUs"
		echo "$blind"
	} >forged.want
	"$scan" forged.so >forged.out 2>&1
	status=$?
	same "a forged table: only f_start's real WRPKRU is taken as keyheap's own" forged.want forged.out
	[ "$status" = 1 ] && pass "a forged table: exit 1" || fail "a forged table: exit $status (want 1)"
else
	fail "cannot build tests/scan/forged_table.s"
fi

# the places themselves, from objdump (not from the scanner's own tables)
objdump -d gadgets.exe | awk '/\t(wrpkru|xrstor|lfence)/ { sub(":", "", $1); print $1 }' >places.objdump
want_places="$(printf '%x %x %x %x %x %x' $(($(sym gadgets.exe f_start) + 1)) \
	$(sym gadgets.exe f_xrstor) $(sym gadgets.exe f_xrstor64) $(sym gadgets.exe f_xrstor_rexb) \
	$(sym gadgets.exe f_lfence) $(sym gadgets.exe f_after))"
[ "$(echo $(cat places.objdump))" = "$want_places" ] &&
	pass "objdump agrees on where the WRPKRUs, XRSTORs and LFENCE of gadgets.s begin: $want_places" ||
	fail "objdump's places: $(echo $(cat places.objdump)), want $want_places"

# ------------------------------------------------------------ keyheap only
if ! $cc -O2 -I"$srcdir/include" -o kh_only "$srcdir/tests/scan/kh_only.c" ${KEYHEAP_LDFLAGS-} "$lib" \
	-Wl,-rpath,"$(dirname "$lib")"; then
	echo "keyheap: check_scan: cannot build tests/scan/kh_only.c"
	exit 99
fi
objdump -d kh_only | awk '/\twrpkru/ { sub(":", "", $1); print $1 }' >kh.places
n=$(wc -l <kh.places)
if [ "$n" -ge 4 ]; then
	pass "kh_only has $n WRPKRUs (objdump), two enters and two leaves inlined at least"
else
	fail "kh_only has $n WRPKRUs (objdump): want 4 or more"
fi
readelf -SW kh_only | grep -q ' \.keyheap_wrpkru ' &&
	readelf -SW kh_only | awk '/ \.keyheap_wrpkru / { exit !($0 !~ / A /) }' &&
	pass "kh_only has a .keyheap_wrpkru section, not allocated (no A flag)" ||
	fail "kh_only: .keyheap_wrpkru missing or allocated: $(readelf -SW kh_only | grep keyheap_wrpkru)"
readelf -rW kh_only | grep -q keyheap_wrpkru &&
	fail "kh_only: a dynamic relocation refers to .keyheap_wrpkru" ||
	pass "no dynamic relocation refers to .keyheap_wrpkru"
cp kh_only kh_only.deb
strip --strip-unneeded --remove-section=.comment --remove-section=.note kh_only.deb
objcopy --remove-section=.keyheap_wrpkru kh_only kh_only.notable
for f in kh_only kh_only.deb; do
	{
		echo "keyheap-scan: 0 findings, $n of keyheap's own WRPKRUs"
		echo "$blind"
	} >"$f.want"
	"$scan" "$f" >"$f.out" 2>&1
	status=$?
	same "keyheap-scan $f: no finding, the $n WRPKRUs counted as keyheap's own" "$f.want" "$f.out"
	[ "$status" = 0 ] && pass "keyheap-scan $f: exit 0" || fail "keyheap-scan $f: exit $status (want 0)"
	"$scan" -v "$f" | sed -n 's/^[^:]*: offset 0x[0-9a-f]* vaddr 0x\([0-9a-f]*\) [^ ]*: wrpkru keyheap (keyheap.s own enter\/leave)$/\1/p' \
		>"$f.v"
	same "keyheap-scan -v $f: one \"wrpkru keyheap\" line at each of objdump's wrpkru" kh.places "$f.v"
done
"$scan" kh_only.notable >notable.out 2>&1
status=$?
sed -n 's/^kh_only.notable: offset 0x[0-9a-f]* vaddr 0x\([0-9a-f]*\) [^ ]*: wrpkru instruction$/\1/p' \
	notable.out >notable.places
same "twin: without .keyheap_wrpkru, each of the $n WRPKRUs is a finding" kh.places notable.places
[ "$status" = 1 ] && pass "twin: exit 1" || fail "twin: exit $status (want 1)"

# ------------------------------------------------------------ errors
"$scan" "$d/missing" >missing.out 2>missing.err
status=$?
[ "$status" = 2 ] && [ "$(cat missing.err)" = "keyheap-scan: $d/missing: No such file or directory" ] &&
	pass "a missing file: exit 2, 'keyheap-scan: FILE: No such file or directory'" ||
	fail "a missing file: exit $status, stderr '$(cat missing.err)'"
cp "$srcdir/tests/scan/gadgets.s" text.s
"$scan" text.s >text.out 2>text.err
status=$?
[ "$status" = 2 ] && [ "$(cat text.err)" = "keyheap-scan: text.s: not an ELF file" ] &&
	pass "a file that is not ELF: exit 2, 'keyheap-scan: text.s: not an ELF file'" ||
	fail "not ELF: exit $status, stderr '$(cat text.err)'"
head -c 200 gadgets.so >cut.so
"$scan" cut.so >cut.out 2>cut.err
status=$?
[ "$status" = 2 ] && grep -q '^keyheap-scan: cut.so: .* out of the file$' cut.err &&
	pass "a truncated ELF file: exit 2, $(cat cut.err)" ||
	fail "truncated: exit $status, stderr '$(cat cut.err)'"
"$scan" "$d/missing" gadgets.so >mixed.out 2>mixed.err
status=$?
[ "$status" = 2 ] && [ "$(grep -c '^gadgets.so: ' mixed.out)" = 9 ] &&
	pass "a missing file and gadgets.so: exit 2, the 9 findings still printed" ||
	fail "mixed: exit $status, $(grep -c '^gadgets.so: ' mixed.out) findings"
"$scan" --pid 0x12 >badpid.out 2>badpid.err
status=$?
[ "$status" = 2 ] && [ "$(cat badpid.err)" = "keyheap-scan: --pid 0x12: not a process id" ] &&
	pass "--pid 0x12: exit 2, not a process id" || fail "--pid 0x12: exit $status, '$(cat badpid.err)'"

# ------------------------------------------------------------ --pid
if ! $cc -O2 -o child "$srcdir/tests/scan/child.c" "$srcdir/tests/scan/gadgets.s"; then
	echo "keyheap: check_scan: cannot build tests/scan/child.c"
	exit 99
fi
mkfifo in out || exit 99
./child <in >out &
child_pid=$!
exec 3>in 4<out
read -r ready <&4
[ "$ready" = ready ] || { echo "keyheap: check_scan: the child did not start"; exit 99; }
"$scan" --pid "$child_pid" >pid.out 2>pid.err
status=$?
cp "/proc/$child_pid/maps" child.maps
exec 3>&- 4<&-
wait "$child_pid"
child_status=$?
child_pid=
[ "$child_status" = 0 ] && pass "the child ran to its end (exit 0)" || fail "the child exited $child_status"
# the child's executable mapping, and the run-time place of each gadget
set -- $(awk -v p="$d/child" '$6 == p && $2 ~ /x/ { split($1, r, "-"); print r[1], r[2], $2, $3; exit }' child.maps)
if [ $# = 4 ]; then
	start=0x$1 end=0x$2 perms=$3 mapoff=0x$4
	grep -qxF "keyheap-scan: scanned $d/child ($start-$end $perms)" pid.out &&
		pass "--pid lists the child's executable mapping: keyheap-scan: scanned $d/child ($start-$end $perms)" ||
		fail "--pid: no line 'keyheap-scan: scanned $d/child ($start-$end $perms)'"
	# rt NAME OFF: offset and run-time address of NAME+OFF
	rt() {
		set -- "$1" "$2" $(seg child) "$(sym child "$1")"
		off=$(($5 + $2 - $4 + $3))
		printf 'offset 0x%x vaddr 0x%x' $off $((start + off - mapoff))
	}
	{
		echo "$d/child: $(rt f_start 1) f_start+0x1: wrpkru instruction"
		echo "$d/child: $(rt f_imm 1) f_imm+0x1: wrpkru embedded (in the 5-byte instruction at f_imm+0x0: b8 0f 01 ef 00)"
		echo "$d/child: $(rt f_disp 2) f_disp+0x2: wrpkru embedded (in the 6-byte instruction at f_disp+0x0: 8b 88 0f 01 ef 00)"
		echo "$d/child: $(rt f_xrstor 0) f_xrstor+0x0: xrstor instruction"
		echo "$d/child: $(rt f_xrstor64 0) f_xrstor64+0x0: xrstor64 instruction"
		echo "$d/child: $(rt f_xrstor_rexb 0) f_xrstor_rexb+0x0: xrstor instruction"
		echo "$d/child: $(rt f_local 1) f_local+0x1: wrpkru embedded (in the 5-byte instruction at f_local+0x0: 68 0f 01 ef 00)"
		echo "$d/child: $(rt f_after 0) f_after+0x0: wrpkru instruction"
		echo "$d/child: $(rt f_cut 1) -: wrpkru instruction"
	} >pid.want
	grep "^$d/child: " pid.out >pid.got
	same "--pid: the child's 9 findings at its run-time addresses" pid.want pid.got
else
	fail "no executable mapping of $d/child in its maps"
fi
libc=$(awk '$6 ~ /\/libc\.so\.6$/ && $2 ~ /x/ { print $6; exit }' child.maps)
[ -n "$libc" ] && grep -q "^keyheap-scan: scanned $libc (0x[0-9a-f]*-0x[0-9a-f]* r-xp)$" pid.out &&
	pass "--pid lists libc's executable mapping by path ($libc)" || fail "--pid: libc not listed"
grep -q '^keyheap-scan: scanned \[vdso\] (' pid.out && pass "--pid scans the vDSO" ||
	fail "--pid: the vDSO not listed as scanned"
nx=$(awk '$2 ~ /x/' child.maps | wc -l)
nl=$(grep -c '^keyheap-scan: \(not \)\{0,1\}scanned' pid.out)
[ "$nx" = "$nl" ] && pass "--pid: one scanned/not scanned line per executable mapping ($nx)" ||
	fail "--pid: $nl mapping lines for $nx executable mappings"
[ "$status" = 1 ] && [ "$(tail -n 1 pid.out)" = "$blind" ] && ! [ -s pid.err ] &&
	pass "--pid: exit 1, ends with the note on what it cannot see, nothing on stderr" ||
	fail "--pid: exit $status, last line '$(tail -n 1 pid.out)', stderr '$(cat pid.err)'"

# ------------------------------------------------------------ keyheap_scan_self
if ! $cc -O2 -I"$srcdir/include" -o self "$srcdir/tests/scan/self.c" "$srcdir/tests/scan/gadgets.s" \
	${KEYHEAP_LDFLAGS-} "$lib" -Wl,-rpath,"$(dirname "$lib")"; then
	echo "keyheap: check_scan: cannot build tests/scan/self.c"
	exit 99
fi
# self_lines OUT: the "keyheap: scan:" lines expected for self's gadgets,
# placed by the address of f_start that self printed first in OUT
self_lines() {
	delta=$(($(head -n 1 "$1") - $(sym self f_start)))
	gadget_lines self "$d/self" all | while IFS= read -r l; do
		v=$(echo "$l" | sed 's/.* vaddr \(0x[0-9a-f]*\) .*/\1/')
		echo "keyheap: scan: $l" | sed "s/ vaddr $v / vaddr $(printf '0x%x' $((v + delta))) /"
	done
}
KEYHEAP_CONF=pku:off,unprotected:true ./self >self.out 2>self.err
status=$?
self_lines self.out >self.want
grep "^keyheap: scan: $d/self: " self.err >self.got
same "keyheap_scan_self(): one 'keyheap: scan:' line per gadget of the program, at its addresses" self.want self.got
found=$(grep -c '^keyheap: scan: /' self.err)
[ "$status" = 0 ] && [ "$(sed -n 2p self.out)" = "$found" ] && [ "$found" -ge 9 ] &&
	pass "keyheap_scan_self() returns the number of findings it printed ($found)" ||
	fail "keyheap_scan_self(): exit $status, returned $(sed -n 2p self.out), printed $found"
libkh=$(readlink -f "$lib")
grep "^keyheap: scan: $libkh: .*: wrpkru instruction$" self.err >self.own
[ -s self.err ] && ! [ -s self.own ] &&
	pass "keyheap_scan_self(): none of libkeyheap's own WRPKRUs reported" ||
	fail "keyheap_scan_self() reports libkeyheap's own WRPKRUs: $(cat self.own)"
KEYHEAP_CONF=pku:off,unprotected:true,scan:true ./self create >conf.out 2>conf.err
status=$?
self_lines conf.out >conf.want
grep "^keyheap: scan: $d/self: " conf.err >conf.got
same "KEYHEAP_CONF=scan:true: the same lines, once, at the first of two domains created" conf.want conf.got
[ "$status" = 0 ] && [ "$(sed -n 2p conf.out)" = 0 ] && pass "scan:true: the program ran to its end" ||
	fail "scan:true: exit $status, stdout $(cat conf.out)"
KEYHEAP_CONF=pku:off,unprotected:true ./self create >noconf.out 2>noconf.err
[ $? = 0 ] && ! grep -q '^keyheap: scan' noconf.err &&
	pass "twin: without scan:true no scan at domain creation" ||
	fail "without scan:true: $(cat noconf.err)"

# ------------------------------------------------------------ the decoder
# Forms chosen for their lengths (tests/scan/encodings.s), then real libraries.
if $cc -shared -nostdlib -o encodings.so "$srcdir/tests/scan/encodings.s"; then
	objdump -d -z --insn-width=16 --no-show-raw-insn encodings.so >objdump.txt
	n=$(grep -c '^ *[0-9a-f]*:	' objdump.txt)
	if r=$("$compare" encodings.so objdump.txt) && [ "$n" -ge 100 ] && ! grep -q '(bad)' objdump.txt; then
		pass "decoder = objdump on the forms of tests/scan/encodings.s: $r"
	else
		fail "decoder != objdump on tests/scan/encodings.s ($n instructions): $r"
	fi
else
	fail "cannot build tests/scan/encodings.s"
fi
for f in /usr/lib/x86_64-linux-gnu/libc.so.6 /usr/lib/x86_64-linux-gnu/libcrypto.so.3 \
	"$(readlink -f "$lib")"; do
	if [ ! -f "$f" ]; then
		fail "$f is missing"
		continue
	fi
	objdump -d -z --insn-width=16 --no-show-raw-insn "$f" >objdump.txt
	if r=$("$compare" "$f" objdump.txt); then
		pass "decoder = objdump: $r"
	else
		fail "decoder != objdump: $r"
	fi
done

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
