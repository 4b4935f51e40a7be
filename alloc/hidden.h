/*
 * alloc/hidden.h - KHI_HIDDEN: the visibility of every name keyheap's
 * files share among themselves (prefix khi_), never exported.
 */
#ifndef KH_ALLOC_HIDDEN_H
#define KH_ALLOC_HIDDEN_H

#define KHI_HIDDEN __attribute__((visibility("hidden")))

#endif /* KH_ALLOC_HIDDEN_H */
