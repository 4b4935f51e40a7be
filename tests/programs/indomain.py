# tests/programs/indomain.py - python3 inside one keyheap domain
# (tests/check_indomain.c runs it under the tests/programs/indomain.so shim).
#
#   indomain.py workload      compiles and runs code, dicts, strings, big
#                             ints, json, re, hashlib, a SIGUSR1 handler
#   indomain.py faulthandler  faulthandler.enable() first (its alternate
#                             signal stack comes from malloc: inside the
#                             domain), then the same SIGUSR1 handler
#
# Single-threaded on purpose: a thread the interpreter starts begins with
# every domain closed and faults on the first object of the main thread it
# touches (keyheap's documented behaviour; tests/programs/indomain_attack.c
# is the attack that relies on it).  Every line printed is deterministic, so
# the test compares the output with a run without keyheap; the last line is
# "indomain.py: ok <mode>".
import hashlib
import json
import os
import re
import signal
import sys


def compiled_code():
    # Source text built at run time, compiled and executed: the compiler's
    # AST, code objects and the functions they define all live in the domain.
    src = "\n".join(
        ["def f%d(x):\n    return x * %d + len(str(x))" % (i, i) for i in range(200)]
        + ["total = sum(f199(i) for i in range(50))"]
    )
    ns = {}
    exec(compile(src, "<generated>", "exec"), ns)
    values = [ns["f%d" % i](i) for i in range(200)]
    return "compile: %d functions, total %d, sum %d" % (200, ns["total"], sum(values))


def dicts_and_strings():
    d = {}
    for i in range(60000):
        d["key-%06d" % i] = ("v" * (i % 37)) + str(i)
    for i in range(0, 60000, 3):
        del d["key-%06d" % i]
    words = " ".join(sorted(d.values(), key=lambda s: (len(s), s))[:2000:97])
    return "dict: %d entries, %d chars, %s" % (len(d), sum(map(len, d.values())),
                                               hashlib.md5(words.encode()).hexdigest())


def big_ints():
    f = 1
    for i in range(2, 1201):
        f *= i
    fib = [0, 1]
    for _ in range(2000):
        fib.append(fib[-1] + fib[-2])
    p = pow(3, 10 ** 4, 10 ** 40 + 7)
    return "ints: 1200! has %d digits, digit sum %d, fib(2000) %% 1e9+7 = %d, pow %d" % (
        len(str(f)), sum(map(int, str(f))), fib[2000] % (10 ** 9 + 7), p)


def json_roundtrip():
    doc = {"rows": [{"id": i, "name": "row %d" % i, "tags": ["t%d" % (i % 7)] * (i % 4),
                     "score": i * 0.5} for i in range(3000)],
           "meta": {"unicode": "domain \u00e9\u4e2d\U0001f511", "nested": [[[]]]}}
    text = json.dumps(doc, sort_keys=True)
    back = json.loads(text)
    assert back == doc
    return "json: %d bytes, sha256 %s" % (len(text), hashlib.sha256(text.encode()).hexdigest())


def regexes():
    text = "\n".join("user%d@host%d.example.org said %d times: %s" % (i, i % 13, i * 7,
                     "ab" * (i % 9)) for i in range(5000))
    emails = re.findall(r"\b(\w+)@(\w+)\.example\.org\b", text)
    swapped = re.sub(r"(\d+) times", lambda m: "x" * (int(m.group(1)) % 5), text)
    pattern = re.compile(r"^user(\d*7)@.*(ab){3,}$", re.M)
    hits = [m.group(1) for m in pattern.finditer(text)]
    return "re: %d emails, %d hits, sha1 %s" % (len(emails), len(hits),
                                               hashlib.sha1(swapped.encode()).hexdigest())


def hashes():
    data = bytes(range(256)) * 4096
    h = hashlib.sha512()
    for i in range(64):
        h.update(data[i:])
    return "hashlib: sha512 %s, blake2b %s" % (h.hexdigest()[:32],
                                               hashlib.blake2b(data).hexdigest()[:32])


received = []


def on_usr1(signum, frame):
    # Runs in the main thread, from the interpreter's loop (the C-level
    # handler only records the signal), so it may touch every object.
    received.append("got signal %d, %d locals" % (signum, len(frame.f_locals)))


def signals():
    signal.signal(signal.SIGUSR1, on_usr1)
    for _ in range(3):
        os.kill(os.getpid(), signal.SIGUSR1)
    return "signal: " + "; ".join(received)


def main():
    mode = sys.argv[1] if len(sys.argv) == 2 else ""
    if mode == "workload":
        steps = [compiled_code, dicts_and_strings, big_ints, json_roundtrip, regexes, hashes,
                 signals]
    elif mode == "faulthandler":
        import faulthandler
        faulthandler.enable()
        steps = [signals]
    else:
        sys.exit("usage: indomain.py workload|faulthandler")
    for step in steps:
        print(step())
    print("indomain.py: ok " + mode)


main()
