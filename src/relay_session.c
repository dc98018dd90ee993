/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * A session's home side: the ingest child (spawned on the pool, supervised through a pidfd),
 * its TS pipe read straight into the ring, its event pipe turned into log lines and metrics,
 * restarts with backoff, the linger, and publication of new data to the views.
 */
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "plextv/bpf_loader.h"
#include "plextv/ingest.h"
#include "relay_int.h"

#define ING_MOD "ingest"

static void session_tick_cb(struct ptv_timer *t);
static void session_spawn(struct relay_session *s);
static void session_teardown_check(struct relay_session *s);

static uint64_t now_ms(const struct relay_session *s)
{
	return ptv_reactor_now_ms(s->home->r);
}

static void home_op_start(struct relay_session *s)
{
	s->home->ops++;
}

static void home_op_end(struct relay_session *s)
{
	PTV_BUG_ON(!s->home->ops);
	s->home->ops--;
}

int relay_session_home_init(struct relay_session *s, struct relay_local *home)
{
	int ret;

	s->home = home;
	ret = ptv_ring_init(&s->ring, s->cfg.ring_bytes, s->cfg.ring_ms);
	if (ret)
		return ret;
	s->ts = ptv_xmalloc(sizeof(*s->ts));
	ptv_ts_state_init(s->ts);
	s->rng = ptv_now_ns() ^ ((uint64_t)s->channel_id << 32) ^ (uintptr_t)s;
	s->started_ms = s->rate_ms = now_ms(s);
	ptv_list_add_tail(&home->homes, &s->home_node);
	ptv_timer_init(&s->tick, session_tick_cb);
	ptv_timer_arm(home->r, &s->tick, RELAY_TICK_MS);
	session_spawn(s);
	return 0;
}

/* ---- spawning (pool thread) ---- */

struct spawn_job {
	struct relay_session *s;
	char *json;
	char exe[PATH_MAX];
	int err;
	int hdhr; /* the refusal code of a failed engine resolve (805/806), else 0 */
	pid_t pid;
	int pidfd, ts_fd, ev_fd;
	/* Acestream channels: the engine session to release first, and the new one */
	struct ptv_acestream *ace;
	const char *ace_src;
	char number[32];
	struct ptv_acestream_session *ace_old, *ace_new;
};

#if defined(__SANITIZE_ADDRESS__)
#define CHILD_SAN_VAR "ASAN_OPTIONS"
#elif defined(__SANITIZE_THREAD__)
#define CHILD_SAN_VAR "TSAN_OPTIONS"
#endif

#ifdef CHILD_SAN_VAR
/*
 * A sanitizer turns a SIGSEGV into a report and exit(1). A crash must stay a crash (the
 * restart reason, and what a production child does), so the child leaves fatal signals alone.
 */
static char *child_san_options(void)
{
	const char *cur = getenv(CHILD_SAN_VAR);
	char *s;

	if (asprintf(&s, CHILD_SAN_VAR "=%s%shandle_segv=0:handle_sigbus=0:handle_sigfpe=0",
		     cur ? cur : "", cur && *cur ? ":" : "") < 0)
		abort();
	return s;
}

static bool is_san_var(const char *e)
{
	return !strncmp(e, CHILD_SAN_VAR "=", strlen(CHILD_SAN_VAR) + 1);
}
#else
static bool is_san_var(const char *e)
{
	return false;
}
#endif

/* The child sees only what it needs: proxies, locale, PATH, sanitizer options. Free the
 * array with child_env_free(). */
static char **child_env(void)
{
	static const char *const keep[] = {
		"PATH=",	"TZ=",		"LANG=",      "LC_",
		"http_proxy=",	"https_proxy=", "no_proxy=",  "HTTP_PROXY=",
		"HTTPS_PROXY=", "NO_PROXY=",	"ALL_PROXY=", "ASAN_",
		"UBSAN_",	"LSAN_",	"TSAN_",      "PTV_TEST_"};
	extern char **environ;
	size_t n = 0, k = 0;
	char **env;

	while (environ[n])
		n++;
	env = ptv_xcalloc(n + 2, sizeof(*env));
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < PTV_ARRAY_SIZE(keep); j++) {
			if (!strncmp(environ[i], keep[j], strlen(keep[j])) &&
			    !is_san_var(environ[i])) {
				env[k++] = environ[i];
				break;
			}
		}
	}
#ifdef CHILD_SAN_VAR
	env[k++] = child_san_options();
#endif
	return env;
}

static void child_env_free(char **env)
{
	for (size_t i = 0; env && env[i]; i++) {
		if (is_san_var(env[i]))
			free(env[i]);
	}
	free(env);
}

