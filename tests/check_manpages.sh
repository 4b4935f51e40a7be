#!/bin/sh
# tests/check_manpages.sh: the manual pages in man/ are complete, render
# cleanly and agree with the code.
#
#  - every page renders without a single warning (groff -ww) and with
#    man -l; .so link pages point at a real page that names them;
#  - every exported keyheap_* function of the built library (but the
#    keyheap_abi_* ABI of the inline fast path), every function the header
#    documents with a "name - ..." comment, and every inline function and
#    function-like macro of the header (but the internal helpers listed
#    below) has a page man/<name>.3, and `man <name>` finds it in a man
#    tree built from man/;
#  - every public KEYHEAP_* constant is documented, and a "#define" shown in
#    a SYNOPSIS has the header's value; every prototype in a SYNOPSIS is the
#    header's declaration, and every function has one;
#  - the KEYHEAP_CONF options of keyheap-conf(7) and of keyheap(3)'s
#    ENVIRONMENT are the header's, with the header's defaults, and the
#    library accepts every one of them with that default;
#  - the program in each page's EXAMPLES compiles without a warning, links
#    with the built library and runs (in keyheap's no-PKU mode, natively on
#    any CPU) with exit status 0 and no "keyheap:" message;
#  - every page in man/ is listed in Makefile.am (so make install installs
#    it and make dist ships it), and every listed page exists.
#
# make check runs it with KEYHEAP_SRCDIR, KEYHEAP_BUILDDIR, KEYHEAP_LIB,
# KEYHEAP_NM, KEYHEAP_CC, KEYHEAP_CFLAGS and KEYHEAP_LDFLAGS set
# (AM_TESTS_ENVIRONMENT).  It prints PASS/FAIL per check, what is missing or
# wrong, and exits 1 on any failure (99 when a tool it needs is missing).

