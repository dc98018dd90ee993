/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Loader for bpf/: skeleton open/load/attach, allow-list sync, counter reads. See bpf_loader.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "plextv/bpf_loader.h"
#include "plextv/common.h"
#include "plextv/log.h"

int ptv_bpf_mode_parse(const char *s, enum ptv_bpf_mode *out)
{
	static const char *const names[] = {"off", "auto", "on"};

	for (size_t i = 0; i < PTV_ARRAY_SIZE(names); i++) {
		if (!strcasecmp(s, names[i])) {
			*out = (enum ptv_bpf_mode)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *ptv_bpf_explain(int err)
{
	switch (err) {
	case -EPERM:
	case -EACCES:
		return "needs CAP_BPF and CAP_NET_ADMIN (or root)";
	case -ENOSYS:
		return "this kernel has no bpf() system call";
	case -ENOTSUP:
		return "this build has no BPF programs (built without clang/bpftool/libbpf)";
	case -ENOMEDIUM:
		return "no cgroup v2 hierarchy is mounted (accounting attaches to one)";
	case -EINVAL:
	case -E2BIG:
	case -ENOENT:
		return "this kernel lacks a needed BPF feature (Linux 5.8 or later needed)";
	default:
		return ptv_strerror(err);
	}
}

#if PTV_HAVE_BPF

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "ptv_account.skel.h"
#include "ptv_filter.skel.h"

bool ptv_bpf_built(void)
{
	return true;
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	/* libbpf reports every failed probe as a warning: in our log that is noise at best and
	 * breaks the "one line when BPF is unavailable" rule at worst. */
	if (!ptv_log_enabled(PTV_LOG_DEBUG) || level == LIBBPF_DEBUG)
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	ptv_debug("bpf", "libbpf: %s", line);
	return 0;
}

static void libbpf_setup_once(void)
{
	libbpf_set_print(libbpf_print);
}

static void libbpf_setup(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, libbpf_setup_once);
}

/* libbpf 1.x returns -errno and sets errno; keep a negative errno whatever it did. */
static int neg_err(int ret)
{
	if (ret < 0)
		return ret;
	return errno ? -errno : -EINVAL;
}

/* ---- discovery filter ---- */

struct ptv_bpf_filter {
	struct ptv_filter *skel;
};

int ptv_bpf_filter_open(struct ptv_bpf_filter **out)
{
	struct ptv_bpf_filter *f;
	int ret;

	libbpf_setup();
	f = ptv_xcalloc(1, sizeof(*f));
	errno = 0;
	f->skel = ptv_filter__open();
	if (!f->skel) {
		ret = neg_err(-errno);
		goto fail;
	}
	ret = ptv_filter__load(f->skel);
	if (ret) {
		ret = neg_err(ret);
		goto fail;
	}
	*out = f;
	return 0;
fail:
	ptv_bpf_filter_free(f);
	return ret;
}

void ptv_bpf_filter_free(struct ptv_bpf_filter *f)
{
	if (!f)
		return;
	ptv_filter__destroy(f->skel);
	free(f);
}

int ptv_bpf_filter_prog_fd(const struct ptv_bpf_filter *f, unsigned proto)
{
	if (proto == PTV_BPF_PROTO_SSDP)
		return bpf_program__fd(f->skel->progs.ptv_filter_ssdp);
	if (proto == PTV_BPF_PROTO_HDHR)
		return bpf_program__fd(f->skel->progs.ptv_filter_hdhr);
	return -EINVAL;
}

int ptv_bpf_filter_attach(struct ptv_bpf_filter *f, int fd, unsigned proto)
{
	int prog = ptv_bpf_filter_prog_fd(f, proto);

	if (prog < 0)
		return prog;
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_BPF, &prog, sizeof(prog)))
		return -errno;
	return 0;
}

static struct ptv_bpf_lpm_key rule_key(const struct ptv_bpf_rule *r)
{
	uint32_t mask = r->prefixlen ? ~0u << (32 - r->prefixlen) : 0;
	struct ptv_bpf_lpm_key k = {
		.prefixlen = 32u + r->prefixlen,
		.ifindex = r->ifindex,
		.addr = r->addr & __builtin_bswap32(mask), /* host bits off: one key per prefix */
	};

	return k;
}

static bool key_covers(const struct ptv_bpf_lpm_key *outer, const struct ptv_bpf_lpm_key *inner)
{
	unsigned plen = outer->prefixlen - 32u;
	uint32_t mask = plen ? __builtin_bswap32(~0u << (32 - plen)) : 0;

	return outer->ifindex == inner->ifindex && outer->prefixlen <= inner->prefixlen &&
	       (inner->addr & mask) == outer->addr;
}