static int spawn_attrs(posix_spawnattr_t *at, posix_spawn_file_actions_t *fa, int ts_w, int ev_w,
		       int cfg_r)
{
	sigset_t none, all;
	int ret;

	sigemptyset(&none);
	sigfillset(&all);
	sigdelset(&all, SIGKILL);
	sigdelset(&all, SIGSTOP);
	/* The server blocks SIGTERM/SIGINT/SIGHUP in every thread; the child starts clean. Its
	 * own process group keeps a terminal's ^C for the server, which stops the children. */
	ret = posix_spawnattr_setsigmask(at, &none);
	ret = ret ?: posix_spawnattr_setsigdefault(at, &all);
	ret = ret ?: posix_spawnattr_setpgroup(at, 0);
	ret = ret
		      ?: posix_spawnattr_setflags(at, POSIX_SPAWN_SETSIGMASK |
							      POSIX_SPAWN_SETSIGDEF |
							      POSIX_SPAWN_SETPGROUP);
	ret = ret ?: posix_spawn_file_actions_addopen(fa, 0, "/dev/null", O_RDONLY, 0);
	ret = ret ?: posix_spawn_file_actions_adddup2(fa, ts_w, 1);
	ret = ret ?: posix_spawn_file_actions_adddup2(fa, ev_w, 2);
	ret = ret ?: posix_spawn_file_actions_adddup2(fa, cfg_r, 3);
	ret = ret ?: posix_spawn_file_actions_addclosefrom_np(fa, 4);
	return -ret;
}

static int spawn_write_config(int fd, const char *json)
{
	size_t n = strlen(json), off = 0;

	/* Blocking write on the pool: the child reads it at once; at most 64 KiB. */
	while (off < n) {
		ssize_t w = write(fd, json + off, n - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		off += (size_t)w;
	}
	return 0;
}

static void spawn_close(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}

/* The ingest configuration for an engine session: its playback URL, and the prebuffer budget
 * as the first-packet (stall) and read timeouts, since the engine sends nothing meanwhile. */
static int ace_ingest_json(struct spawn_job *j, const char *url, unsigned budget_ms)
{
	json_t *o = json_loads(j->json, 0, NULL);
	char *out;

	if (!o)
		return -ENOMEM;
	json_object_set_new(o, "urls", json_pack("[s]", url));
	json_object_set_new(o, "stall_timeout_ms", json_integer(budget_ms));
	json_object_set_new(o, "rw_timeout_ms", json_integer(budget_ms));
	out = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!out)
		return -ENOMEM;
	free(j->json);
	j->json = out;
	return 0;
}

/*
 * An Acestream channel, before its child starts: the previous engine session (a respawn) is
 * stopped, a new one with a fresh pid is started, and the child reads its playback URL. Blocks
 * for at most the engine timeouts; this is a pool thread.
 */
static int ace_prepare(struct spawn_job *j)
{
	char url[1024];
	int rc;

	if (j->ace_old)
		ptv_acestream_release(j->ace, j->ace_old);
	j->ace_old = NULL;
	if (!j->ace) {
		j->hdhr = 806;
		return -ENOTSUP;
	}
	rc = ptv_acestream_resolve(j->ace, j->ace_src, j->number, &j->ace_new, url, sizeof(url));
	if (rc) {
		j->hdhr = ptv_acestream_hdhr_error(rc);
		return rc;
	}
	rc = ace_ingest_json(j, url, ptv_acestream_prebuffer_ms(j->ace));
	if (rc)
		j->hdhr = 806;
	return rc;
}

static void spawn_work(void *arg)
{
	struct spawn_job *j = arg;
	int fds[6] = {-1, -1, -1, -1, -1, -1}; /* ts r/w, ev r/w, cfg r/w */
	char *argv[] = {j->exe, (char *)"ingest", NULL};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	char **env = NULL;
	int ret;

	j->pid = -1;
	j->pidfd = j->ts_fd = j->ev_fd = -1;
	if (j->ace_src) {
		j->err = ace_prepare(j);
		if (j->err)
			return;
	}
	if (pipe2(fds, O_CLOEXEC) || pipe2(fds + 2, O_CLOEXEC) || pipe2(fds + 4, O_CLOEXEC)) {
		j->err = -errno;
		spawn_close(fds, 6);
		return;
	}
	fcntl(fds[0], F_SETPIPE_SZ, RELAY_TS_PIPE_SIZE);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	ret = spawn_attrs(&at, &fa, fds[1], fds[3], fds[4]);
	if (!ret) {
		env = child_env();
		ret = -posix_spawn(&j->pid, j->exe, &fa, &at, argv, env);
	}
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	child_env_free(env);
	/* Only the child may hold the write ends: their EOF tells us it is gone. */
	spawn_close(&fds[1], 1);
	spawn_close(&fds[3], 1);
	spawn_close(&fds[4], 1);
	if (!ret) {
		spawn_write_config(fds[5], j->json);
		j->pidfd = pidfd_open(j->pid, 0);
		if (j->pidfd < 0)
			ret = -errno;
	}
	spawn_close(&fds[5], 1);
	j->err = ret;
	if (ret && j->pid > 0) {
		kill(j->pid, SIGKILL);
		waitpid(j->pid, NULL, 0);
		j->pid = -1;
	}
	if (ret) {
		spawn_close(fds, 1);
		spawn_close(&fds[2], 1);
		return;
	}
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	fcntl(fds[2], F_SETFL, O_NONBLOCK);
	j->ts_fd = fds[0];
	j->ev_fd = fds[2];
}

