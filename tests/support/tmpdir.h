/* Test support: a fresh folder for the files a unit test reads (table files, policies, groups),
 * removed again by the suite's .fini. */
#pragma once

#include <stddef.h>

/* Makes /tmp/stls-<tag>-XXXXXX and writes its path into dir (dir_len octets); fails the test if it
 * cannot. */
void stls_tmpdir_make(char *dir, size_t dir_len, const char *tag);

/* Removes the files in dir, then dir itself (one level: tests make no subfolders). */
void stls_tmpdir_remove(const char *dir);

/* Writes len bytes as dir/name, replacing any file of that name; fails the test if it cannot.
 * Returns the path, valid until the eighth next call. */
const char *stls_tmpdir_file(const char *dir, const char *name, const void *data, size_t len);