/* The trie answers with the longest match only: give each entry the protocols of every entry
 * around it, so a longer prefix never hides what a shorter one admits. */
static void rules_merge(const struct ptv_bpf_rule *rules, size_t n, struct ptv_bpf_lpm_key *keys,
			struct ptv_bpf_lpm_val *vals)
{
	for (size_t i = 0; i < n; i++) {
		keys[i] = rule_key(&rules[i]);
		vals[i].protos = rules[i].protos;
	}
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < n; j++) {
			if (key_covers(&keys[j], &keys[i]))
				vals[i].protos |= rules[j].protos;
		}
	}
}

static bool key_in(const struct ptv_bpf_lpm_key *k, const struct ptv_bpf_lpm_key *keys, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!memcmp(k, &keys[i], sizeof(*k)))
			return true;
	}
	return false;
}

/* Deletes every key of @map_fd not in @keys. Keys are collected first: deleting while walking
 * with get_next_key may restart the walk. */
static int lpm_prune(int map_fd, const struct ptv_bpf_lpm_key *keys, size_t n)
{
	struct ptv_bpf_lpm_key cur, next, *stale = NULL;
	size_t n_stale = 0, cap = 0;
	int ret = 0;
	bool first = true;

	while (!bpf_map_get_next_key(map_fd, first ? NULL : &cur, &next)) {
		first = false;
		cur = next;
		if (key_in(&cur, keys, n))
			continue;
		if (n_stale == cap) {
			cap = cap ? cap * 2 : 16;
			stale = ptv_xrealloc(stale, cap * sizeof(*stale));
		}
		stale[n_stale++] = cur;
	}
	for (size_t i = 0; i < n_stale; i++) {
		if (bpf_map_delete_elem(map_fd, &stale[i]) && errno != ENOENT)
			ret = -errno;
	}
	free(stale);
	return ret;
}

int ptv_bpf_filter_set_rules(struct ptv_bpf_filter *f, const struct ptv_bpf_rule *rules, size_t n)
{
	int map_fd = bpf_map__fd(f->skel->maps.ptv_allow);
	struct ptv_bpf_lpm_key *keys = ptv_xcalloc(n ? n : 1, sizeof(*keys));
	struct ptv_bpf_lpm_val *vals = ptv_xcalloc(n ? n : 1, sizeof(*vals));
	int ret = 0;

	rules_merge(rules, n, keys, vals);
	for (size_t i = 0; i < n && !ret; i++) {
		if (bpf_map_update_elem(map_fd, &keys[i], &vals[i], BPF_ANY))
			ret = -errno;
	}
	if (!ret)
		ret = lpm_prune(map_fd, keys, n);
	free(keys);
	free(vals);
	return ret;
}

int ptv_bpf_filter_stats(struct ptv_bpf_filter *f, uint64_t out[PTV_BPF_STATS_SLOTS])
{
	int map_fd = bpf_map__fd(f->skel->maps.ptv_stats);
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *percpu;

	if (ncpu <= 0)
		return ncpu ? ncpu : -EINVAL;
	percpu = ptv_xcalloc((size_t)ncpu, sizeof(*percpu));
	for (uint32_t slot = 0; slot < PTV_BPF_STATS_SLOTS; slot++) {
		out[slot] = 0;
		if (bpf_map_lookup_elem(map_fd, &slot, percpu))
			continue;
		for (int c = 0; c < ncpu; c++)
			out[slot] += percpu[c];
	}
	free(percpu);
	return 0;
}

/* ---- per-channel accounting ---- */

/* Process-wide: set once on the main thread before the reactors start, read by any thread. */
static struct {
	struct ptv_account *skel;
	struct bpf_link *egress, *ingress;
	atomic_int sk_fd;   /* socket storage map, -1 when inactive */
	atomic_int chan_fd; /* per-channel counters map */
} actx = {.sk_fd = -1, .chan_fd = -1};

/* The cgroup v2 directory this process is in: the cgroup2 mount plus /proc/self/cgroup's
 * "0::PATH" line (hybrid hierarchies mount it at /sys/fs/cgroup/unified). */
