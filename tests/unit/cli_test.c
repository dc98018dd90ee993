/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "plextv/build-config.h"
#include "plextv/cli.h"
#include "plextv/common.h"

/* What one ptv_cli_main() call printed. */
static char out_text[16384], err_text[16384];

static void slurp(FILE *f, char *buf, size_t len)
{
	size_t n;

	rewind(f);
	n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
}

/* Runs `plextv ARGS...` (NULL-terminated) in-process with stdout and stderr captured. */
static int run(const char *arg0, ...)
{
	char *argv[32] = {"plextv"};
	int argc = 1, saved_out, saved_err, ret;
	FILE *fo = tmpfile(), *fe = tmpfile();
	const char *a;
	va_list ap;

	assert_non_null(fo);
	assert_non_null(fe);
	va_start(ap, arg0);
	for (a = arg0; a; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;

	fflush(stdout);
	fflush(stderr);
	saved_out = dup(STDOUT_FILENO);
	saved_err = dup(STDERR_FILENO);
	dup2(fileno(fo), STDOUT_FILENO);
	dup2(fileno(fe), STDERR_FILENO);
	ret = ptv_cli_main(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(saved_out, STDOUT_FILENO);
	dup2(saved_err, STDERR_FILENO);
	close(saved_out);
	close(saved_err);
	slurp(fo, out_text, sizeof(out_text));
	slurp(fe, err_text, sizeof(err_text));
	return ret;
}

#define assert_contains(hay, needle)                                         \
	do {                                                                 \
		if (!strstr((hay), (needle)))                                \
			fail_msg("'%s' not found in:\n%s", (needle), (hay)); \
	} while (0)

static char dir[64];

static int setup(void **state)
{
	strcpy(dir, "/tmp/ptv-cli-test-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	/* Keep the caller's environment out of the results. */
	unsetenv("PLEXTV_DATA_DIR");
	unsetenv("PLEXTV_LISTEN");
	unsetenv("PLEXTV_TUNERS");
	return setenv("PLEXTV_DATA_DIR", dir, 1);
}

static int teardown(void **state)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/plextv.conf", dir);
	unlink(path);
	rmdir(dir);
	return 0;
}

static const char *write_conf(const char *text)
{
	static char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/plextv.conf", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static void test_version_help(void **state)
{
	assert_int_equal(run("version", NULL), EX_OK);
	assert_contains(out_text, "plextv " PTV_VERSION " (commit ");
	assert_contains(out_text, "\nllhttp ");
	assert_contains(out_text, "\nlibavformat ");
	assert_contains(out_text, "\nlmdb ");
	assert_contains(out_text, "\nlibcurl ");
	assert_int_equal(run("--version", NULL), EX_OK);
	assert_contains(out_text, "plextv " PTV_VERSION);
	assert_int_equal(run("serve", "--version", NULL), EX_OK);
	assert_contains(out_text, "plextv " PTV_VERSION);

	assert_int_equal(run("--help", NULL), EX_OK);
	assert_contains(out_text, "Usage: plextv COMMAND");
	assert_contains(out_text, "  serve ");
	assert_contains(out_text, "  healthcheck ");
	assert_string_equal(err_text, "");
	assert_int_equal(run("help", NULL), EX_OK);
	assert_contains(out_text, "Usage: plextv COMMAND");
	assert_int_equal(run("help", "serve", NULL), EX_OK);
	assert_contains(out_text, "Usage: plextv serve");
	assert_int_equal(run("serve", "--help", NULL), EX_OK);
	/* One flag per config key, generated from the table. */
	assert_contains(out_text, "--header-timeout-ms MS");
	assert_contains(out_text, "--acestream-engine URL");
	assert_contains(out_text, "-c, --config FILE");
	assert_int_equal(run("healthcheck", "-h", NULL), EX_OK);
	assert_contains(out_text, "--timeout SECONDS");
}

static void test_usage_errors(void **state)
{
	assert_int_equal(run(NULL), EX_USAGE);
	assert_contains(err_text, "Usage: plextv COMMAND");
	assert_string_equal(out_text, "");
	assert_int_equal(run("frobnicate", NULL), EX_USAGE);
	assert_contains(err_text, "unknown command 'frobnicate'");
	assert_int_equal(run("--frob", NULL), EX_USAGE);
	assert_int_equal(run("help", "frob", NULL), EX_USAGE);
	assert_int_equal(run("serve", "--bogus", NULL), EX_USAGE);
	assert_contains(err_text, "plextv serve: unknown option '--bogus'");
	assert_int_equal(run("serve", "--tuners", NULL), EX_USAGE);
	assert_contains(err_text, "option '--tuners' requires an argument");
	assert_int_equal(run("serve", "extra", NULL), EX_USAGE);
	assert_int_equal(run("config", NULL), EX_USAGE);
	assert_int_equal(run("config", "frob", NULL), EX_USAGE);
	assert_int_equal(run("config", "show", "more", NULL), EX_USAGE);
	assert_int_equal(run("version", "--tuners", "3", NULL), EX_USAGE);
	assert_int_equal(run("healthcheck", "--timeout", "0", NULL), EX_USAGE);
	assert_int_equal(run("healthcheck", "--timeout", "x", NULL), EX_USAGE);
}

static void test_config_commands(void **state)
{
	const char *path;

	assert_int_equal(run("config", "check", NULL), EX_OK);
	assert_string_equal(out_text, "configuration OK (file: none)\n");

	path = write_conf("[tuner]\ntuners = 6\n");
	assert_int_equal(run("config", "check", NULL), EX_OK);
	assert_contains(out_text, "configuration OK (file: ");
	assert_contains(out_text, path);

	setenv("PLEXTV_LISTEN", "127.0.0.1:9", 1);
	assert_int_equal(run("config", "show", "--log-level", "debug", "--tuners=8", NULL), EX_OK);
	unsetenv("PLEXTV_LISTEN");
	assert_contains(out_text, "listen = 127.0.0.1:9  ; from env\n");
	assert_contains(out_text, "log_level = debug  ; from flag\n");
	assert_contains(out_text, "tuners = 8  ; from flag\n");
	assert_int_equal(run("config", "show", NULL), EX_OK);
	assert_contains(out_text, "tuners = 6  ; from file\n");

	/* Options may come before the action (GNU argument permutation). */
	assert_int_equal(run("config", "--acestream-engine", "http://u:pw@h:1/", "show", NULL),
			 EX_OK);
	assert_contains(out_text, "acestream_engine = http://***@h:1/  ; from flag\n");

	path = write_conf("[tuner]\ntuners = 0\n");
	assert_int_equal(run("config", "check", NULL), EX_CONFIG);
	assert_contains(err_text, "plextv.conf:2: tuners: 0 is out of range");
	assert_int_equal(run("config", "check", "--config", "/nonexistent/x.conf", NULL),
			 EX_CONFIG);
	assert_contains(err_text, "/nonexistent/x.conf");
	assert_int_equal(run("config", "check", "-c", path, NULL), EX_CONFIG);
	/* serve stops at the configuration, before starting anything. */
	assert_int_equal(run("serve", NULL), EX_CONFIG);
	assert_contains(err_text, "configuration error");
	assert_int_equal(run("serve", "--config", "/nonexistent/x.conf", NULL), EX_CONFIG);
}

static void test_healthcheck_down(void **state)
{
	/* Port 1 on loopback: nothing listens, so the connection is refused at once. */
	assert_int_equal(run("healthcheck", "--listen", "127.0.0.1:1", "--timeout", "2", NULL),
			 EX_UNAVAILABLE);
	assert_contains(err_text, "http://127.0.0.1:1/health");
	assert_int_equal(run("healthcheck", "--listen", "[::]:1", "--timeout", "2", NULL),
			 EX_UNAVAILABLE);
	assert_contains(err_text, "http://[::1]:1/health");
	assert_int_equal(run("healthcheck", "--url", "http://u:pw@127.0.0.1:1/health", NULL),
			 EX_UNAVAILABLE);
	assert_contains(err_text, "http://***@127.0.0.1:1/health");
	assert_null(strstr(err_text, "pw"));
	assert_int_equal(run("healthcheck", "--listen", "127.0.0.1:0", NULL), EX_USAGE);
	assert_int_equal(run("healthcheck", "--tuners", "0", NULL), EX_CONFIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_version_help, setup, teardown),
		cmocka_unit_test_setup_teardown(test_usage_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_commands, setup, teardown),
		cmocka_unit_test_setup_teardown(test_healthcheck_down, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
