/*
 * fuzz/replay.c - runs a libFuzzer target's LLVMFuzzerTestOneInput over
 * files, without libFuzzer: make check replays every corpus file with
 * whatever compiler built keyheap.
 *
 * Usage: replay FILE-OR-FOLDER...  Each folder's regular files are fed in
 * name order.  Prints one line per file and "replay: N inputs" at the end;
 * exits 0, or 1 when an argument cannot be read (a failing input aborts in
 * the target itself).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned inputs;

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return 1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while (buf != NULL && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    if (buf == NULL) {
        fprintf(stderr, "replay: out of memory reading %s\n", path);
        return 1;
    }
    printf("replay: %s (%zu bytes)\n", path, n);
    fflush(stdout);
    /* An exact-size copy, so that a sanitizer sees reads past the end. */
    uint8_t *exact = malloc(n ? n : 1);
    if (exact == NULL)
        return 1;
    memcpy(exact, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    inputs++;
    return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        return 1;
    }
    if (!S_ISDIR(st.st_mode))
        return run_file(path);
    struct dirent **names;
    int n = scandir(path, &names, NULL, by_name);
    if (n < 0) {
        perror(path);
        return 1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char file[4096];
        snprintf(file, sizeof file, "%s/%s", path, names[i]->d_name);
        if (names[i]->d_name[0] != '.' && stat(file, &st) == 0 && S_ISREG(st.st_mode))
            rc |= run_file(file);
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    int rc = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE-OR-FOLDER...\n", argv[0]);
        return 1;
    }
    for (int i = 1; i < argc; i++)
        rc |= run_path(argv[i]);
    printf("replay: %u inputs\n", inputs);
    return rc;
}
