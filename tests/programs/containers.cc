// A C++ program using the standard containers, for keyheap's real-program
// test: run with and without LD_PRELOAD=libkeyheap.so, its output must match.
#include <algorithm>
#include <cstdint>
#include <deque>
#include <iostream>
#include <list>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

std::uint64_t mix(std::uint64_t h, std::uint64_t v)
{
    return (h ^ v) * 1099511628211ull;
}

std::uint64_t work(unsigned seed)
{
    std::uint64_t h = 14695981039346656037ull, x = seed;
    std::map<std::string, std::vector<int>> m;
    std::unordered_map<std::uint64_t, std::string> u;
    std::deque<std::unique_ptr<std::string>> d;
    std::list<std::shared_ptr<std::vector<char>>> l;
    std::set<std::uint64_t> s;
    for (int i = 0; i < 100000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        std::string key = "k" + std::to_string(x % 5000);
        m[key].push_back(i);
        u[x % 20000] = std::string(x % 300, char('a' + x % 26));
        d.push_back(std::make_unique<std::string>(key + key));
        if (d.size() > 1000)
            d.pop_front();
        l.push_back(std::make_shared<std::vector<char>>(x % 4096, char(i)));
        if (l.size() > 300)
            l.pop_front();
        s.insert(x % 100000);
    }
    for (auto &kv : m)
        h = mix(h, kv.first.size() * 31 + kv.second.size());
    std::vector<std::uint64_t> keys;
    for (auto &kv : u)
        keys.push_back(kv.first * 1000 + kv.second.size());
    std::sort(keys.begin(), keys.end());
    for (auto k : keys)
        h = mix(h, k);
    for (auto &p : d)
        h = mix(h, p->size());
    for (auto &p : l)
        h = mix(h, p->size());
    return mix(h, s.size());
}

} // namespace

int main()
{
    std::vector<std::uint64_t> results(4);
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < results.size(); t++)
        threads.emplace_back([&results, t] { results[t] = work(t + 1); });
    for (auto &t : threads)
        t.join();
    for (unsigned t = 0; t < results.size(); t++)
        std::cout << "thread " << t << " " << results[t] << "\n";
    std::cout << "main " << work(99) << "\n";
    return 0;
}
