#!/bin/sh
# tests/pku-run-selftest.sh: proves that tools/pku-run passes a program's
# arguments, environment, working directory, stdout, stderr and exact exit
# status through, in the QEMU machine and (where the CPU has PKU) natively,
# and that it fails with a `keyheap: pku-run:` message instead of hanging.
#
# make check runs it from the top build folder, with $srcdir set.
# Override: PKU_EXIT_STATUS=path/to/tests/pku_exit_status.

srcdir=${srcdir:-$(dirname "$0")/..}
pku_run="$(cd "$srcdir" && pwd -P)/tools/pku-run"
program=${PKU_EXIT_STATUS:-tests/pku_exit_status}
work=$(mktemp -d "${TMPDIR:-/tmp}/pku-run-selftest.XXXXXX") || exit 99
trap 'rm -rf "$work"' EXIT

passed=0
failed=0

pass() { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

# run NAME RUNNER STATUS [ARGS...]: runs the program in the background;
# its stdout, stderr and exit status land in $work/NAME.{out,err,status}.
run() {
	name=$1 runner=$2
	shift 2
	# The runner goes in the background and is waited for: a shell that
	# waits for a foreground command killed by a signal prints "Aborted"
	# into that command's redirected stderr (dash does), which is not the
	# program's output.  Natively the program itself dies by SIGABRT.
	(
		KEYHEAP_PKU_RUNNER=$runner KEYHEAP_SELFTEST_VALUE="x y 'z'" \
			bash "$pku_run" "$program" "$@" \
			>"$work/$name.out" 2>"$work/$name.err" &
		wait $!
		echo $? >"$work/$name.status"
	) 2>/dev/null &
}

# expect NAME STATUS ARGS...: checks one run against what the program
# must have printed.
expect() {
	name=$1 status=$2
	shift 2
	{
		echo 'stdout line'
		for arg in "$@"; do printf 'arg: [%s]\n' "$arg"; done
		echo "env: [x y 'z']"
		echo "cwd: [$(pwd -P)]"
	} >"$work/$name.want"
	got=$(cat "$work/$name.status")
	if [ "$got" = "$status" ]; then
		pass "$name: exit status $status"
	else
		fail "$name: exit status $got, wanted $status"
		cat "$work/$name.err"
	fi
	if cmp -s "$work/$name.want" "$work/$name.out"; then
		pass "$name: stdout passes through"
	else
		fail "$name: stdout differs"
		diff "$work/$name.want" "$work/$name.out"
	fi
	# The one run that downloads the kernel says so; nothing else may be added.
	if [ "$(grep -v '^keyheap: pku-run: fetching the kernel' "$work/$name.err")" = 'stderr line' ]; then
		pass "$name: stderr passes through"
	else
		fail "$name: stderr is not just 'stderr line':"
		cat "$work/$name.err"
	fi
}

if grep -qw pku /proc/cpuinfo && grep -qw ospke /proc/cpuinfo; then
	modes='qemu native'
else
	modes=qemu
fi

# The runs of one mode go in parallel: quicker, and on a cold cache they
# also prove that parallel runs share one kernel download.
# shellcheck disable=SC2016 # '$HOME *' must reach the program unexpanded
for mode in $modes; do
	run "$mode-0" "$mode" 0
	run "$mode-3" "$mode" 3 'two words' "it's" '' '$HOME *'
	run "$mode-abort" "$mode" abort
	wait
	expect "$mode-0" 0
	expect "$mode-3" 3 'two words' "it's" '' '$HOME *'
	expect "$mode-abort" 134
done

if [ "$modes" = qemu ]; then
	KEYHEAP_PKU_RUNNER=native bash "$pku_run" "$program" 0 >/dev/null 2>"$work/native.err"
	status=$?
	if [ $status = 99 ] && grep -q '^keyheap: pku-run: .*no PKU' "$work/native.err"; then
		pass "native without PKU fails clearly"
	else
		fail "native without PKU: status $status, stderr:"
		cat "$work/native.err"
	fi
fi

# Files go in and come back (QEMU only: natively there is nothing to
# copy).  The program, a busybox sh script run in $dir, reads the files
# named by its arguments, writes new files in its working directory (one in
# a new folder) and in a KEYHEAP_PKU_FILES folder, changes a file there,
# and writes in a folder that exists only in the machine, which must not
# come back.  in.bin is random
# bytes, so a copy that changed any byte (\n to \r\n) would show.
dir=$work/files
mkdir -p "$dir/extra"
echo input >"$dir/in.txt"
head -c 4096 /dev/urandom >"$dir/in.bin"
echo old >"$dir/extra/old.txt"
cat >"$dir/prog.sh" <<'EOF2'
#!/bin/sh
{ cat "$1"; echo seen; } >copy.txt
mkdir sub && echo new >sub/new.txt
echo changed >>extra/old.txt
cat "$2" >extra/new.bin
mkdir -p "$3" && echo no >"$3/x"
EOF2
chmod +x "$dir/prog.sh"
(cd "$dir" && KEYHEAP_PKU_RUNNER=qemu KEYHEAP_PKU_FILES=extra \
	bash "$pku_run" ./prog.sh in.txt in.bin "$work/elsewhere" >"$work/files.out" 2>"$work/files.err")
status=$?
if [ $status = 0 ] &&
	[ "$(cat "$dir/copy.txt" 2>/dev/null)" = "$(printf 'input\nseen')" ] &&
	[ "$(cat "$dir/sub/new.txt" 2>/dev/null)" = new ] &&
	[ "$(cat "$dir/extra/old.txt")" = "$(printf 'old\nchanged')" ] &&
	cmp -s "$dir/in.bin" "$dir/extra/new.bin" &&
	[ "$(cat "$dir/in.txt")" = input ] &&
	[ ! -e "$work/elsewhere" ]; then
	pass "files named by arguments go in; files written in the working directory and KEYHEAP_PKU_FILES folders come back, byte for byte, and no others"
else
	fail "files: status $status; what came back:"
	(cd "$dir" && find . -type f | sort)
	ls "$work/elsewhere" 2>&1
	cat "$work/files.err"
fi

# A machine that cannot finish in time is killed, with a message.
KEYHEAP_PKU_RUNNER=qemu KEYHEAP_PKU_TIMEOUT=2 bash "$pku_run" sleep 60 >/dev/null 2>"$work/timeout.err"
status=$?
if [ $status = 99 ] && grep -q '^keyheap: pku-run: .*KEYHEAP_PKU_TIMEOUT' "$work/timeout.err"; then
	pass "a machine that runs too long is killed"
else
	fail "timeout: status $status, stderr:"
	cat "$work/timeout.err"
fi

echo "$passed passed, $failed failed"
[ $failed = 0 ]
