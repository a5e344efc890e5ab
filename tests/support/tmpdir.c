#include "tests/support/tmpdir.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/proc.h"

void stls_tmpdir_make(char *dir, size_t dir_len, const char *tag)
{
	cr_assert(stls_proc_tmpdir(dir, dir_len, tag), "cannot make a folder for %s", tag);
}

void stls_tmpdir_remove(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	for (struct dirent *e; (e = readdir(d));) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char path[512];
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

const char *stls_tmpdir_file(const char *dir, const char *name, const void *data, size_t len)
{
	static char paths[8][256];
	static unsigned next;
	char *path = paths[next++ % 8];
	snprintf(path, sizeof(paths[0]), "%s/%s", dir, name);
	cr_assert(stls_proc_write_file(path, data, len), "cannot write %s", path);
	return path;
}