static int own_cgroup_dir(char *out, size_t len)
{
	char line[4096], mnt[1024] = "", path[2048] = "";
	FILE *fp = fopen("/proc/self/mountinfo", "re");

	if (!fp)
		return -errno;
	while (!mnt[0] && fgets(line, sizeof(line), fp)) {
		char *sep = strstr(line, " - cgroup2 ");
		char point[1024];

		if (sep && sscanf(line, "%*s %*s %*s %*s %1023s", point) == 1)
			snprintf(mnt, sizeof(mnt), "%s", point);
	}
	fclose(fp);
	fp = fopen("/proc/self/cgroup", "re");
	if (!fp)
		return -errno;
	while (!path[0] && fgets(line, sizeof(line), fp)) {
		if (!strncmp(line, "0::", 3)) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(path, sizeof(path), "%.2000s", line + 3);
		}
	}
	fclose(fp);
	if (!mnt[0] || !path[0])
		return -ENOMEDIUM; /* e.g. under `ip netns exec`, which remounts /sys */
	if ((size_t)snprintf(out, len, "%s%s", mnt, path) >= len)
		return -ENAMETOOLONG;
	return 0;
}

static void acct_destroy(void)
{
	bpf_link__destroy(actx.ingress);
	bpf_link__destroy(actx.egress);
	ptv_account__destroy(actx.skel);
	actx.ingress = actx.egress = NULL;
	actx.skel = NULL;
}

static int acct_attach(int cg_fd)
{
	actx.egress = bpf_program__attach_cgroup(actx.skel->progs.ptv_acct_egress, cg_fd);
	if (!actx.egress)
		return neg_err(-errno);
	actx.ingress = bpf_program__attach_cgroup(actx.skel->progs.ptv_acct_ingress, cg_fd);
	if (!actx.ingress)
		return neg_err(-errno);
	return 0;
}

int ptv_bpf_account_start(const char *cgroup_dir)
{
	char dir[3072];
	int cg_fd = -1, ret;

	if (actx.skel)
		return -EALREADY;
	libbpf_setup();
	if (!cgroup_dir) {
		ret = own_cgroup_dir(dir, sizeof(dir));
		if (ret)
			return ret;
		cgroup_dir = dir;
	}
	cg_fd = open(cgroup_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg_fd < 0)
		return -errno;
	errno = 0;
	actx.skel = ptv_account__open();
	if (!actx.skel) {
		ret = neg_err(-errno);
		goto out;
	}
	ret = ptv_account__load(actx.skel);
	if (ret) {
		ret = neg_err(ret);
		goto out;
	}
	ret = acct_attach(cg_fd);
	if (ret)
		goto out;
	atomic_store(&actx.chan_fd, bpf_map__fd(actx.skel->maps.ptv_acct_chan));
	atomic_store(&actx.sk_fd, bpf_map__fd(actx.skel->maps.ptv_acct_sk));
out:
	if (ret)
		acct_destroy();
	close(cg_fd);
	return ret;
}

void ptv_bpf_account_stop(void)
{
	atomic_store(&actx.sk_fd, -1);
	atomic_store(&actx.chan_fd, -1);
	acct_destroy();
}

bool ptv_bpf_account_active(void)
{
	return atomic_load(&actx.sk_fd) >= 0;
}

int ptv_bpf_account_socket(int fd, uint32_t channel_id, bool upstream)
{
	struct ptv_bpf_acct_sock v = {
		.channel = channel_id,
		.flags = upstream ? PTV_BPF_ACCT_UPSTREAM : 0,
	};
	int map_fd = atomic_load_explicit(&actx.sk_fd, memory_order_relaxed);

	if (map_fd < 0)
		return -ENODEV;
	if (bpf_map_update_elem(map_fd, &fd, &v, BPF_ANY))
		return -errno;
	return 0;
}

int ptv_bpf_account_forget(int fd)
{
	int map_fd = atomic_load_explicit(&actx.sk_fd, memory_order_relaxed);

	if (map_fd < 0)
		return -ENODEV;
	if (bpf_map_delete_elem(map_fd, &fd) && errno != ENOENT)
		return -errno;
	return 0;
}

int ptv_bpf_account_prog_fd(bool egress)
{
	if (!actx.skel)
		return -ENODEV;
	return bpf_program__fd(egress ? actx.skel->progs.ptv_acct_egress
				      : actx.skel->progs.ptv_acct_ingress);
}

int ptv_bpf_account_process(int pidfd, int pid, uint32_t channel_id)
{
	char dir[64], path[128], link[64];
	struct dirent *e;
	int tagged = 0;
	DIR *d;

	if (!ptv_bpf_account_active())
		return -ENODEV;
	snprintf(dir, sizeof(dir), "/proc/%d/fd", pid);
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		ssize_t n;
		int fd;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%.32s", dir, e->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0 || strncmp(link, "socket:", 7))
			continue;
		/* A duplicate refers to the same socket, and the storage belongs to the socket. */
		fd = pidfd_getfd(pidfd, atoi(e->d_name), 0);
		if (fd < 0)
			continue;
		/* Unix sockets and the like are refused by the map: only TCP/UDP count. */
		if (!ptv_bpf_account_socket(fd, channel_id, true))
			tagged++;
		close(fd);
	}
	closedir(d);
	return tagged;
}

