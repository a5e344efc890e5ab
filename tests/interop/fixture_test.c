/* The test fixtures themselves: parallel tests never share a port. */
#include <criterion/criterion.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/proc.h"

/* A port one process picked stays its own until it exits, whatever the other picks. */
Test(fixture, a_picked_port_is_reserved_until_its_process_exits, .timeout = 30)
{
	int up[2], down[2];
	cr_assert_eq(pipe(up), 0);
	cr_assert_eq(pipe(down), 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		/* Its read ends when the test's process does, whatever becomes of the test. */
		close(up[0]);
		close(down[1]);
		uint16_t port = stls_proc_free_port();
		char c;
		_exit(write(up[1], &port, sizeof(port)) == sizeof(port) && read(down[0], &c, 1) >= 0 ? 0 : 1);
	}
	close(up[1]);
	close(down[0]);
	uint16_t port = 0;
	cr_assert_eq(read(up[0], &port, sizeof(port)), (ssize_t)sizeof(port));
	cr_assert_neq(port, 0);
	cr_assert_not(stls_proc_reserve_port(port), "port %u was handed to two processes", port);
	for (int i = 0; i < 50; i++)
		cr_assert_neq(stls_proc_free_port(), port);
	cr_assert_eq(write(down[1], "x", 1), 1);
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	cr_assert(stls_proc_reserve_port(port), "port %u stayed reserved after its process exited", port);
	cr_assert_not(stls_proc_reserve_port(port), "one process got port %u twice", port);
}
