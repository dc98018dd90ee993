/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plextv/build-config.h"
#include "plextv/config.h"

/* Each test gets a fresh temporary directory and an environment without PLEXTV_* keys. */
struct fixture {
	char dir[64];
	char err[512];
	struct ptv_config cfg;
};

static void clear_env(void)
{
	const struct ptv_config_key_desc *d;
	char name[128];

	for (size_t i = 0; (d = ptv_config_key(i)); i++) {
		unsetenv(d->env);
		snprintf(name, sizeof(name), "%s_FILE", d->env);
		unsetenv(name);
		snprintf(name, sizeof(name), "FILE__%s", d->env);
		unsetenv(name);
	}
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/ptv-config-test-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	clear_env();
	*state = f;
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	clear_env();
	free(f);
	return 0;
}

/* Writes @text to DIR/@name and returns the path (static buffer per call site is enough). */
static const char *write_file(struct fixture *f, const char *name, const char *text)
{
	static char path[4][256];
	static unsigned next;
	char *p = path[next++ % 4];
	FILE *fp;

	snprintf(p, 256, "%s/%s", f->dir, name);
	fp = fopen(p, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	return p;
}

/* Loads with --data-dir pointing at the fixture so that ./data never leaks into a test. */
static int load(struct fixture *f, const char *file, const struct ptv_config_override *extra,
		size_t n_extra)
{
	struct ptv_config_override ov[16] = {{"data-dir", f->dir}};

	assert_true(n_extra < 16);
	if (n_extra)
		memcpy(ov + 1, extra, n_extra * sizeof(*extra));
	f->err[0] = '\0';
	return ptv_config_load(&f->cfg, file, ov, n_extra + 1, f->err, sizeof(f->err));
}

static char *show(const struct ptv_config *c)
{
	static char text[8192];
	FILE *fp = fmemopen(text, sizeof(text), "w");

	assert_non_null(fp);
	ptv_config_show(c, fp);
	fclose(fp);
	return text;
}

#define assert_contains(hay, needle)                                         \
	do {                                                                 \
		if (!strstr((hay), (needle)))                                \
			fail_msg("'%s' not found in:\n%s", (needle), (hay)); \
	} while (0)

static void test_defaults(void **state)
{
	struct ptv_config c;

	ptv_config_defaults(&c);
	assert_string_equal(c.listen, "0.0.0.0:8080");
	assert_string_equal(c.data_dir, "./data");
	assert_string_equal(c.base_url, "");
	assert_int_equal(c.workers, 0);
	assert_int_equal(c.pool_threads, 2);
	assert_int_equal(c.max_connections, 10000);
	assert_int_equal(c.shutdown_timeout_ms, 5000);
	assert_int_equal(c.header_max_bytes, 16384);
	assert_int_equal(c.header_max_count, 100);
	assert_int_equal(c.url_max_bytes, 8192);
	assert_int_equal(c.body_max_bytes, 1048576);
	assert_int_equal(c.header_timeout_ms, 10000);
	assert_int_equal(c.idle_timeout_ms, 60000);
	assert_int_equal(c.write_timeout_ms, 30000);
	assert_int_equal(c.log_level, PTV_LOG_INFO);
	assert_int_equal(c.log_format, PTV_LOG_TEXT);
	assert_int_equal(c.tuners, 4);
	assert_string_equal(c.user_agent, "PlexTV/" PTV_VERSION);
	assert_string_equal(c.acestream_engine, "http://127.0.0.1:6878");
	assert_string_equal(c.config_file, "");
}

/* The spellings in the table follow one rule; a typo there would be a silent misfeature. */
static void test_key_table(void **state)
{
	const struct ptv_config_key_desc *d;
	char flag[64], env[64];
	size_t i, j;

	for (i = 0; (d = ptv_config_key(i)); i++) {
		snprintf(env, sizeof(env), "PLEXTV_%s", d->name);
		for (j = 0; d->name[j]; j++) {
			flag[j] = d->name[j] == '_' ? '-' : d->name[j];
			env[7 + j] = (char)toupper((unsigned char)d->name[j]);
		}
		flag[j] = '\0';
		assert_string_equal(d->flag, flag);
		assert_string_equal(d->env, env);
		assert_true(ptv_config_has_key(d->name));
		assert_true(ptv_config_has_key(d->flag));
		assert_non_null(d->help);
		assert_non_null(d->metavar);
	}
	/* Modules add keys over time: at least the foundation's, at most what source[] holds. */
	assert_true(i >= 19);
	assert_true(i <= sizeof(((struct ptv_config *)0)->source));
	assert_false(ptv_config_has_key("nope"));
	assert_false(ptv_config_has_key("config"));
}

static void test_choices(void **state)
{
	struct ptv_config c;
	char err[256];

	ptv_config_defaults(&c);
	assert_int_equal(ptv_config_set(&c, "ssdp", "off", err, sizeof(err)), 0);
	assert_string_equal(c.ssdp, "off");
	assert_int_not_equal(ptv_config_set(&c, "ssdp", "maybe", err, sizeof(err)), 0);
	assert_non_null(strstr(err, "on|off"));
	assert_string_equal(c.ssdp, "off");
	assert_int_not_equal(ptv_config_set(&c, "send-mode", "sendfile", err, sizeof(err)), 0);
	assert_int_equal(ptv_config_set(&c, "bpf", "auto", err, sizeof(err)), 0);
}

static void test_layers(void **state)
{
	struct fixture *f = *state;
	const struct ptv_config_override ov[] = {{"tuners", "7"}, {"log_format", "json"}};
	const char *file;
	char *text;

	file = write_file(f, "a.conf",
			  "; comment\n[server]\nlisten = 127.0.0.1:9000\nworkers = 1\n"
			  "[log]\nlog_level = debug  ; inline comment\nlog_format = text\n"
			  "[tuner]\ntuners = 5\n");
	setenv("PLEXTV_TUNERS", "6", 1);
	setenv("PLEXTV_WORKERS", "3", 1);
	assert_int_equal(load(f, file, ov, 2), 0);
	assert_string_equal(f->cfg.listen, "127.0.0.1:9000");
	assert_int_equal(f->cfg.workers, 3);
	assert_int_equal(f->cfg.tuners, 7);
	assert_int_equal(f->cfg.log_level, PTV_LOG_DEBUG);
	assert_int_equal(f->cfg.log_format, PTV_LOG_JSON);
	assert_string_equal(f->cfg.config_file, file);

	text = show(&f->cfg);
	assert_contains(text, "[server]\nlisten = 127.0.0.1:9000  ; from file\n");
	assert_contains(text, "\ndata_dir = ");
	assert_contains(text, "workers = 3  ; from env\n");
	assert_contains(text, "pool_threads = 2  ; from default\n");
	assert_contains(text,
			"[log]\nlog_level = debug  ; from file\nlog_format = json  ; from flag\n");
	assert_contains(text, "[tuner]\ntuners = 7  ; from flag\n");
	assert_contains(text, "[http]\nheader_max_bytes = 16384  ; from default\n");
	assert_contains(text, "[sources]\nuser_agent = PlexTV/" PTV_VERSION "  ; from default\n");
	assert_contains(text, file);
}

static void test_default_file(void **state)
{
	struct fixture *f = *state;
	char path[256];

	/* Absent: defaults, no error. */
	assert_int_equal(load(f, NULL, NULL, 0), 0);
	assert_string_equal(f->cfg.config_file, "");
	assert_int_equal(f->cfg.tuners, 4);

	/* Present in DATA_DIR (which came from a flag). */
	write_file(f, "plextv.conf", "[tuner]\ntuners = 9\n");
	assert_int_equal(load(f, NULL, NULL, 0), 0);
	snprintf(path, sizeof(path), "%s/plextv.conf", f->dir);
	assert_string_equal(f->cfg.config_file, path);
	assert_int_equal(f->cfg.tuners, 9);
	assert_string_equal(f->cfg.data_dir, f->dir);

	/* DATA_DIR from the environment finds it too. */
	setenv("PLEXTV_DATA_DIR", f->dir, 1);
	assert_int_equal(ptv_config_load(&f->cfg, NULL, NULL, 0, f->err, sizeof(f->err)), 0);
	assert_int_equal(f->cfg.tuners, 9);
	assert_string_equal(f->cfg.config_file, path);

	/* An invalid default file is an error like any other. */
	write_file(f, "plextv.conf", "[tuner]\ntuners = many\n");
	assert_int_equal(load(f, NULL, NULL, 0), -PTV_ERR_CONFIG);
	assert_contains(f->err, "plextv.conf:2: tuners: 'many' is not a number");
}

static void test_missing_explicit_file(void **state)
{
	struct fixture *f = *state;
	char path[256];
	int ret;

	snprintf(path, sizeof(path), "%s/nope.conf", f->dir);
	ret = load(f, path, NULL, 0);
	assert_int_equal(ret, -ENOENT);
	assert_contains(f->err, path);
	assert_contains(f->err, "No such file");
}

struct bad_file {
	const char *text;
	const char *err; /* expected substring of the message, after "FILE:" */
};

static void test_bad_files(void **state)
{
	struct fixture *f = *state;
	static const struct bad_file cases[] = {
		{"[server]\nlisten = :80\nfoo = 1\n", ":3: unknown key 'foo'"},
		{"[server]\ntuners = 4\n", ":2: key 'tuners' belongs in [tuner], not [server]"},
		{"tuners = 4\n", ":1: key 'tuners' belongs in [tuner], not outside any section"},
		{"[tunre]\ntuners = 4\n", ":2: key 'tuners' belongs in [tuner], not [tunre]"},
		{"[tunre]\nfoo = 4\n", ":2: unknown section [tunre]"},
		{"[tuner]\ntuners = four\n", ":2: tuners: 'four' is not a number"},
		{"[tuner]\ntuners = -1\n", ":2: tuners: '-1' is not a number"},
		{"[tuner]\ntuners = 4x\n", ":2: tuners: '4x' is not a number"},
		{"[tuner]\ntuners = \n", ":2: tuners: '' is not a number"},
		{"[tuner]\ntuners = 0\n", ":2: tuners: 0 is out of range (1..1024)"},
		{"[tuner]\ntuners = 1025\n", ":2: tuners: 1025 is out of range (1..1024)"},
		{"[tuner]\ntuners = 99999999999999999999999\n", "is out of range (1..1024)"},
		{"[http]\nheader_max_bytes = 1023\n", ":2: header_max_bytes: 1023 is out of range"},
		{"[server]\nlisten = 8080\n", ":2: listen: '8080' is not ADDR:PORT"},
		{"[server]\nlisten = 1.2.3.4:65536\n", ":2: listen: '1.2.3.4:65536' is not"},
		{"[server]\nlisten = example.com:80\n", ":2: listen: 'example.com:80' is not"},
		{"[server]\nlisten = ::1:80\n", ":2: listen: '::1:80' is not"},
		{"[server]\ndata_dir =\n", ":2: data_dir: must not be empty"},
		{"[server]\nbase_url = ftp://x\n", ":2: base_url: not an http:// or https:// URL"},
		{"[log]\nlog_level = loud\n",
		 ":2: log_level: 'loud' is not debug, info, warn or error"},
		{"[log]\nlog_format = xml\n", ":2: log_format: 'xml' is not text or json"},
		{"[server]\nlisten\n", ":2: syntax error"},
		{"[server\nlisten = :1\n", ":1: syntax error"},
		{"[tuner]\ntuners = 4\ntuners = 5\n", ":3: key 'tuners' already set on line 2"},
		{"[tuner]\ntuners = 4\n  pool_threads = 3\n", ":3: key 'tuners' already set"},
		{"[server]\nfoo = 1\n[tuner]\nbar\n", ":2: unknown key 'foo'"},
		{"[tuner]\nbar\n[server]\nfoo = 1\n", ":2: syntax error"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *file = write_file(f, "bad.conf", cases[i].text);

		f->cfg.tuners = 12345;
		if (load(f, file, NULL, 0) != -PTV_ERR_CONFIG)
			fail_msg("case %zu accepted: %s", i, cases[i].text);
		if (strncmp(f->err, file, strlen(file)) || !strstr(f->err, cases[i].err))
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, f->err, cases[i].err);
		/* A failed load leaves the output alone (SIGHUP keeps the old config). */
		assert_int_equal(f->cfg.tuners, 12345);
	}
}

static void test_long_line_and_nul(void **state)
{
	struct fixture *f = *state;
	char text[4096];
	const char *file;
	FILE *fp;

	snprintf(text, sizeof(text), "[sources]\nuser_agent = %0400d\n", 0);
	file = write_file(f, "long.conf", text);
	assert_int_equal(load(f, file, NULL, 0), -PTV_ERR_CONFIG);
	assert_contains(f->err, ":2: line too long");

	file = write_file(f, "nul.conf", "");
	fp = fopen(file, "w");
	fwrite("[tuner]\ntuners = 4\0\n", 1, 20, fp);
	fclose(fp);
	assert_int_equal(load(f, file, NULL, 0), -PTV_ERR_CONFIG);
	assert_contains(f->err, ":2: contains a NUL byte");
}

static void test_env(void **state)
{
	struct fixture *f = *state;
	const char *secret;
	char var[300];

	setenv("PLEXTV_LOG_LEVEL", "WARNING", 1);
	setenv("PLEXTV_LISTEN", "[::1]:1234", 1);
	setenv("PLEXTV_BASE_URL", "", 1);
	assert_int_equal(load(f, NULL, NULL, 0), 0);
	assert_int_equal(f->cfg.log_level, PTV_LOG_WARN);
	assert_string_equal(f->cfg.listen, "[::1]:1234");
	assert_contains(show(&f->cfg), "base_url =   ; from env\n");

	setenv("PLEXTV_TUNERS", "lots", 1);
	assert_int_equal(load(f, NULL, NULL, 0), -PTV_ERR_CONFIG);
	assert_string_equal(f->err, "PLEXTV_TUNERS: 'lots' is not a number");
	unsetenv("PLEXTV_TUNERS");

	/* PLEXTV_X_FILE: trailing newline stripped. */
	secret = write_file(f, "ua", "Secret Agent/1.0\r\n\n");
	setenv("PLEXTV_USER_AGENT_FILE", secret, 1);
	assert_int_equal(load(f, NULL, NULL, 0), 0);
	assert_string_equal(f->cfg.user_agent, "Secret Agent/1.0");
	assert_contains(show(&f->cfg), "user_agent = Secret Agent/1.0  ; from env\n");
	unsetenv("PLEXTV_USER_AGENT_FILE");

	/* FILE__PLEXTV_X (linuxserver.io style). */
	setenv("FILE__PLEXTV_TUNERS", write_file(f, "tuners", "12\n"), 1);
	assert_int_equal(load(f, NULL, NULL, 0), 0);
	assert_int_equal(f->cfg.tuners, 12);

	/* Two sources for one key is ambiguous. */
	setenv("PLEXTV_TUNERS", "3", 1);
	assert_int_equal(load(f, NULL, NULL, 0), -PTV_ERR_CONFIG);
	assert_contains(f->err, "set only one of PLEXTV_TUNERS, PLEXTV_TUNERS_FILE and "
				"FILE__PLEXTV_TUNERS");
	unsetenv("PLEXTV_TUNERS");
	unsetenv("FILE__PLEXTV_TUNERS");

	/* A missing secret file. */
	snprintf(var, sizeof(var), "%s/missing", f->dir);
	setenv("PLEXTV_TUNERS_FILE", var, 1);
	assert_int_equal(load(f, NULL, NULL, 0), -PTV_ERR_CONFIG);
	assert_contains(f->err, "PLEXTV_TUNERS_FILE: cannot read ");
	assert_contains(f->err, "No such file");
	unsetenv("PLEXTV_TUNERS_FILE");

	/* A bad value read from a file names the variable too. */
	setenv("PLEXTV_TUNERS_FILE", write_file(f, "t2", "0\n"), 1);
	assert_int_equal(load(f, NULL, NULL, 0), -PTV_ERR_CONFIG);
	assert_string_equal(f->err, "PLEXTV_TUNERS: 0 is out of range (1..1024)");
	unsetenv("PLEXTV_TUNERS_FILE");

	/* Control characters would end up in HTTP headers. */
	setenv("PLEXTV_USER_AGENT", "a\r\nX-Evil: 1", 1);
	assert_int_equal(load(f, NULL, NULL, 0), -PTV_ERR_CONFIG);
	assert_string_equal(f->err, "PLEXTV_USER_AGENT: contains a control character");
}

static void test_flags(void **state)
{
	struct fixture *f = *state;
	const struct ptv_config_override unknown[] = {{"turners", "4"}};
	const struct ptv_config_override bad[] = {{"tuners", "0"}};
	const struct ptv_config_override both[] = {{"header-timeout-ms", "200"},
						   {"header_timeout_ms", "300"}};
	char long_ua[400];

	assert_int_equal(load(f, NULL, unknown, 1), -PTV_ERR_CONFIG);
	assert_string_equal(f->err, "unknown option --turners");
	assert_int_equal(load(f, NULL, bad, 1), -PTV_ERR_CONFIG);
	assert_string_equal(f->err, "--tuners: 0 is out of range (1..1024)");
	/* Both spellings work; the last one wins. */
	assert_int_equal(load(f, NULL, both, 2), 0);
	assert_int_equal(f->cfg.header_timeout_ms, 300);

	/* ptv_config_set() */
	assert_int_equal(ptv_config_set(&f->cfg, "log-level", "error", f->err, sizeof(f->err)), 0);
	assert_int_equal(f->cfg.log_level, PTV_LOG_ERROR);
	assert_int_equal(ptv_config_set(&f->cfg, "nope", "1", f->err, sizeof(f->err)),
			 -PTV_ERR_CONFIG);
	assert_int_equal(ptv_config_set(&f->cfg, "workers", "257", NULL, 0), -PTV_ERR_CONFIG);
	memset(long_ua, 'a', sizeof(long_ua) - 1);
	long_ua[sizeof(long_ua) - 1] = '\0';
	assert_int_equal(ptv_config_set(&f->cfg, "user_agent", long_ua, f->err, sizeof(f->err)),
			 -PTV_ERR_CONFIG);
	assert_string_equal(f->err, "user_agent: too long (at most 255 bytes)");
}

static void test_show_redacts(void **state)
{
	struct fixture *f = *state;
	const struct ptv_config_override ov[] = {
		{"acestream-engine", "http://ace:pw@10.0.0.2:6878/?token=tok"},
		{"base-url", "https://user:pass@tv.example/"},
	};
	const char *file;
	char *text;

	/* A bad URL in the file: the message must not echo the credentials either. */
	file = write_file(f, "c.conf", "[sources]\nacestream_engine = ftp://ace:pw@h/\n");
	assert_int_equal(load(f, file, NULL, 0), -PTV_ERR_CONFIG);
	assert_null(strstr(f->err, "pw"));

	assert_int_equal(load(f, NULL, ov, 2), 0);
	text = show(&f->cfg);
	assert_contains(text,
			"acestream_engine = http://***@10.0.0.2:6878/?token=***  ; from flag\n");
	assert_contains(text, "base_url = https://***@tv.example/  ; from flag\n");
	assert_null(strstr(text, "pw"));
	assert_null(strstr(text, "pass"));
	assert_null(strstr(text, "=tok"));
	/* The stored value itself is intact. */
	assert_string_equal(f->cfg.acestream_engine, "http://ace:pw@10.0.0.2:6878/?token=tok");
}

static void test_parse_listen(void **state)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	char host[64];
	static const char *const bad[] = {
		"",	     "8080",	  ":",	      ":65536",	      ":-1",	      ": 80",
		":80 ",	     "1.2.3.4:",  "1.2.3:80", "1.2.3.4.5:80", "256.1.1.1:1",  "::1:80",
		"[::1]",     "[::1]80",	  "[::1:80",  "[]:80",	      "[1.2.3.4]:80", "host:80",
		"localhost", "0x7f.1:80", ":080000",  "[::g]:1",
	};

	assert_int_equal(ptv_config_parse_listen("0.0.0.0:8080", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(sin->sin_port), 8080);
	assert_int_equal(sin->sin_addr.s_addr, htonl(INADDR_ANY));

	assert_int_equal(ptv_config_parse_listen("127.0.0.1:0", &ss, &len), 0);
	assert_int_equal(ntohs(sin->sin_port), 0);
	assert_int_equal(sin->sin_addr.s_addr, htonl(INADDR_LOOPBACK));

	assert_int_equal(ptv_config_parse_listen(":8080", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(sin->sin_addr.s_addr, htonl(INADDR_ANY));

	assert_int_equal(ptv_config_parse_listen("localhost:65535", &ss, &len), 0);
	assert_int_equal(sin->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
	assert_int_equal(ntohs(sin->sin_port), 65535);

	assert_int_equal(ptv_config_parse_listen("192.168.1.20:80", &ss, &len), 0);
	inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
	assert_string_equal(host, "192.168.1.20");

	assert_int_equal(ptv_config_parse_listen("[::1]:8080", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	assert_int_equal(ntohs(sin6->sin6_port), 8080);
	assert_true(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));

	assert_int_equal(ptv_config_parse_listen("[::]:1", &ss, &len), 0);
	assert_true(IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr));

	assert_int_equal(ptv_config_parse_listen("[fe80::1%lo]:9", &ss, &len), 0);
	assert_int_not_equal(sin6->sin6_scope_id, 0);

	assert_int_equal(ptv_config_parse_listen(":1", NULL, NULL), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (ptv_config_parse_listen(bad[i], &ss, &len) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_key_table),
		cmocka_unit_test(test_choices),
		cmocka_unit_test_setup_teardown(test_layers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_default_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_explicit_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_line_and_nul, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_show_redacts, setup, teardown),
		cmocka_unit_test(test_parse_listen),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