srcdir=${KEYHEAP_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
builddir=${KEYHEAP_BUILDDIR:-.}
lib=${KEYHEAP_LIB:-$builddir/.libs/libkeyheap.so}
nm=${KEYHEAP_NM:-nm}
cc=${KEYHEAP_CC:-cc}
header=$srcdir/include/keyheap.h
mandir=$srcdir/man

# Inline functions and function-like macros of the header that are internal
# (the halves and name-makers of KEYHEAP_SCOPE; the keyheap_abi_* and
# KEYHEAP_ABI_* names are internal by their prefix).
internal='keyheap_scope_enter keyheap_scope_leave KEYHEAP_SCOPE_CAT KEYHEAP_SCOPE_CAT2 KEYHEAP_SCOPE_DECLARE'
# Object-like macros of the header that are not part of the API to document.
not_api='KEYHEAP_H KEYHEAP_API KEYHEAP_NODISCARD'

export LC_ALL=C.UTF-8 MANROFFSEQ=''
unset MANPATH MANOPT MANPL MANWIDTH

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
die() { echo "keyheap: check_manpages: $*" >&2; exit 99; }

# shellcheck disable=SC2086 # $cc may carry options: its first word is the tool
for tool in groff man lexgrog "$nm" $(echo $cc | cut -d ' ' -f 1); do
	command -v "$tool" >/dev/null 2>&1 ||
		die "$tool not found (tools/install-deps installs groff-base, man-db and the compiler)"
done
[ -r "$header" ] || die "no header at $header (set KEYHEAP_SRCDIR)"
[ -d "$mandir" ] || die "no man/ folder in $srcdir"
[ -r "$lib" ] || die "no built library at $lib (set KEYHEAP_LIB)"

work=$(mktemp -d "${TMPDIR:-/tmp}/check_manpages.XXXXXX") || exit 99
trap 'rm -rf "$work"' EXIT
# The man tree: man3/ and man7/, as make install lays them out.
mkdir "$work/man3" "$work/man7" "$work/ex"
tree=$work

pages=$(cd "$mandir" && ls | grep -E '\.[37]$' | LC_ALL=C sort)
[ -n "$pages" ] || die "man/ holds no page"
for p in $pages; do
	cp "$mandir/$p" "$tree/man${p##*.}/$p"
done

# ------------------------------------------------------------ helpers

# unroff: roff text (stdin) as plain text: the escapes the pages use.
unroff() {
	sed -e 's/\\f[BIRP]//g' -e 's/\\(aq/'"'"'/g' -e 's/\\(dq/"/g' \
		-e 's/\\(lq/"/g' -e 's/\\(rq/"/g' -e 's/\\-/-/g' -e 's/\\ / /g' \
		-e 's/\\&//g' -e 's/\\c$//' -e 's/\\e/\\/g'
}

# section FILE NAME: the raw lines of section NAME of page FILE.
section() {
	awk -v want="$2" '
		/^\.SH / { s = substr($0, 5); gsub(/"/, "", s); on = (s == want); next }
		on { print }' "$1"
}

# macro_text: a line of .B/.I/.BI/.BR/.IR/.RB/.RI (stdin) as its text:
# the one-font macros join their arguments with spaces, the alternating
# ones without.
macro_text() {
	awk '{
		m = $1; rest = substr($0, length(m) + 2)
		sep = (m ~ /^\.(BI|BR|IB|IR|RB|RI)$/) ? "" : " "
		out = ""; arg = ""; inq = 0; have = 0
		for (i = 1; i <= length(rest); i++) {
			c = substr(rest, i, 1)
			if (c == "\"") { inq = !inq; have = 1; continue }
			if (c == " " && !inq) {
				if (have) { out = out (out == "" ? "" : sep) arg; arg = ""; have = 0 }
				continue
			}
			arg = arg c; have = 1
		}
		if (have) out = out (out == "" ? "" : sep) arg
		print out
	}' | unroff
}

is_so() { head -n 1 "$1" | grep -q '^\.so '; }

# uncomment: C text (stdin) without its comments and preprocessor lines.
uncomment() {
	awk '
		cont { cont = /\\$/; next }
		!c && /^[ \t]*#/ { cont = /\\$/; next }
		{
			line = $0; out = ""
			while (line != "") {
				if (c) {
					i = index(line, "*/")
					if (i == 0) break
					line = substr(line, i + 2); c = 0; out = out " "
					continue
				}
				i = index(line, "/*"); j = index(line, "//")
				if (j > 0 && (i == 0 || j < i)) { out = out substr(line, 1, j - 1); break }
				if (i == 0) { out = out line; break }
				out = out substr(line, 1, i - 1); line = substr(line, i + 2); c = 1
			}
			print out
		}'
}

# The header without comments and directives, one declaration or statement
# per line.
uncomment <"$header" | tr '\n' ' ' | tr ';{}' '\n\n\n' | sed -e 's/KEYHEAP_API //g' -e 's/KEYHEAP_NODISCARD //g' \
	-e 's/KEYHEAP_ABI_INLINE /static inline /g' -e 's/[[:space:]][[:space:]]*/ /g' \
	-e 's/^ //' -e 's/ $//' -e 's/( /(/g' -e 's/ )/)/g' >"$work/header.decl"

# ------------------------------------------------- 1. the Makefile.am list
listed=$(grep -oE 'man/[A-Za-z0-9_.-]+\.[37]' "$srcdir/Makefile.am" | sed 's|^man/||' | LC_ALL=C sort -u)
printf '%s\n' $listed >"$work/listed"
printf '%s\n' $pages >"$work/pages"
unlisted=$(LC_ALL=C comm -23 "$work/pages" "$work/listed")
gone=$(LC_ALL=C comm -13 "$work/pages" "$work/listed")
if [ -z "$unlisted" ] && [ -z "$gone" ] && [ -n "$listed" ]; then
	pass "Makefile.am lists exactly the $(echo $pages | wc -w) pages of man/"
else
	fail "Makefile.am and man/ differ: not listed:" ${unlisted:-none} "; listed but missing:" ${gone:-none}
fi

# ------------------------------------------------- 2. every page renders
version=$(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"$/\1/p' "$builddir/config.h" 2>/dev/null)
[ -n "$version" ] || die "no PACKAGE_VERSION in $builddir/config.h (set KEYHEAP_BUILDDIR)"
real_pages=
link_pages=
for p in $pages; do
	sec=${p##*.}
	name=${p%.*}
	f=man$sec/$p
	bad=
	if is_so "$tree/$f"; then
		link_pages="$link_pages $p"
		target=$(sed -n '1s/^\.so //p' "$tree/$f")
		[ "$(wc -l <"$tree/$f")" -eq 1 ] || bad="$bad; more than the .so line"
		if [ ! -f "$tree/$target" ]; then
			bad="$bad; .so target $target does not exist"
		elif is_so "$tree/$target"; then
			bad="$bad; .so target $target is a link page itself"
		elif ! (cd "$tree" && lexgrog "$target") | grep -q ": \"$name - "; then
			bad="$bad; the NAME section of $target does not name $name"
		fi
		err=$(cd "$tree" && groff -s -ww -man -Tutf8 -z "$f" 2>&1)
	else
		real_pages="$real_pages $p"
		th=$(grep -m 1 '^\.TH ' "$tree/$f" | macro_text)
		set -- $th
		[ "$1 $2" = "$name $sec" ] || bad="$bad; .TH says \"$1 $2\", not \"$name $sec\""
		echo "$th" | grep -q "keyheap $version " ||
			bad="$bad; .TH does not name keyheap $version (config.h)"
		for s in NAME SYNOPSIS DESCRIPTION "SEE ALSO"; do
			grep -q "^\.SH \"*$s\"*\$" "$tree/$f" || bad="$bad; no $s section"
		done
		(cd "$tree" && lexgrog "$f") | grep -q ": \"$name - " ||
			bad="$bad; lexgrog (mandb's parser) finds no NAME entry for $name"
		err=$(groff -ww -man -Tutf8 -z "$tree/$f" 2>&1)
		# Cross-references to keyheap's own pages must resolve.
		for ref in $(grep -oE '^\.[BI]R? (keyheap[A-Za-z0-9_\\-]*|KEYHEAP_[A-Z_]+) \(?[37]\)?' "$tree/$f" |
			sed -e 's/^\.[A-Z]* //' -e 's/\\-/-/g' -e 's/ (\([37]\)).*/.\1/' | grep -E '\.[37]$' | sort -u); do
			[ -f "$tree/man${ref##*.}/$ref" ] || bad="$bad; refers to $ref, which does not exist"
		done
	fi
	[ -z "$err" ] || bad="$bad; groff -ww: $err"
	out=$(cd "$tree" && man -P cat -l "$f" 2>"$work/man.err")
	rc=$?
	if [ $rc != 0 ] || [ -s "$work/man.err" ] || ! echo "$out" | grep -q '^NAME'; then
		bad="$bad; man -l exit $rc: $(cat "$work/man.err")"
	fi
	if [ -z "$bad" ]; then
		pass "$f renders without warnings"
	else
		fail "$f${bad}"
	fi
done

# ------------------------------------------- 3. every name has its page
exported=$("$nm" -D --defined-only "$lib" | awk '{ print $NF }' | grep '^keyheap_' | grep -v '^keyheap_abi_')
documented=$(sed -n -E 's/^(\/\*| \*) ?(keyheap_[a-z0-9_]+|KEYHEAP_[A-Z0-9_]+) - .*/\2/p' "$header")
inline=$(sed -n -E 's/^static inline [^(]*[ *](keyheap_[a-z0-9_]+)\(.*/\1/p' "$work/header.decl")
fmacros=$(sed -n -E 's/^#define (KEYHEAP_[A-Z0-9_]+)\(.*/\1/p' "$header")
required=$(printf '%s\n' $exported $documented $inline $fmacros | grep -v -e '^keyheap_abi_' -e '^KEYHEAP_ABI_' |
	grep -vxF -e "$(printf '%s\n' $internal)" | LC_ALL=C sort -u)
if [ -z "$exported" ] || ! echo "$required" | grep -qx keyheap_enter ||
	! echo "$required" | grep -qx KEYHEAP_SCOPE; then
	fail "cannot read the names to check: exported from $lib: '$exported'; header: '$required'"
fi
missing=
unresolved=
for n in $required; do
	if [ ! -f "$mandir/$n.3" ]; then
		missing="$missing $n"
		continue
	fi
	# What `man NAME` shows: man resolves the .so link to the real page.
	got=$(man -M "$tree" -w "$n" 2>/dev/null | head -n 1)
	case $got in
	"$tree"/man3/*.3) is_so "$got" && unresolved="$unresolved $n" ;;
	*) unresolved="$unresolved $n" ;;
	esac
done
if [ -z "$missing" ] && [ -z "$unresolved" ]; then
	pass "each of the $(echo $required | wc -w) functions and macros has its page, and man finds it:" $required
else
	[ -z "$missing" ] || fail "no page man/<name>.3 for:$missing"
	[ -z "$unresolved" ] || fail "man -w does not find a real page for:$unresolved"
fi

# ------------------------------- 4. constants: documented, values right
constants=$(sed -n -E 's/^#define (KEYHEAP_[A-Z0-9_]+)[ \t].*/\1/p' "$header" | grep -v '^KEYHEAP_ABI_' |
	grep -vxF -e "$(printf '%s\n' $not_api)" | LC_ALL=C sort -u)
undocumented=
for c in $constants; do
	(cd "$mandir" && cat $real_pages) | grep -qw "$c" || undocumented="$undocumented $c"
done
wrong=
for p in $real_pages; do
	section "$mandir/$p" SYNOPSIS | grep '^\.B[RI]* "#define' | macro_text >"$work/defines"
	while read -r hash name value; do
		want=$(sed -n -E "s/^#define $name[ \\t]+([^ \\t]+).*/\\1/p" "$header")
		[ "$value" = "$want" ] || wrong="$wrong $p:$name=$value(header:${want:-none})"
	done <"$work/defines"
done
if [ -z "$undocumented" ] && [ -z "$wrong" ] && [ -n "$constants" ]; then
	pass "the $(echo $constants | wc -w) KEYHEAP_* constants are documented, with the header's values"
else
	fail "constants: not in any page:${undocumented:- none}; wrong value in a SYNOPSIS:${wrong:- none}"
fi

# ------------------------------ 5. every SYNOPSIS prototype is the header's
mismatch=
declared=
for p in $real_pages; do
	section "$mandir/$p" SYNOPSIS | grep '^\.[BI]' | macro_text |
		awk '/,$/ { held = held $0 " "; next } { print held $0; held = "" }' |
		grep -E '(^|[ *])[A-Za-z_][A-Za-z0-9_]*\(.*\);$' |
		sed -e 's/[[:space:]][[:space:]]*/ /g' -e 's/;$//' >"$work/protos"
	while read -r proto; do
		n=$(echo "$proto" | sed -E 's/^[^(]*[ *]([A-Za-z_][A-Za-z0-9_]*)\(.*/\1/')
		case $n in keyheap_*) ;; *) continue ;; esac
		declared="$declared $n"
		want=$(grep -E "^([a-z]+ )*[A-Za-z_][A-Za-z0-9_ ]*[ *]$n\(" "$work/header.decl" |
			grep -v '^return ' | head -n 1)
		[ "$proto" = "$want" ] || mismatch="$mismatch
  $p: \"$proto\"
    header: \"${want:-no declaration}\""
	done <"$work/protos"
done
undeclared=
for n in $required; do
	case $n in KEYHEAP_*) continue ;; esac
	echo " $declared " | grep -q " $n " || undeclared="$undeclared $n"
