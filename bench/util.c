/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

volatile sig_atomic_t bench_interrupted;

static void bench_on_signal(int sig)
{
	(void)sig;
	bench_interrupted = 1;
}

void bench_signals_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = bench_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* Peers and clients close sockets under us; a write must fail, not kill the bench. */
	signal(SIGPIPE, SIG_IGN);
}

static void meta_run(const char *cmd, char *out, size_t n)
{
	FILE *f = popen(cmd, "r");

	out[0] = '\0';
	if (!f)
		return;
	if (fgets(out, (int)n, f))
		out[strcspn(out, "\r\n")] = '\0';
	pclose(f);
}

static void meta_cpu_model(char *out, size_t n)
{
	char line[256];
	FILE *f = fopen("/proc/cpuinfo", "re");
	char *v;

	snprintf(out, n, "unknown");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "model name", 10) || !(v = strchr(line, ':')))
			continue;
		v += 1 + strspn(v + 1, " \t");
		v[strcspn(v, "\n")] = '\0';
		snprintf(out, n, "%s", v);
		break;
	}
	fclose(f);
}

void bench_meta_collect(struct bench_meta *m)
{
	char cmd[PATH_MAX + 96], dirty[8];
	struct utsname u;
	struct sysinfo si;
	time_t now = time(NULL);
	struct tm tm;

	memset(m, 0, sizeof(*m));
	snprintf(cmd, sizeof(cmd), "git -C '%s' rev-parse HEAD 2>/dev/null", BENCH_SOURCE_DIR);
	meta_run(cmd, m->commit, sizeof(m->commit));
	if (!m->commit[0])
		snprintf(m->commit, sizeof(m->commit), "unknown");
	snprintf(cmd, sizeof(cmd), "git -C '%s' status --porcelain -uno 2>/dev/null | head -c1",
		 BENCH_SOURCE_DIR);
	meta_run(cmd, dirty, sizeof(dirty));
	m->dirty = dirty[0] != '\0';
	if (uname(&u) == 0)
		snprintf(m->kernel, sizeof(m->kernel), "%s", u.release);
	meta_cpu_model(m->cpu_model, sizeof(m->cpu_model));
	gmtime_r(&now, &tm);
	strftime(m->date, sizeof(m->date), "%Y-%m-%dT%H:%M:%SZ", &tm);
	m->ncpu = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	if (sysinfo(&si) == 0)
		m->mem_bytes = (uint64_t)si.totalram * si.mem_unit;
}

static double meta_loadavg(void)
{
	double l = NAN;
	FILE *f = fopen("/proc/loadavg", "re");

	if (f) {
		if (fscanf(f, "%lf", &l) != 1)
			l = NAN;
		fclose(f);
	}
	return l;
}

json_t *bench_json_result(const char *scenario, const char *relay)
{
	struct bench_meta m;
	json_t *j;

	bench_meta_collect(&m);
	j = json_pack("{s:s, s:s, s:s, s:b, s:s, s:s, s:I, s:I, s:s}", "scenario", scenario,
		      "relay", relay, "commit", m.commit, "dirty", m.dirty, "kernel", m.kernel,
		      "cpu_model", m.cpu_model, "ncpu", (json_int_t)m.ncpu, "mem_bytes",
		      (json_int_t)m.mem_bytes, "date", m.date);
	/* Other work on the machine skews every figure: record how busy it was. */
	bench_json_num(j, "loadavg_1m", meta_loadavg());
	return j;
}

void bench_json_num(json_t *obj, const char *key, double v)
{
	json_object_set_new(obj, key, isfinite(v) ? json_real(v) : json_null());
}

int bench_json_write(const json_t *j, const char *path)
{
	char tmp[PATH_MAX];

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	if (json_dump_file(j, tmp, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(6)))
		return -EIO;
	if (rename(tmp, path) == -1)
		return -errno;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double bench_quantile(double *v, size_t n, double q)
{
	if (!n)
		return NAN;
	qsort(v, n, sizeof(*v), cmp_double);
	return v[(size_t)floor(q * (double)(n - 1))];
}

int bench_parse_double(const char *s, double min, double max, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= min && v <= max))
		return -EINVAL;
	*out = v;
	return 0;
}

int bench_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

static void loopback_addr(struct sockaddr_in *sa, uint16_t port)
{
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons(port);
	sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

int bench_free_port(uint16_t *port)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd, ret = 0;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -errno;
	loopback_addr(&sa, 0);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) == -1)
		ret = -errno;
	else
		*port = ntohs(sa.sin_port);
	close(fd);
	return ret;
}

