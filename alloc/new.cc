/*
 * alloc/new.cc - every replaceable C++ operator new and operator delete.
 *
 * The only C++ in the library.  operator new follows the standard
 * ([new.delete.single]): on failure it calls the installed new-handler and
 * tries again, and throws std::bad_alloc when there is none; the nothrow
 * forms return nullptr where the throwing ones would throw.
 */
#include <cstddef>
#include <new>

#include "alloc/heap.h"
#include "alloc/malloc.h"

#define KH_EXPORT __attribute__((visibility("default")))

namespace {

void *try_alloc(std::size_t size, std::size_t align)
{
    return align == 0 ? khi_malloc(size) : khi_alloc_aligned(align, size);
}

/* The failure path, out of line so the fast path stays a call and a test. */
[[gnu::noinline]] void *alloc_retry(std::size_t size, std::size_t align)
{
    for (;;) {
        std::new_handler handler = std::get_new_handler();
        if (handler == nullptr)
            throw std::bad_alloc();
        handler();
        if (void *p = try_alloc(size, align))
            return p;
    }
}

inline void *alloc_throw(std::size_t size, std::size_t align)
{
    void *p = try_alloc(size, align);
    if (__builtin_expect(p != nullptr, 1))
        return p;
    return alloc_retry(size, align);
}

inline void *alloc_nothrow(std::size_t size, std::size_t align) noexcept
{
    void *p = try_alloc(size, align);
    if (__builtin_expect(p != nullptr, 1))
        return p;
    try {
        return alloc_retry(size, align);
    } catch (const std::bad_alloc &) {
        return nullptr;
    }
}

/* Domain blocks are freed by address, through the domain's heap; the
 * default heap's get jemalloc's sized free, which skips a size lookup. */
inline void dealloc(void *p) noexcept
{
    khi_free(p);
}

inline void dealloc_sized(void *p, std::size_t size) noexcept
{
    if (__builtin_expect(khi_in_span(p), 0))
        khi_domain_free(p);
    else if (p != nullptr)
        khi_je_sdallocx(p, size, 0);
}

inline void dealloc_aligned(void *p, std::size_t align) noexcept
{
    if (__builtin_expect(khi_in_span(p), 0))
        khi_domain_free(p);
    else if (p != nullptr)
        khi_je_dallocx(p, khi_align_flags(align));
}

inline void dealloc_sized_aligned(void *p, std::size_t size, std::size_t align) noexcept
{
    if (__builtin_expect(khi_in_span(p), 0))
        khi_domain_free(p);
    else if (p != nullptr)
        khi_je_sdallocx(p, size, khi_align_flags(align));
}

inline std::size_t align_of(std::align_val_t a)
{
    return static_cast<std::size_t>(a);
}

} // namespace

using std::align_val_t;
using std::nothrow_t;
using std::size_t;

KH_EXPORT void *operator new(size_t n) { return alloc_throw(n, 0); }
KH_EXPORT void *operator new[](size_t n) { return alloc_throw(n, 0); }
KH_EXPORT void *operator new(size_t n, const nothrow_t &) noexcept { return alloc_nothrow(n, 0); }
KH_EXPORT void *operator new[](size_t n, const nothrow_t &) noexcept { return alloc_nothrow(n, 0); }
KH_EXPORT void *operator new(size_t n, align_val_t a) { return alloc_throw(n, align_of(a)); }
KH_EXPORT void *operator new[](size_t n, align_val_t a) { return alloc_throw(n, align_of(a)); }
KH_EXPORT void *operator new(size_t n, align_val_t a, const nothrow_t &) noexcept
{
    return alloc_nothrow(n, align_of(a));
}
KH_EXPORT void *operator new[](size_t n, align_val_t a, const nothrow_t &) noexcept
{
    return alloc_nothrow(n, align_of(a));
}

KH_EXPORT void operator delete(void *p) noexcept { dealloc(p); }
KH_EXPORT void operator delete[](void *p) noexcept { dealloc(p); }
KH_EXPORT void operator delete(void *p, const nothrow_t &) noexcept { dealloc(p); }
KH_EXPORT void operator delete[](void *p, const nothrow_t &) noexcept { dealloc(p); }
KH_EXPORT void operator delete(void *p, size_t n) noexcept { dealloc_sized(p, n); }
KH_EXPORT void operator delete[](void *p, size_t n) noexcept { dealloc_sized(p, n); }
KH_EXPORT void operator delete(void *p, align_val_t a) noexcept { dealloc_aligned(p, align_of(a)); }
KH_EXPORT void operator delete[](void *p, align_val_t a) noexcept { dealloc_aligned(p, align_of(a)); }
KH_EXPORT void operator delete(void *p, align_val_t a, const nothrow_t &) noexcept
{
    dealloc_aligned(p, align_of(a));
}
KH_EXPORT void operator delete[](void *p, align_val_t a, const nothrow_t &) noexcept
{
    dealloc_aligned(p, align_of(a));
}
KH_EXPORT void operator delete(void *p, size_t n, align_val_t a) noexcept
{
    dealloc_sized_aligned(p, n, align_of(a));
}
KH_EXPORT void operator delete[](void *p, size_t n, align_val_t a) noexcept
{
    dealloc_sized_aligned(p, n, align_of(a));
}