/* ---- the child on the home reactor ---- */

static void child_arm_ts(struct relay_child *c);
static void child_arm_ev(struct relay_child *c);
static void child_arm_pid(struct relay_child *c);
static void child_check_done(struct relay_child *c);

static void child_signal(struct relay_child *c, int sig)
{
	if (c->exited || c->pidfd < 0)
		return;
	if (pidfd_send_signal(c->pidfd, sig, NULL, 0) && errno != ESRCH)
		ptv_warn(ING_MOD, "[%s] signal %d: %s", c->s->number, sig, ptv_strerror(-errno));
}

static void child_kill_timer_cb(struct ptv_timer *t)
{
	struct relay_child *c = ptv_container_of(t, struct relay_child, kill_timer);

	if (!c->exited) {
		child_signal(c, SIGKILL);
		return;
	}
	/* Exited but a pipe is still open (a grandchild kept it?): stop reading it. */
	if (!c->ts_eof)
		io_uring_prep_cancel(ptv_reactor_sqe(c->s->home->r, NULL), &c->ts_op, 0);
	if (!c->ev_eof)
		io_uring_prep_cancel(ptv_reactor_sqe(c->s->home->r, NULL), &c->ev_op, 0);
}

static void child_stop(struct relay_child *c)
{
	child_signal(c, SIGTERM);
	ptv_timer_arm(c->s->home->r, &c->kill_timer, RELAY_KILL_GRACE_MS);
}

/* Lost sync (never from our own muxer; a foreign ingest_command could): skip to a 0x47. */
static void ingest_resync(struct relay_session *s)
{
	size_t n, skip = 1;
	uint8_t *p = ptv_ring_pending(&s->ring, &n);

	while (skip < n && p[skip] != PTV_TS_SYNC)
		skip++;
	ptv_ring_drop_pending(&s->ring, skip);
	if (s->sync_losses++ == 0)
		ptv_warn(ING_MOD, "[%s] lost TS sync in the ingest output", s->number);
}

static void ingest_packet(struct relay_session *s, uint8_t *p, uint64_t off, uint64_t now)
{
	unsigned f = ptv_ts_process(s->ts, p, now);

	if (f & PTV_TS_F_CC_ERR)
		ptv_metric_inc(s->m_cc);
	if ((f & PTV_TS_F_KEY) && s->ts->have_pat && s->ts->have_pmt)
		ptv_ring_set_rap(&s->ring, off, s->ts->pat, s->ts->pmt, now);
}

/* @n bytes arrived at the reserved place: process and commit the whole packets. */
static void session_ingest(struct relay_session *s, size_t n)
{
	uint64_t now = now_ms(s);
	size_t pending, good;
	uint8_t *p;

	ptv_ring_wrote(&s->ring, n);
	for (;;) {
		p = ptv_ring_pending(&s->ring, &pending);
		for (good = 0; good + PTV_TS_PKT <= pending && p[good] == PTV_TS_SYNC;
		     good += PTV_TS_PKT)
			ingest_packet(s, p + good, s->ring.head + good, now);
		ptv_ring_commit(&s->ring, good);
		if (pending - good < PTV_TS_PKT)
			break;
		ingest_resync(s);
	}
	ptv_metric_add(s->m_bytes_in, n);
	ptv_metric_add(s->m_acct_in, n);
	s->rate_bytes += n;
	s->last_data_ms = now;
	if (!atomic_load_explicit(&s->has_data, memory_order_relaxed) && s->ring.head)
		atomic_store(&s->has_data, true);
	ptv_ring_trim(&s->ring, now);
	relay_session_publish(s, false);
}

static void child_ts_cb(struct ptv_reactor *r, struct ptv_op *op, int res, uint32_t flags)
{
	struct relay_child *c = ptv_container_of(op, struct relay_child, ts_op);
	struct relay_session *s = c->s;

	c->ops--;
	home_op_end(s);
	if (res > 0) {
		c->bytes += (uint64_t)res;
		c->last_ts_ms = now_ms(s);
		session_ingest(s, (size_t)res);
		child_arm_ts(c);
		return;
	}
	if (res < 0 && res != -ECANCELED)
		ptv_warn(ING_MOD, "[%s] TS pipe: %s", s->number, ptv_strerror(res));
	c->ts_eof = true;
	child_check_done(c);
}