static int acct_sum(int map_fd, uint32_t channel_id, struct ptv_bpf_account_counts *out)
{
	int ncpu = libbpf_num_possible_cpus();
	struct ptv_bpf_acct_counts *percpu;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	if (ncpu <= 0)
		return ncpu ? ncpu : -EINVAL;
	percpu = ptv_xcalloc((size_t)ncpu, sizeof(*percpu));
	if (bpf_map_lookup_elem(map_fd, &channel_id, percpu)) {
		ret = errno == ENOENT ? 0 : -errno;
		goto out;
	}
	for (int c = 0; c < ncpu; c++) {
		out->egress_bytes += percpu[c].egress_bytes;
		out->ingress_bytes += percpu[c].ingress_bytes;
		out->egress_packets += percpu[c].egress_packets;
		out->ingress_packets += percpu[c].ingress_packets;
	}
out:
	free(percpu);
	return ret;
}

int ptv_bpf_account_read(uint32_t channel_id, struct ptv_bpf_account_counts *out)
{
	int map_fd = atomic_load(&actx.chan_fd);

	if (map_fd < 0) {
		memset(out, 0, sizeof(*out));
		return -ENODEV;
	}
	return acct_sum(map_fd, channel_id, out);
}

int ptv_bpf_account_foreach(int (*fn)(uint32_t channel_id, const struct ptv_bpf_account_counts *c,
				      void *ctx),
			    void *ctx)
{
	int map_fd = atomic_load(&actx.chan_fd);
	struct ptv_bpf_account_counts c;
	uint32_t cur = 0, next;
	bool first = true;
	int ret = 0;

	if (map_fd < 0)
		return -ENODEV;
	/* A channel added meanwhile may be missed until the next scrape; never one twice. */
	while (!ret && !bpf_map_get_next_key(map_fd, first ? NULL : &cur, &next)) {
		first = false;
		cur = next;
		if (!acct_sum(map_fd, cur, &c))
			ret = fn(cur, &c, ctx);
	}
	return ret;
}

#else /* !PTV_HAVE_BPF: the same API, always unavailable. */

bool ptv_bpf_built(void)
{
	return false;
}

int ptv_bpf_filter_open(struct ptv_bpf_filter **out)
{
	*out = NULL;
	return -ENOTSUP;
}

void ptv_bpf_filter_free(struct ptv_bpf_filter *f)
{
}

int ptv_bpf_filter_attach(struct ptv_bpf_filter *f, int fd, unsigned proto)
{
	return -ENOTSUP;
}

int ptv_bpf_filter_set_rules(struct ptv_bpf_filter *f, const struct ptv_bpf_rule *rules, size_t n)
{
	return -ENOTSUP;
}

int ptv_bpf_filter_stats(struct ptv_bpf_filter *f, uint64_t out[PTV_BPF_STATS_SLOTS])
{
	memset(out, 0, sizeof(uint64_t) * PTV_BPF_STATS_SLOTS);
	return -ENOTSUP;
}

int ptv_bpf_filter_prog_fd(const struct ptv_bpf_filter *f, unsigned proto)
{
	return -ENOTSUP;
}

int ptv_bpf_account_start(const char *cgroup_dir)
{
	return -ENOTSUP;
}

void ptv_bpf_account_stop(void)
{
}

bool ptv_bpf_account_active(void)
{
	return false;
}

int ptv_bpf_account_socket(int fd, uint32_t channel_id, bool upstream)
{
	return -ENODEV;
}

int ptv_bpf_account_forget(int fd)
{
	return -ENODEV;
}

int ptv_bpf_account_read(uint32_t channel_id, struct ptv_bpf_account_counts *out)
{
	memset(out, 0, sizeof(*out));
	return -ENODEV;
}

int ptv_bpf_account_prog_fd(bool egress)
{
	return -ENODEV;
}

int ptv_bpf_account_process(int pidfd, int pid, uint32_t channel_id)
{
	return -ENODEV;
}

int ptv_bpf_account_foreach(int (*fn)(uint32_t channel_id, const struct ptv_bpf_account_counts *c,
				      void *ctx),
			    void *ctx)
{
	return -ENODEV;
}

#endif