done
# The fields of struct keyheap_stats, as keyheap_domain_stats(3) shows them.
fields=$(uncomment <"$header" | tr '\n' ' ' |
	sed -n 's/.*struct keyheap_stats {\([^}]*\)}.*/\1/p' | tr ';' '\n' | sed -n 's/^ *size_t \([a-z_]*\) *$/\1/p')
for fl in $fields; do
	section "$mandir/keyheap_domain_stats.3" SYNOPSIS | macro_text | grep -q "size_t $fl;" ||
		mismatch="$mismatch
  keyheap_domain_stats.3: no field $fl of struct keyheap_stats"
done
if [ -z "$mismatch" ] && [ -z "$undeclared" ] && [ -n "$fields" ]; then
	pass "the SYNOPSIS prototypes of$declared and the fields$(echo '' $fields) are the header's"
else
	fail "SYNOPSIS and header differ:$mismatch${undeclared:+
  no SYNOPSIS declares:$undeclared}"
fi

# -------------------------------------------------- 6. KEYHEAP_CONF
# options PAGE SECTION: "key default" per option tag of the section (a
# .TP whose tag is key:{...} or key:ms, followed by "Default" and a value).
options() {
	section "$1" "$2" | awk '
		prev == ".TP" && /^\.B[RI]? [a-z_]+:/ { k = $2; sub(/:.*/, "", k); key = k; d = 0 }
		key != "" && d == 1 { v = $0; sub(/^\.IR? /, "", v); sub(/ .*/, "", v); print key, v; key = ""; d = 0 }
		key != "" && /^Default$/ { d = 1 }
		{ prev = $1 }'
}
options "$mandir/keyheap-conf.7" OPTIONS | LC_ALL=C sort >"$work/conf7"
options "$mandir/keyheap.3" ENVIRONMENT | LC_ALL=C sort >"$work/conf3"
# The header's list: " *   key:values   text ... (default X ..." up to the
# blank comment line that ends it.
awk '
	/^ \*   [a-z_]+:[^ ]+ / { k = $2; sub(/:.*/, "", k); key = k; next }
	key != "" && /^ \*$/ { key = "" }
	key != "" && match($0, /default [a-z0-9]+/) {
		print key, substr($0, RSTART + 8, RLENGTH - 8); key = ""
	}' "$header" | LC_ALL=C sort -u >"$work/confh"
