/*
 * alloc/procfs.h - reading a /proc file line by line, without malloc.
 *
 * keyheap reads /proc/self/maps, /proc/self/smaps and a task's status from
 * places where the heap may not be used (a destroy may run inside another
 * domain, whose heap malloc would reach): the lines go through a buffer on
 * the stack.
 */
#ifndef KH_ALLOC_PROCFS_H
#define KH_ALLOC_PROCFS_H

#include <stdbool.h>

/* khi_proc_lines - calls each(line, ctx) for every line of the file at
 * path (without its newline), until each returns true.  A line longer
 * than 4 KiB is skipped.  Returns true when the file cannot be opened. */
__attribute__((visibility("hidden"))) bool khi_proc_lines(const char *path,
                                                          bool (*each)(const char *line,
                                                                       void *ctx),
                                                          void *ctx);

#endif /* KH_ALLOC_PROCFS_H */
