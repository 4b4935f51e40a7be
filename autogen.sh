#!/bin/sh
# Regenerates configure and Makefile.in from configure.ac and Makefile.am.
set -e
cd "$(dirname "$0")"
for tool in autoreconf:autoconf automake:automake libtoolize:libtool pkg-config:pkg-config; do
    cmd=${tool%%:*} pkg=${tool##*:}
    command -v "$cmd" >/dev/null 2>&1 || {
        echo "keyheap: autogen.sh: $cmd not found: apt-get install $pkg" >&2
        exit 1
    }
done
autoreconf --install --force --warnings=all