static int connect_once(uint16_t port, unsigned timeout_ms)
{
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
	struct sockaddr_in sa;
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	loopback_addr(&sa, port);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

int bench_wait_port(uint16_t port, unsigned timeout_ms)
{
	uint64_t end = ptv_now_ns() + (uint64_t)timeout_ms * 1000000u;
	int fd;

	while (!bench_interrupted) {
		fd = connect_once(port, 200);
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		if (ptv_now_ns() >= end)
			return -ETIMEDOUT;
		usleep(20000);
	}
	return -EINTR;
}

static int http_read_all(int fd, struct ptv_buf *raw)
{
	ssize_t r;

	for (;;) {
		if (raw->len > (64u << 20)) /* a 100k-channel lineup.json is ~9.5 MB */
			return -EMSGSIZE;
		if (ptv_buf_reserve(raw, 16384))
			return -ENOMEM;
		r = recv(fd, raw->data + raw->len, 16384, 0);
		if (r == 0)
			return 0;
		if (r < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		raw->len += (size_t)r;
	}
}

static int http_split(struct ptv_buf *raw, int *status, struct ptv_buf *body)
{
	char *end;
	int major, minor;

	if (ptv_buf_putc(raw, '\0'))
		return -ENOMEM;
	raw->len--;
	end = strstr(raw->data, "\r\n\r\n");
	if (!end || sscanf(raw->data, "HTTP/%d.%d %d", &major, &minor, status) != 3)
		return -EPROTO;
	end += 4;
	if (body)
		return ptv_buf_append(body, end, raw->len - (size_t)(end - raw->data));
	return 0;
}

int bench_http_get(uint16_t port, const char *path, int *status, struct ptv_buf *body,
		   unsigned timeout_ms)
{
	struct ptv_buf req = {0}, raw = {0};
	int fd, ret;

	fd = connect_once(port, timeout_ms);
	if (fd < 0)
		return fd;
	ptv_buf_printf(&req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1:%u\r\n\r\n", path, port);
	ret = req.oom ? -ENOMEM : 0;
	if (!ret && send(fd, req.data, req.len, MSG_NOSIGNAL) != (ssize_t)req.len)
		ret = -EIO;
	if (!ret)
		ret = http_read_all(fd, &raw);
	if (!ret)
		ret = http_split(&raw, status, body);
	close(fd);
	ptv_buf_free(&req);
	ptv_buf_free(&raw);
	return ret;
}

void bench_sleep_until(uint64_t deadline_ns)
{
	uint64_t now;

	while (!bench_interrupted && (now = ptv_now_ns()) < deadline_ns) {
		uint64_t d = PTV_MIN(deadline_ns - now, 100000000u);
		struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)d};

		nanosleep(&ts, NULL);
	}
}

int bench_self_exe(char *out, size_t n)
{
	ssize_t r = readlink("/proc/self/exe", out, n - 1);

	if (r < 0)
		return -errno;
	out[r] = '\0';
	return 0;
}

int bench_self_dir(char *out, size_t n)
{
	ssize_t r = readlink("/proc/self/exe", out, n - 1);
	char *slash;

	if (r < 0)
		return -errno;
	out[r] = '\0';
	slash = strrchr(out, '/');
	if (!slash)
		return -ENOENT;
	*slash = '\0';
	return 0;
}

int bench_tmpdir(char *out, size_t n)
{
	if (snprintf(out, n, "/tmp/plextv-bench.XXXXXX") >= (int)n)
		return -ENAMETOOLONG;
	if (!mkdtemp(out))
		return -errno;
	/* Peers that run as an unprivileged user (VLC) write their HOME in here. */
	chmod(out, 0755);
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void bench_rmtree(const char *dir)
{
	if (dir && !strncmp(dir, "/tmp/plextv-bench.", 18))
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int bench_write_file(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ssize_t w;

	if (fd == -1)
		return -errno;
	w = write(fd, p, n);
	close(fd);
	return w == (ssize_t)n ? 0 : -EIO;
}

const char *bench_shared_data(void)
{
	const char *e = getenv("PTV_SHARED_DATA");

	return e && *e ? e : BENCH_SHARED_DATA;
}

bool bench_have_program(const char *prog)
{
	char cand[PATH_MAX];
	const char *path = getenv("PATH"), *p, *colon;

	if (strchr(prog, '/'))
		return access(prog, X_OK) == 0;
	for (p = path ? path : "/usr/bin:/bin"; *p; p = colon + 1) {
		colon = strchrnul(p, ':');
		snprintf(cand, sizeof(cand), "%.*s/%s", (int)(colon - p), p, prog);
		if (access(cand, X_OK) == 0)
			return true;
		if (!*colon)
			break;
	}
	return false;
}

int bench_url_parse(const char *url, struct bench_url *u)
{
	const char *h, *colon, *slash;
	unsigned port;
	char num[8];

	memset(u, 0, sizeof(*u));
	if (strncmp(url, "http://", 7))
		return -EINVAL;
	h = url + 7;
	slash = strchrnul(h, '/');
	colon = memchr(h, ':', (size_t)(slash - h));
	if (*h == '[') { /* [::1]:port */
		colon = strstr(h, "]:");
		if (!colon || colon > slash)
			return -EINVAL;
		colon++;
	}
	if (!colon || (size_t)(colon - h) >= sizeof(u->host) || slash - colon - 1 >= 7)
		return -EINVAL;
	memcpy(u->host, h, (size_t)(colon - h));
	memcpy(num, colon + 1, (size_t)(slash - colon - 1));
	num[slash - colon - 1] = '\0';
	if (bench_parse_uint(num, 1, 65535, &port))
		return -EINVAL;
	u->port = (uint16_t)port;
	snprintf(u->path, sizeof(u->path), "%s", *slash ? slash : "/");
	if (strcmp(u->host, "127.0.0.1") && strcmp(u->host, "[::1]") &&
	    strcmp(u->host, "localhost"))
		return -EPERM; /* the bench only talks to loopback */
	return 0;
}

void bench_static_body(char *out, size_t n)
{
	static const char line[] = "plextv-bench static body, the same bytes for every server. ";
	size_t i;

	for (i = 0; i < n; i++)
		out[i] = line[i % (sizeof(line) - 1)];
	if (n)
		out[n - 1] = '\n';
}