bad=
cmp -s "$work/conf7" "$work/conf3" ||
	bad="$bad; keyheap-conf(7) says '$(echo $(cat "$work/conf7"))', keyheap(3) says '$(echo $(cat "$work/conf3"))'"
cmp -s "$work/conf7" "$work/confh" ||
	bad="$bad; keyheap-conf(7) says '$(echo $(cat "$work/conf7"))', the header '$(echo $(cat "$work/confh"))'"
[ -s "$work/confh" ] || bad="$bad; no KEYHEAP_CONF option found in the header"
if [ -z "$bad" ]; then
	pass "keyheap-conf(7) and keyheap(3) document the header's $(wc -l <"$work/confh") KEYHEAP_CONF options with its defaults: $(echo $(cat "$work/conf7"))"
else
	fail "KEYHEAP_CONF documentation$bad"
fi

# ------------------------------------------------------ 7. the EXAMPLES
# Each page's first EXAMPLES program (an .EX block starting with #include),
# compiled with the build's compiler and flags, warnings as errors, linked
# with the built library, run in the no-PKU mode.
libdir=$(dirname "$lib")
built=
for p in $real_pages; do
	name=${p%.*}
	section "$mandir/$p" EXAMPLES | awk '
		/^\.EX$/ { on = 1; n = 0; next }
		/^\.EE$/ { if (on && keep) exit; on = 0; next }
		on && n++ == 0 { keep = /^#include/ }
		on && keep { print }' | unroff >"$work/ex/$name.c"
	if [ ! -s "$work/ex/$name.c" ]; then
		# A C program is the rule in section 3; keyheap-conf(7) shows
		# command lines instead.
		[ "${p##*.}" = 3 ] || continue
		fail "$p: no example program (an .EX block starting with #include) in EXAMPLES"
		continue
	fi
	# shellcheck disable=SC2086 # the flags are words
	if ! $cc $KEYHEAP_CFLAGS -std=gnu11 -Wall -Wextra -Werror -I"$srcdir/include" \
		-o "$work/ex/$name" "$work/ex/$name.c" $KEYHEAP_LDFLAGS "$lib" \
		-Wl,-rpath,"$libdir" >"$work/ex/$name.cc.out" 2>&1; then
		fail "$p: the example does not build:"
		cat "$work/ex/$name.cc.out"
		continue
	fi
	KEYHEAP_CONF=pku:off,unprotected:true "$work/ex/$name" >"$work/ex/$name.out" 2>"$work/ex/$name.err"
	rc=$?
	if [ $rc = 0 ] && ! grep -q '^keyheap: ' "$work/ex/$name.err"; then
		pass "$p: the example builds without warnings and runs (exit 0, no keyheap: message)"
		built="$built $name"
	else
		fail "$p: the example exits $rc; stdout: $(cat "$work/ex/$name.out"); stderr: $(cat "$work/ex/$name.err")"
	fi
done

# The library reads every documented option with its documented default
# without a complaint, and complains about one it does not know (the twin:
# the check can fail).
if echo " $built " | grep -q ' keyheap_pku_supported '; then
	conf=$(awk '{ printf "%s%s:%s", sep, $1, $2; sep = "," }' "$work/conf7")
	prog=$work/ex/keyheap_pku_supported
	KEYHEAP_CONF=$conf "$prog" >/dev/null 2>"$work/conf.err"
	KEYHEAP_CONF=$conf,no_such_option:1 "$prog" >/dev/null 2>"$work/conf-bad.err"
	if [ -n "$conf" ] && ! [ -s "$work/conf.err" ] &&
		grep -q '^keyheap: KEYHEAP_CONF: unknown option "no_such_option:1"' "$work/conf-bad.err"; then
		pass "the library accepts KEYHEAP_CONF=$conf silently, and reports an unknown option"
	else
		fail "KEYHEAP_CONF=$conf: stderr '$(cat "$work/conf.err")'; with an unknown option: '$(cat "$work/conf-bad.err")'"
	fi
else
	fail "keyheap_pku_supported(3)'s example did not build: cannot check KEYHEAP_CONF against the library"
fi

echo "$passed passed, $failed failed"
[ $failed = 0 ]