/* A splice viewer asked for memfd chunks: only the home reactor may change the ring. */
static void session_memfd_check(struct relay_session *s)
{
	int ret;

	if (s->ring.mem || s->memfd_warned ||
	    !atomic_load_explicit(&s->want_memfd, memory_order_relaxed))
		return;
	ret = ptv_ring_use_memfd(&s->ring);
	if (ret) {
		s->memfd_warned = true;
		ptv_warn(ING_MOD, "[%s] no memfd for the ring (%s): splice viewers get copies",
			 s->number, ptv_strerror(ret));
	}
}

static void child_arm_ts(struct relay_child *c)
{
	struct relay_session *s = c->s;
	struct io_uring_sqe *sqe;
	uint8_t *p;
	size_t len;

	session_memfd_check(s);
	if (ptv_ring_reserve(&s->ring, now_ms(s), &p, &len)) {
		ptv_error(ING_MOD, "[%s] out of memory for the ring", s->number);
		child_signal(c, SIGKILL);
		c->ts_eof = true;
		return;
	}
	/* Straight into the chunk: the ring keeps the head chunk while the read is out. */
	sqe = ptv_reactor_sqe(s->home->r, &c->ts_op);
	io_uring_prep_read(sqe, c->ts_fd, p, (unsigned)len, (uint64_t)-1);
	c->ops++;
	home_op_start(s);
}

/* ---- events ---- */

static const char *jstr(json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));

	return v ? v : "";
}

