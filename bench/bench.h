/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * plextv-bench: shared helpers of the scenarios (process control, /proc accounting, loopback
 * sockets, run metadata, JSON results).
 *
 * Rules every scenario follows: traffic only to loopback; every wait is bounded in time; each
 * child is started in its own process group, gets SIGKILL if the bench dies (PR_SET_PDEATHSIG),
 * and is stopped by its pid at the end of the run.
 */
#pragma once

#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "plextv/buf.h"
#include "plextv/common.h"

/* Exit codes (sysexits.h values, spelled out so scenarios need not include it). */
#define BENCH_EX_OK	     0
#define BENCH_EX_FAIL	     1
#define BENCH_EX_USAGE	     64
#define BENCH_EX_UNAVAILABLE 69

/* Set by SIGINT/SIGTERM: every wait loop checks it and winds down. */
extern volatile sig_atomic_t bench_interrupted;
void bench_signals_install(void);

/* Subcommands (main.c dispatches). Each returns an exit code. */
int bench_cmd_http(int argc, char **argv);
int bench_cmd_fanout(int argc, char **argv);
int bench_cmd_source(int argc, char **argv);
int bench_cmd_report(int argc, char **argv);
int bench_cmd_plextv_httpd(int argc, char **argv);

int bench_cmd_tune(int argc, char **argv);
int bench_cmd_slow(int argc, char **argv);
int bench_cmd_churn(int argc, char **argv);
int bench_cmd_api(int argc, char **argv);
int bench_cmd_lineup(int argc, char **argv);
int bench_cmd_epg(int argc, char **argv);
int bench_cmd_zerocopy(int argc, char **argv);
int bench_cmd_bpf(int argc, char **argv);
int bench_cmd_all(int argc, char **argv);

/* ---- http.c ---- */
struct wrk_result {
	double rps, p50_ms, p99_ms, resp_bytes;
	uint64_t requests, errors, non2xx;
};
/** Parses `wrk --latency` output. Returns 0 or -EPROTO. */
int bench_wrk_parse(const char *out, struct wrk_result *w);

/* ---- util.c ---- */
struct bench_meta {
	char commit[64];
	bool dirty;
	char kernel[128];
	char cpu_model[128];
	char date[32];
	unsigned ncpu;
	uint64_t mem_bytes;
};
void bench_meta_collect(struct bench_meta *m);
/** A result object with scenario, relay and the machine metadata filled in. */
json_t *bench_json_result(const char *scenario, const char *relay);
/** Writes @j to @path (via a temporary file and rename). Returns 0 or -errno. */
int bench_json_write(const json_t *j, const char *path);
/** Sets @key to @v, or to null when @v is NaN (a figure that could not be measured). */
void bench_json_num(json_t *obj, const char *key, double v);

/** Sorts @v and returns the q-quantile (nearest rank below); NaN when @n is 0. */
double bench_quantile(double *v, size_t n, double q);
int bench_parse_double(const char *s, double min, double max, double *out);
int bench_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out);

/** Picks a currently free TCP port on 127.0.0.1. */
int bench_free_port(uint16_t *port);
/** Waits until something accepts on 127.0.0.1:@port. Returns 0, -ETIMEDOUT or -EINTR. */
int bench_wait_port(uint16_t port, unsigned timeout_ms);
/** A blocking HTTP/1.0 GET on 127.0.0.1:@port; @body gets the body. Returns 0 or -errno. */
int bench_http_get(uint16_t port, const char *path, int *status, struct ptv_buf *body,
		   unsigned timeout_ms);
/** Sleeps until the monotonic time @deadline_ns or an interrupt. */
void bench_sleep_until(uint64_t deadline_ns);
/** This executable (children re-run it as `plextv-bench source` etc.). */
int bench_self_exe(char *out, size_t n);
/** Directory holding this executable (for sibling binaries like plextv). */
int bench_self_dir(char *out, size_t n);
/** Creates a private temporary directory /tmp/plextv-bench.XXXXXX. */
int bench_tmpdir(char *out, size_t n);
/** Removes a directory tree created by bench_tmpdir (best effort). */
void bench_rmtree(const char *dir);
/** Writes @n bytes to a new file @path. */
int bench_write_file(const char *path, const void *p, size_t n);
/* The 1 KiB static body both servers answer in `http` (deterministic text). */
#define BENCH_STATIC_BYTES 1024
void bench_static_body(char *out, size_t n);
/** Default data directory: $PTV_SHARED_DATA or the path configured at build time. */
const char *bench_shared_data(void);
/** Whether @prog is an executable found in PATH. */
bool bench_have_program(const char *prog);

struct bench_url {
	char host[64]; /* 127.0.0.1, ::1 or localhost only */
	uint16_t port;
	char path[512];
};
/** Parses http://HOST:PORT/PATH; refuses hosts that are not loopback. */
int bench_url_parse(const char *url, struct bench_url *u);

/* ---- proc.c ---- */
struct bench_spawn_opts {
	const char *log_path; /* stdout and stderr go here (appended); NULL: /dev/null */
	uid_t uid;	      /* run as this user when nonzero */
	gid_t gid;
	const char *const *env; /* extra KEY=VALUE entries, NULL-terminated; may be NULL */
	const char *cwd;	/* may be NULL */
};
/** Starts @argv[0] (searched in PATH) in a new process group. Returns 0 or -errno. */
int bench_spawn(const char *const *argv, const struct bench_spawn_opts *o, pid_t *out);
/** Waits up to @timeout_ms for @pid to exit. Returns 0 (status in *@status), -ETIMEDOUT. */
int bench_wait_exit(pid_t pid, unsigned timeout_ms, int *status);
/** SIGTERM to @pid's group, then SIGKILL after @grace_ms; reaps it. Returns 0 or -errno. */
int bench_stop(pid_t pid, unsigned grace_ms);
/** Whether @pid is still running (not exited; a zombie counts as exited). */
bool bench_alive(pid_t pid);

struct bench_tree_usage {
	double cpu_s;	    /* utime+stime (+ reaped children) of the process and descendants */
	uint64_t rss_bytes; /* resident set of all of them */
	unsigned nproc;
};
/** Sums /proc figures over @root and every descendant. Returns 0 or -ESRCH. */
int bench_tree_usage(pid_t root, struct bench_tree_usage *u);
/** Host-wide busy and total CPU time since boot (/proc/stat, seconds summed over CPUs). */
int bench_host_cpu(double *busy_s, double *total_s);
/** Finds or creates the unprivileged system user @name. Returns 0 or -errno. */
int bench_user_ensure(const char *name, uid_t *uid, gid_t *gid);
/** Prints the last @max bytes of a log file to stderr (for start-up failures). */
void bench_log_tail(const char *path, size_t max);
