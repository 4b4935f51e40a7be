# A python3 workload for keyheap's real-program test: json, regular
# expressions, threads and hashlib.  Prints only deterministic results.
import hashlib
import json
import re
import threading

data = [{"id": i, "name": "item%d" % i, "tags": [str(j) for j in range(i % 7)],
         "value": i * 1.5, "nested": {"even": i % 2 == 0}} for i in range(60000)]
text = json.dumps(data, sort_keys=True)
assert json.loads(text) == data
print("json", len(text), hashlib.sha256(text.encode()).hexdigest())

corpus = " ".join("user%d@host%d.example key=%d" % (i, i % 13, i * 7) for i in range(120000))
pairs = re.findall(r"(\w+)@(\w+)\.example", corpus)
keys = [int(k) for k in re.findall(r"key=(\d+)", corpus)]
hosts = sorted({h for _, h in pairs})
print("regex", len(pairs), sum(keys), ",".join(hosts))
print("sub", hashlib.md5(re.sub(r"user(\d+)", r"<\1>", corpus).encode()).hexdigest())

results = {}
lock = threading.Lock()


def worker(n):
    h = hashlib.sha256()
    blobs = []
    for k in range(3000):
        h.update(("%d:%d:" % (n, k) + "x" * (k % 97)).encode())
        blobs.append(bytes(range(256)) * (k % 5 + 1))
        if len(blobs) > 200:
            blobs = blobs[100:]
    with lock:
        results[n] = (h.hexdigest(), sum(len(b) for b in blobs))


threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for n in sorted(results):
    print("thread", n, results[n][0], results[n][1])