static long long jint(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static void restart_metric(struct relay_session *s, const char *family_reason, bool reconnect)
{
	const char *labels[] = {s->number, family_reason, NULL};

	ptv_metric_inc(
		ptv_metric_get(reconnect ? s->relay->f_reconnects : s->relay->f_restarts, labels));
}

static void event_log(struct relay_session *s, json_t *o)
{
	const char *lvl = jstr(o, "level");
	enum ptv_log_level level = PTV_LOG_WARN;

	ptv_log_level_parse(lvl, &level);
	ptv_log(level, ING_MOD, "[%s] %s", s->number, jstr(o, "msg"));
}

/*
 * The child's upstream sockets live inside libavformat: once it says it is connected (again,
 * after a reconnect), tag whatever sockets it has open as this channel's upstream. A few µs
 * per descriptor, once per connection; a no-op without eBPF accounting.
 */
static void child_account(struct relay_session *s)
{
	struct relay_child *c = s->child;

	if (!c || c->exited || !ptv_bpf_account_active())
		return;
	ptv_bpf_account_process(c->pidfd, c->pid, s->channel_id);
}

static void event_handle(struct relay_session *s, json_t *o)
{
	const char *ev = jstr(o, "ev");

	if (!strcmp(ev, "opened") || !strcmp(ev, "first_packet"))
		child_account(s);
	if (!strcmp(ev, "opened")) {
		ptv_info(ING_MOD, "[%s] opened url #%lld (%s, video %s, audio %s) in %lld ms",
			 s->number, jint(o, "url"), jstr(o, "format"), jstr(o, "video"),
			 jstr(o, "audio"), jint(o, "open_ms"));
	} else if (!strcmp(ev, "reconnect")) {
		ptv_warn(ING_MOD, "[%s] reconnecting url #%lld (attempt %lld, %s) in %lld ms",
			 s->number, jint(o, "url"), jint(o, "attempt"), jstr(o, "reason"),
			 jint(o, "delay_ms"));
		restart_metric(s, jstr(o, "reason")[0] ? jstr(o, "reason") : "other", true);
	} else if (!strcmp(ev, "failover")) {
		ptv_warn(ING_MOD, "[%s] failing over to url #%lld", s->number, jint(o, "url"));
		ptv_metric_inc(s->m_failovers);
	} else if (!strcmp(ev, "error")) {
		ptv_warn(ING_MOD, "[%s] url #%lld: %s: %s", s->number, jint(o, "url"),
			 jstr(o, "reason"), jstr(o, "msg"));
	} else if (!strcmp(ev, "log")) {
		event_log(s, o);
	} else if (!strcmp(ev, "layout")) {
		ptv_warn(ING_MOD, "[%s] %s codec changed from %s to %s", s->number,
			 jstr(o, "stream"), jstr(o, "from"), jstr(o, "to"));
	} else if (!strcmp(ev, "exit")) {
		ptv_info(ING_MOD, "[%s] ingest exits (%lld): %s", s->number, jint(o, "code"),
			 jstr(o, "reason"));
	} else {
		ptv_debug(ING_MOD, "[%s] event %s", s->number, ev);
	}
}

static void event_line(struct relay_session *s, const char *line, size_t len)
{
	json_error_t err;
	json_t *o;

	if (!len)
		return;
	o = json_loadb(line, len, 0, &err);
	if (json_is_object(o)) {
		event_handle(s, o);
	} else {
		/* Not an event (a foreign ingest_command, a crash message): log it as text. */
		ptv_warn(ING_MOD, "[%s] %.*s", s->number, (int)PTV_MIN(len, (size_t)512), line);
	}
	json_decref(o);
}

static void child_events(struct relay_child *c)
{
	char *start = c->ev, *nl;

	while ((nl = memchr(start, '\n', c->evlen - (size_t)(start - c->ev)))) {
		event_line(c->s, start, (size_t)(nl - start));
		start = nl + 1;
	}
	c->evlen -= (size_t)(start - c->ev);
	memmove(c->ev, start, c->evlen);
	if (c->evlen == RELAY_EVLINE_MAX) {
		ptv_warn(ING_MOD, "[%s] event line too long: dropped", c->s->number);
		c->evlen = 0;
	}
}

static void child_ev_cb(struct ptv_reactor *r, struct ptv_op *op, int res, uint32_t flags)
{
	struct relay_child *c = ptv_container_of(op, struct relay_child, ev_op);

	c->ops--;
	home_op_end(c->s);
	if (res > 0) {
		c->evlen += (size_t)res;
		c->last_ev_ms = now_ms(c->s);
		child_events(c);
		child_arm_ev(c);
		return;
	}
	if (c->evlen)
		event_line(c->s, c->ev, c->evlen); /* a last line without its newline */
	c->evlen = 0;
	c->ev_eof = true;
	child_check_done(c);
}

static void child_arm_ev(struct relay_child *c)
{
	struct io_uring_sqe *sqe = ptv_reactor_sqe(c->s->home->r, &c->ev_op);

	io_uring_prep_read(sqe, c->ev_fd, c->ev + c->evlen, (unsigned)(RELAY_EVLINE_MAX - c->evlen),
			   (uint64_t)-1);
	c->ops++;
	home_op_start(c->s);
}

static void child_pid_cb(struct ptv_reactor *r, struct ptv_op *op, int res, uint32_t flags)
{
	struct relay_child *c = ptv_container_of(op, struct relay_child, pid_op);
	siginfo_t si;

	c->ops--;
	home_op_end(c->s);
	memset(&si, 0, sizeof(si));
	/* WNOHANG: the pidfd said it exited, so this never blocks the reactor. */
	if (waitid(P_PIDFD, (id_t)c->pidfd, &si, WEXITED | WNOHANG) == 0 && si.si_pid) {
		c->exited = true;
		c->status = si.si_code == CLD_EXITED ? si.si_status : -si.si_status;
		ptv_timer_arm(c->s->home->r, &c->kill_timer, 1000);
		child_check_done(c);
		return;
	}
	if (res < 0 && res != -EINTR && res != -ECANCELED) {
		ptv_error(ING_MOD, "[%s] pidfd poll: %s", c->s->number, ptv_strerror(res));
		c->exited = true;
		c->status = -SIGKILL;
		child_check_done(c);
		return;
	}
	child_arm_pid(c);
}

static void child_arm_pid(struct relay_child *c)
{
	struct io_uring_sqe *sqe = ptv_reactor_sqe(c->s->home->r, &c->pid_op);

	io_uring_prep_poll_add(sqe, c->pidfd, POLLIN);
	c->ops++;
	home_op_start(c->s);
}

/* ---- after a child ---- */

static const char *exit_reason(const struct relay_child *c)
{
	if (c->stall_killed)
		return "stall";
	if (c->status < 0)
		return "crash";
	switch (c->status) {
	case PTV_INGEST_EXIT_OK:
		return "eof";
	case PTV_INGEST_EXIT_GAVE_UP:
		return "gave_up";
	case PTV_INGEST_EXIT_OPEN_FAILED:
	case PTV_INGEST_EXIT_NO_DATA:
		return "failed";
	default:
		return "exit";
	}
}

static uint64_t session_rand(struct relay_session *s)
{
	/* xorshift64: jitter only, no need for more. */
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 7;
	s->rng ^= s->rng << 17;
	return s->rng;
}

static void session_backoff(struct relay_session *s, const char *reason)
{
	uint64_t d = RELAY_BACKOFF_MIN_MS << PTV_MIN(s->fails, 10u);

	d = PTV_MIN(d, (uint64_t)RELAY_BACKOFF_MAX_MS);
	/* Equal jitter: [d/2, d], so children of many channels do not restart in step. */
	d = d / 2 + session_rand(s) % (d / 2 + 1);
	s->fails++;
	s->backoff_until = now_ms(s) + d;
	s->state = RS_BACKOFF;
	restart_metric(s, reason, false);
	ptv_warn(ING_MOD, "[%s] ingest ended (%s); restarting in %llu ms", s->number, reason,
		 (unsigned long long)d);
}

/* The tune failed before any byte: answer the waiting viewers, end the session. */
static void session_fail(struct relay_session *s, int code)
{
	ptv_warn(RELAY_MOD, "[%s] tune failed: %d %s", s->number, code,
		 code == 807   ? "No Video Data"
		 : code == 805 ? "All Tuners In Use"
			       : "Tune Failed");
	atomic_store(&s->fail_code, code);
	pthread_mutex_lock(&s->relay->lock);
	relay_session_unlist_locked(s);
	pthread_mutex_unlock(&s->relay->lock);
	relay_session_broadcast_end(s);
	s->state = RS_STOPPING;
}

static void child_free(struct relay_child *c)
{
	int fds[] = {c->ts_fd, c->ev_fd, c->pidfd};

	ptv_timer_cancel(&c->kill_timer);
	spawn_close(fds, PTV_ARRAY_SIZE(fds));
	free(c);
}

static void child_done(struct relay_child *c)
{
	struct relay_session *s = c->s;
	bool had_data = c->bytes > 0, cold = !atomic_load(&s->has_data);
	int status = c->status;
	const char *reason = exit_reason(c);

	if (had_data && c->last_ts_ms - c->started_ms >= RELAY_HEALTHY_MS)
		s->fails = 0;
	s->child = NULL;
	ptv_ring_discard_partial(&s->ring);
	child_free(c);
	if (s->state == RS_STOPPING || s->state == RS_DONE) {
		session_teardown_check(s);
		return;
	}
	if (cold && (status == PTV_INGEST_EXIT_OPEN_FAILED || status == PTV_INGEST_EXIT_NO_DATA ||
		     status == PTV_INGEST_EXIT_CONFIG)) {
		session_fail(s, status == PTV_INGEST_EXIT_NO_DATA ? 807 : 806);
		session_teardown_check(s);
		return;
	}
	session_backoff(s, reason);
}

static void child_check_done(struct relay_child *c)
{
	if (c->exited && c->ts_eof && c->ev_eof && !c->ops)
		child_done(c);
}

static void spawn_done(void *arg)
{
	struct spawn_job *j = arg;
	struct relay_session *s = j->s;
	struct relay_child *c;

	s->spawn_inflight = false;
	home_op_end(s);
	free(j->json);
	/* Even if the child could not start: teardown stops the engine session. */
	s->ace = j->ace_new;
	if (j->err) {
		int code = j->hdhr ? j->hdhr : 806;
		const char *why = j->hdhr ? "engine" : "spawn";

		if (j->hdhr) /* the engine client logged why */
			ptv_warn(RELAY_MOD, "[%s] Acestream engine: %s", s->number,
				 ptv_strerror(j->err));
		else
			ptv_error(ING_MOD, "[%s] cannot start %s: %s", s->number, j->exe,
				  ptv_strerror(j->err));
		free(j);
		if (s->state != RS_STOPPING && atomic_load(&s->has_data))
			session_backoff(s, why);
		else if (s->state != RS_STOPPING)
			session_fail(s, code);
		session_teardown_check(s);
		relay_session_unref(s);
		return;
	}
	c = ptv_xcalloc(1, sizeof(*c));
	c->s = s;
	c->pid = j->pid;
	c->pidfd = j->pidfd;
	c->ts_fd = j->ts_fd;
	c->ev_fd = j->ev_fd;
	c->ts_op.cb = child_ts_cb;
	c->ev_op.cb = child_ev_cb;
	c->pid_op.cb = child_pid_cb;
	c->started_ms = now_ms(s);
	ptv_timer_init(&c->kill_timer, child_kill_timer_cb);
	free(j);
	s->child = c;
	ptv_ts_state_restart(s->ts);
	ptv_debug(ING_MOD, "[%s] ingest child %d started", s->number, (int)c->pid);
	child_arm_ts(c);
	child_arm_ev(c);
	child_arm_pid(c);
	if (s->state == RS_STOPPING)
		child_stop(c);
	else
		s->state = RS_RUNNING;
	relay_session_unref(s);
}

static void session_spawn(struct relay_session *s)
{
	struct spawn_job *j = ptv_xcalloc(1, sizeof(*j));

	j->s = s;
	j->json = ptv_xstrdup(s->ingest_json);
	snprintf(j->exe, sizeof(j->exe), "%s", s->cfg.exe);
	if (s->ace_src) {
		/* A respawn gets a new engine session (fresh pid): the job owns both meanwhile. */
		j->ace = s->relay->ace;
		j->ace_src = s->ace_src;
		snprintf(j->number, sizeof(j->number), "%s", s->number);
		j->ace_old = s->ace;
		s->ace = NULL;
	}
	relay_session_ref(s);
	s->spawn_inflight = true;
	s->state = RS_SPAWNING;
	home_op_start(s);
	if (ptv_pool_submit(s->relay->pool, s->home->r, spawn_work, spawn_done, j)) {
		j->err = -ESHUTDOWN;
		spawn_done(j);
	}
}

/* ---- publication ---- */

struct view_msg {
	struct relay_view *v;
	struct ptv_ring_update *u; /* NULL: just look at the session (it ended) */
};

static void view_msg_run(void *arg)
{
	struct view_msg *m = arg;
	struct relay_view *v = m->v;
	struct relay_session *s = v->s;

	if (m->u) {
		ptv_ring_update_apply(&v->replica, m->u);
		atomic_store(&v->posted, false);
		/* A replica without viewers holds nothing (it is cleared on the last leave). */
		if (!v->nviewers)
			ptv_ring_clear(&v->replica);
	}
	atomic_fetch_sub(&v->loc->msgs, 1);
	if (v->nviewers)
		relay_view_kick(v);
	free(m);
	relay_session_unref(s);
}

static bool view_post(struct relay_session *s, struct relay_view *v, struct ptv_ring_update *u)
{
	struct view_msg *m = ptv_xmalloc(sizeof(*m));

	m->v = v;
	m->u = u;
	relay_session_ref(s);
	atomic_fetch_add(&v->loc->msgs, 1);
	if (relay_post(v->loc, view_msg_run, m))
		return true;
	atomic_fetch_sub(&v->loc->msgs, 1);
	ptv_ring_update_free(u);
	free(m);
	relay_session_unref(s);
	return false;
}

void relay_session_broadcast_end(struct relay_session *s)
{
	for (unsigned i = 0; i < s->relay->nreactors; i++) {
		struct relay_view *v = &s->views[i];

		if (!atomic_load(&v->active))
			continue;
		if (v->loc == s->home)
			relay_view_kick(v);
		else
			view_post(s, v, NULL);
	}
}

static void publish_view(struct relay_session *s, struct relay_view *v, bool force, uint64_t now)
{
	bool refresh = atomic_load(&v->refresh);
	struct ptv_ring_update *u;
	uint64_t from;

	if (!atomic_load(&v->active) || (v->pub_head == s->ring.head && !refresh))
		return;
	if (!force && now < v->pub_ms + RELAY_PUBLISH_MS &&
	    s->ring.head - v->pub_head < RELAY_PUBLISH_BYTES)
		return;
	if (v->loc == s->home) {
		v->pub_head = s->ring.head;
		v->pub_ms = now;
		relay_view_kick(v);
		return;
	}
	/* One update on its way at a time: the next one carries everything since. */
	if (atomic_load(&v->posted))
		return;
	if (refresh)
		atomic_store(&v->refresh, false);
	from = refresh ? 0 : v->sent_head;
	u = ptv_ring_update_new(&s->ring, from);
	if (!u)
		return;
	v->sent_head = u->head;
	v->pub_head = s->ring.head;
	v->pub_ms = now;
	atomic_store(&v->posted, true);
	if (!view_post(s, v, u)) {
		atomic_store(&v->posted, false);
		atomic_store(&v->refresh, true);
	}
}

void relay_session_publish(struct relay_session *s, bool force)
{
	uint64_t now = now_ms(s);

	for (unsigned i = 0; i < s->relay->nreactors; i++)
		publish_view(s, &s->views[i], force, now);
}

static void home_kick_run(void *arg)
{
	struct relay_session *s = arg;

	atomic_fetch_sub(&s->home->msgs, 1);
	if (s->state != RS_DONE && s->state != RS_NEW)
		relay_session_publish(s, true);
	relay_session_unref(s);
}

void relay_session_kick_home(struct relay_session *s)
{
	relay_session_ref(s);
	atomic_fetch_add(&s->home->msgs, 1);
	if (relay_post(s->home, home_kick_run, s))
		return;
	atomic_fetch_sub(&s->home->msgs, 1);
	relay_session_unref(s);
}

/* ---- lifecycle ---- */

struct release_job {
	struct relay_session *s;
	struct ptv_acestream_session *ace;
};

static void release_work(void *arg)
{
	struct release_job *j = arg;

	ptv_acestream_release(j->s->relay->ace, j->ace);
}

static void release_done(void *arg)
{
	struct release_job *j = arg;
	struct relay_session *s = j->s;

	free(j);
	s->release_inflight = false;
	home_op_end(s);
	session_teardown_check(s);
	relay_session_unref(s);
}

/* The engine keeps downloading until told to stop: command_url?method=stop, on the pool. */
static void session_release_ace(struct relay_session *s)
{
	struct release_job *j = ptv_xmalloc(sizeof(*j));

	j->s = s;
	j->ace = s->ace;
	s->ace = NULL;
	relay_session_ref(s);
	s->release_inflight = true;
	home_op_start(s);
	if (!ptv_pool_submit(s->relay->pool, s->home->r, release_work, release_done, j))
		return;
	/* The pool is closing: ptv_acestream_free() stops what the relay did not release. */
	s->release_inflight = false;
	home_op_end(s);
	free(j);
	relay_session_unref(s);
}

static void session_teardown_check(struct relay_session *s)
{
	if (s->state != RS_STOPPING || s->child || s->spawn_inflight || s->release_inflight)
		return;
	if (s->ace) {
		session_release_ace(s);
		if (s->release_inflight)
			return;
	}
	s->state = RS_DONE;
	ptv_timer_cancel(&s->tick);
	ptv_list_del(&s->home_node);
	ptv_debug(RELAY_MOD, "[%s] session ended", s->number);
	relay_session_unref(s); /* the home's reference */
}

void relay_session_stop(struct relay_session *s)
{
	if (s->state == RS_STOPPING || s->state == RS_DONE)
		return;
	s->state = RS_STOPPING;
	if (s->child)
		child_stop(s->child);
	session_teardown_check(s);
}

static unsigned session_viewers(struct relay_session *s)
{
	unsigned n;

	pthread_mutex_lock(&s->relay->lock);
	n = s->viewers;
	pthread_mutex_unlock(&s->relay->lock);
	return n;
}

/* No viewer for the linger: the session leaves the table (a new tune starts a new one). */
static void session_linger(struct relay_session *s, uint64_t now)
{
	bool stop = false;

	if (session_viewers(s)) {
		s->idle_since = 0;
		return;
	}
	if (!s->idle_since) {
		s->idle_since = now;
		return;
	}
	if (now < s->idle_since + s->cfg.linger_ms)
		return;
	pthread_mutex_lock(&s->relay->lock);
	if (!s->viewers) {
		relay_session_unlist_locked(s);
		stop = true;
	}
	pthread_mutex_unlock(&s->relay->lock);
	if (stop) {
		ptv_info(RELAY_MOD, "[%s] no viewer for %u ms: stopping the upstream", s->number,
			 s->cfg.linger_ms);
		relay_session_stop(s);
	}
}

static void session_watchdog(struct relay_session *s, uint64_t now)
{
	struct relay_child *c = s->child;
	uint64_t quiet = 2ull * s->cfg.stall_ms + 10000, last;

	if (s->state != RS_RUNNING || !c || c->exited || c->stall_killed)
		return;
	/* The child reconnects by itself and says so; silence on both pipes means it hangs. */
	last = PTV_MAX(PTV_MAX(c->last_ts_ms, c->last_ev_ms), c->started_ms);
	if (now < last + quiet)
		return;
	ptv_warn(ING_MOD, "[%s] ingest silent for %llu ms: killing it", s->number,
		 (unsigned long long)(now - last));
	c->stall_killed = true;
	child_signal(c, SIGKILL);
}

/* Data gone for long while viewers wait: end their streams (players reconnect). */
static void session_dead_check(struct relay_session *s, uint64_t now)
{
	uint64_t dead = PTV_MAX(6ull * s->cfg.stall_ms, 60000ull);

	if (!atomic_load(&s->has_data) || atomic_load(&s->fail_code) ||
	    now < s->last_data_ms + dead)
		return;
	ptv_warn(RELAY_MOD, "[%s] no data for %llu s: ending its streams", s->number,
		 (unsigned long long)(now - s->last_data_ms) / 1000);
	atomic_store(&s->fail_code, -1);
	relay_session_broadcast_end(s);
}

static void session_rate(struct relay_session *s, uint64_t now)
{
	if (now < s->rate_ms + 1000)
		return;
	atomic_store(&s->rate_bps, s->rate_bytes * 8000 / (now - s->rate_ms));
	s->rate_bytes = 0;
	s->rate_ms = now;
}

static void session_tick_cb(struct ptv_timer *t)
{
	struct relay_session *s = ptv_container_of(t, struct relay_session, tick);
	uint64_t now = now_ms(s);

	relay_session_ref(s);
	ptv_ring_trim(&s->ring, now);
	relay_session_publish(s, true);
	session_rate(s, now);
	if (s->state == RS_BACKOFF && now >= s->backoff_until)
		session_spawn(s);
	session_watchdog(s, now);
	session_dead_check(s, now);
	if (s->state != RS_STOPPING && s->state != RS_DONE)
		session_linger(s, now);
	if (s->state != RS_DONE)
		ptv_timer_arm(s->home->r, &s->tick, RELAY_TICK_MS);
	relay_session_unref(s);
}

/* ---- freeing ---- */

void relay_session_free(struct relay_session *s)
{
	if (s->views) {
		for (unsigned i = 0; i < s->relay->nreactors; i++)
			ptv_ring_deinit(&s->views[i].replica);
	}
	ptv_ring_deinit(&s->ring);
	free(s->views);
	free(s->ts);
	free(s->ingest_json);
	free(s->ace_src);
	free(s);
}

void relay_session_force_free(struct relay_session *s)
{
	struct relay_child *c = s->child;

	if (c) {
		/* The reactors are gone: nothing else will reap it. */
		if (!c->exited && c->pid > 0) {
			kill(c->pid, SIGKILL);
			waitpid(c->pid, NULL, 0);
		}
		/* Its timer's wheel went with the reactor: forget it without unlinking. */
		c->kill_timer.node.next = NULL;
		s->child = NULL;
		child_free(c);
	}
	/* No pool any more: ptv_acestream_free() (after the relay's) stops the engine session. */
	s->ace = NULL;
}
