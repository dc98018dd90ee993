/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The BPF programs on crafted packets (BPF_PROG_TEST_RUN, Katran/Cilium style) and on real
 * sockets: the discovery filter through SO_ATTACH_BPF on loopback, the accounting programs in
 * a cgroup of our own with TCP over loopback.
 *
 * Exits 77 (skip) only when BPF itself is unavailable here (no privileges, no kernel support,
 * a build without the programs), and says why.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "plextv/bpf_loader.h"
#include "plextv/log.h"

#if PTV_HAVE_BPF
#include <bpf/bpf.h>
#endif

static void quiet_sink(const char *line, size_t len, void *ctx)
{
	if (getenv("PTV_TEST_VERBOSE"))
		fwrite(line, 1, len, stderr);
}

#if PTV_HAVE_BPF

static struct ptv_bpf_filter *filter;

static const uint32_t BOTH = (1u << PTV_BPF_PROTO_SSDP) | (1u << PTV_BPF_PROTO_HDHR);

static uint32_t ip(const char *s)
{
	struct in_addr a;

	inet_pton(AF_INET, s, &a);
	return a.s_addr;
}

/* Ethernet + IPv4 + UDP + @payload bytes; returns the frame length. */
static size_t craft(uint8_t *f, const char *saddr, uint16_t sport, uint16_t dport, size_t payload,
		    uint8_t proto)
{
	uint8_t *iph = f + 14, *udp = iph + 20;
	uint16_t tot = (uint16_t)(20 + 8 + payload), ulen = (uint16_t)(8 + payload);
	uint32_t s = ip(saddr), d = ip("10.1.0.1");

	memset(f, 0, 14 + tot);
	f[12] = 0x08; /* ETH_P_IP */
	iph[0] = 0x45;
	iph[2] = (uint8_t)(tot >> 8);
	iph[3] = (uint8_t)tot;
	iph[8] = 64;
	iph[9] = proto;
	memcpy(iph + 12, &s, 4);
	memcpy(iph + 16, &d, 4);
	udp[0] = (uint8_t)(sport >> 8);
	udp[1] = (uint8_t)sport;
	udp[2] = (uint8_t)(dport >> 8);
	udp[3] = (uint8_t)dport;
	udp[4] = (uint8_t)(ulen >> 8);
	udp[5] = (uint8_t)ulen;
	memset(udp + 8, 'M', payload);
	return 14 + tot;
}

/* Runs the @proto program on a frame; returns the program's return value. */
static int run(unsigned proto, const char *saddr, uint16_t sport, size_t payload, uint8_t l4,
	       uint32_t ifindex)
{
	static uint8_t frame[2048];
	struct __sk_buff ctx = {.ifindex = ifindex};
	size_t n =
		craft(frame, saddr, sport, proto == PTV_BPF_PROTO_SSDP ? 1900 : 65001, payload, l4);
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame, .data_size_in = (uint32_t)n,
		    .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = 1);
	int ret = bpf_prog_test_run_opts(ptv_bpf_filter_prog_fd(filter, proto), &opts);

	assert_int_equal(ret, 0);
	return (int)opts.retval;
}

static void stats(uint64_t out[PTV_BPF_STATS_SLOTS])
{
	assert_int_equal(ptv_bpf_filter_stats(filter, out), 0);
}

#define SLOT(p, v) ((p)*PTV_BPF_NVERDICT + (v))

static void test_filter_verdicts(void **state)
{
	/* lo is ifindex 1 in every namespace: packets "arrive" there under test_run. */
	const struct ptv_bpf_rule rules[] = {
		{1, ip("10.1.0.0"), 16, BOTH},
		{7, ip("10.2.0.0"), 16, BOTH},	   /* another interface's subnet */
		{0, ip("192.168.50.0"), 24, BOTH}, /* configured: any interface */
	};
	uint64_t before[PTV_BPF_STATS_SLOTS], after[PTV_BPF_STATS_SLOTS];
	unsigned P = PTV_BPF_PROTO_SSDP;
	int len = 20 + 8 + 100;

	assert_int_equal(ptv_bpf_filter_set_rules(filter, rules, 3), 0);
	stats(before);
	assert_int_equal(run(P, "10.1.2.3", 40000, 100, 17, 1), len);	  /* on-link */
	assert_int_equal(run(P, "10.2.0.9", 40000, 100, 17, 1), 0);	  /* other link */
	assert_int_equal(run(P, "192.168.50.4", 40000, 100, 17, 1), len); /* configured */
	assert_int_equal(run(P, "8.8.8.8", 40000, 100, 17, 1), 0);	  /* routed in */
	assert_int_equal(run(P, "127.0.0.1", 40000, 100, 17, 1), 0);	  /* not listed */
	assert_int_equal(run(P, "10.1.2.3", 0, 100, 17, 1), 0);		  /* source port 0 */
	assert_int_equal(run(P, "10.1.2.3", 40000, 1461, 17, 1), 0);	  /* oversized */
	assert_int_equal(run(P, "10.1.2.3", 40000, 1460, 17, 1), 20 + 8 + 1460);
	assert_int_equal(run(P, "10.1.2.3", 40000, 100, 6, 1), 0); /* not UDP */
	assert_int_equal(run(PTV_BPF_PROTO_HDHR, "8.8.8.8", 40000, 20, 17, 1), 0);
	stats(after);
	assert_int_equal(after[SLOT(P, PTV_BPF_PASS)] - before[SLOT(P, PTV_BPF_PASS)], 3);
	assert_int_equal(after[SLOT(P, PTV_BPF_DROP_OFF_SUBNET)] -
				 before[SLOT(P, PTV_BPF_DROP_OFF_SUBNET)],
			 3);
	assert_int_equal(after[SLOT(P, PTV_BPF_DROP_MALFORMED)] -
				 before[SLOT(P, PTV_BPF_DROP_MALFORMED)],
			 3);
	assert_int_equal(after[SLOT(PTV_BPF_PROTO_HDHR, PTV_BPF_DROP_OFF_SUBNET)] -
				 before[SLOT(PTV_BPF_PROTO_HDHR, PTV_BPF_DROP_OFF_SUBNET)],
			 1);
}

static void test_filter_loopback_and_replace(void **state)
{
	const struct ptv_bpf_rule lo_all[] = {{1, 0, 0, BOTH}};
	const struct ptv_bpf_rule narrow[] = {{1, ip("10.1.0.0"), 16, BOTH}};

	/* {lo, /0}: everything arriving on loopback comes from this host. */
	assert_int_equal(ptv_bpf_filter_set_rules(filter, lo_all, 1), 0);
	assert_int_equal(run(PTV_BPF_PROTO_HDHR, "8.8.8.8", 40000, 20, 17, 1), 48);
	/* Replacing the list removes what is no longer there. */
	assert_int_equal(ptv_bpf_filter_set_rules(filter, narrow, 1), 0);
	assert_int_equal(run(PTV_BPF_PROTO_HDHR, "8.8.8.8", 40000, 20, 17, 1), 0);
	assert_int_equal(run(PTV_BPF_PROTO_HDHR, "10.1.9.9", 40000, 20, 17, 1), 48);
	assert_int_equal(ptv_bpf_filter_set_rules(filter, NULL, 0), 0);
	assert_int_equal(run(PTV_BPF_PROTO_HDHR, "10.1.9.9", 40000, 20, 17, 1), 0);
}

static void test_filter_protocol_bits_merge(void **state)
{
	/* A longer prefix must not hide what a shorter one around it admits. */
	const struct ptv_bpf_rule rules[] = {
		{1, ip("10.0.0.0"), 8, 1u << PTV_BPF_PROTO_SSDP},
		{1, ip("10.1.0.0"), 16, 1u << PTV_BPF_PROTO_HDHR},
	};

	assert_int_equal(ptv_bpf_filter_set_rules(filter, rules, 2), 0);
	assert_int_equal(run(PTV_BPF_PROTO_HDHR, "10.1.2.3", 40000, 20, 17, 1), 48);
	assert_int_equal(run(PTV_BPF_PROTO_SSDP, "10.1.2.3", 40000, 20, 17, 1), 48);
	assert_int_equal(run(PTV_BPF_PROTO_HDHR, "10.2.2.3", 40000, 20, 17, 1), 0);
	assert_int_equal(run(PTV_BPF_PROTO_SSDP, "10.2.2.3", 40000, 20, 17, 1), 48);
}

static int udp_socket(const char *addr, uint16_t *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = ip(addr);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	getsockname(fd, (struct sockaddr *)&sa, &len);
	*port = ntohs(sa.sin_port);
	return fd;
}

static bool arrives(int rx, uint16_t rx_port, const char *from)
{
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(rx_port)};
	struct pollfd p = {.fd = rx, .events = POLLIN};
	uint16_t tx_port;
	int tx = udp_socket(from, &tx_port);
	char buf[64];
	bool got;

	to.sin_addr.s_addr = ip("127.0.0.1");
	assert_int_equal(sendto(tx, "M-SEARCH", 8, 0, (struct sockaddr *)&to, sizeof(to)), 8);
	/* Loopback delivery is synchronous: the datagram is queued (or dropped) already. */
	got = poll(&p, 1, 200) == 1 && recv(rx, buf, sizeof(buf), MSG_DONTWAIT) == 8;
	close(tx);
	return got;
}

static void test_filter_real_socket(void **state)
{
	const struct ptv_bpf_rule rules[] = {{1, ip("127.0.0.2"), 32, BOTH}};
	uint16_t port;
	int rx = udp_socket("127.0.0.1", &port);

	assert_int_equal(ptv_bpf_filter_set_rules(filter, rules, 1), 0);
	assert_int_equal(ptv_bpf_filter_attach(filter, rx, PTV_BPF_PROTO_SSDP), 0);
	assert_false(arrives(rx, port, "127.0.0.1"));
	assert_true(arrives(rx, port, "127.0.0.2"));
	close(rx);
}

/* ---- accounting ---- */

static char cg_dir[1400], cg_root[1400];
static pid_t child_pid; /* killed at teardown if a failed check left it running */

static bool cgroup2_mount(char *out, size_t len)
{
	char line[4096], point[1024];
	FILE *fp = fopen("/proc/self/mountinfo", "re");
	bool found = false;

	if (!fp)
		return false;
	while (!found && fgets(line, sizeof(line), fp)) {
		if (strstr(line, " - cgroup2 ") &&
		    sscanf(line, "%*s %*s %*s %*s %1023s", point) == 1) {
			snprintf(out, len, "%.1000s", point);
			found = true;
		}
	}
	fclose(fp);
	return found;
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), ret = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, text, strlen(text)) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/* Moves this process into @dir's cgroup.procs. */
static int enter_cgroup(const char *dir)
{
	char path[1500], pid[32];

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	snprintf(pid, sizeof(pid), "%d", getpid());
	return write_file(path, pid);
}

static int cg_setup(void **state)
{
	char mnt[1024], self[1024] = "", line[1100];
	FILE *fp;

	if (!cgroup2_mount(mnt, sizeof(mnt)))
		return 0;
	fp = fopen("/proc/self/cgroup", "re");
	while (fp && fgets(line, sizeof(line), fp)) {
		if (!strncmp(line, "0::", 3)) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(self, sizeof(self), "%.1000s", line + 3);
		}
	}
	if (fp)
		fclose(fp);
	snprintf(cg_root, sizeof(cg_root), "%.1000s%.380s", mnt, self);
	snprintf(cg_dir, sizeof(cg_dir), "%.1000s/ptv-bpf-test-%d", mnt, getpid());
	if (mkdir(cg_dir, 0755) || enter_cgroup(cg_dir)) {
		rmdir(cg_dir);
		cg_dir[0] = '\0';
	}
	return 0;
}

static int cg_teardown(void **state)
{
	ptv_bpf_account_stop();
	if (child_pid > 0) {
		kill(child_pid, SIGKILL);
		waitpid(child_pid, NULL, 0);
	}
	if (cg_dir[0]) {
		enter_cgroup(cg_root);
		rmdir(cg_dir);
	}
	return 0;
}

/* A connected loopback TCP pair: *srv is the accepted side. */
static void tcp_pair(int *cli, int *srv)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = ip("127.0.0.1");
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(l, 1), 0);
	getsockname(l, (struct sockaddr *)&sa, &len);
	*cli = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(*cli, (struct sockaddr *)&sa, sizeof(sa)), 0);
	*srv = accept(l, NULL, NULL);
	assert_true(*srv >= 0);
	close(l);
}

/* Sends @n bytes from @from and reads them all at @to. */
static void pump(int from, int to, size_t n)
{
	static char buf[65536];
	size_t sent = 0, got = 0;

	while (got < n) {
		if (sent < n) {
			ssize_t k = send(from, buf, PTV_MIN(sizeof(buf), n - sent), MSG_DONTWAIT);

			if (k > 0)
				sent += (size_t)k;
		}
		ssize_t r = recv(to, buf, sizeof(buf), MSG_DONTWAIT);

		if (r > 0)
			got += (size_t)r;
		else if (r < 0 && errno != EAGAIN)
			fail_msg("recv: %s", strerror(errno));
	}
}

static void test_account_prog_test_run(void **state)
{
	static uint8_t frame[256];
	struct ptv_bpf_account_counts c;
	size_t n;

	if (!cg_dir[0])
		skip();
	assert_int_equal(ptv_bpf_account_start(cg_dir), 0);
	/* test_run's skb belongs to no tagged socket: allowed, and counted nowhere. */
	n = craft(frame, "10.1.2.3", 40000, 5004, 100, 17);
	for (int egress = 0; egress < 2; egress++) {
		LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame, .data_size_in = (uint32_t)n,
			    .repeat = 1);

		assert_int_equal(bpf_prog_test_run_opts(ptv_bpf_account_prog_fd(egress), &opts), 0);
		assert_int_equal(opts.retval, 1);
	}
	assert_int_equal(ptv_bpf_account_read(0, &c), 0);
	assert_int_equal(c.egress_bytes + c.ingress_bytes, 0);
}

static void test_account_real_sockets(void **state)
{
	struct ptv_bpf_account_counts v, u;
	const size_t down = 3u << 20, up = 123457;
	int cli, srv;

	if (!cg_dir[0])
		skip();
	if (!ptv_bpf_account_active())
		assert_int_equal(ptv_bpf_account_start(cg_dir), 0);
	/* The relay's side of a viewer connection is srv (it sends); an upstream is cli (it
	 * receives). Same loopback pair, two roles, two channels. */
	tcp_pair(&cli, &srv);
	assert_int_equal(ptv_bpf_account_socket(srv, 42, false), 0);
	assert_int_equal(ptv_bpf_account_socket(cli, 43, true), 0);
	pump(srv, cli, down); /* viewer egress of 42, upstream ingress of 43 */
	pump(cli, srv, up);   /* neither: viewer ingress and upstream egress are not counted */
	assert_int_equal(ptv_bpf_account_read(42, &v), 0);
	assert_int_equal(ptv_bpf_account_read(43, &u), 0);
	/* Payload only, no headers: exact on loopback (no loss, no retransmission). */
	assert_int_equal(v.egress_bytes, down);
	assert_int_equal(v.ingress_bytes, 0);
	assert_int_equal(u.ingress_bytes, down);
	assert_int_equal(u.egress_bytes, 0);
	assert_true(v.egress_packets > 0 && v.egress_packets <= down / 1000);

	/* Untagged: counting stops. Re-tagged: it goes to the new channel. */
	assert_int_equal(ptv_bpf_account_forget(srv), 0);
	pump(srv, cli, 1000);
	assert_int_equal(ptv_bpf_account_read(42, &v), 0);
	assert_int_equal(v.egress_bytes, down);
	assert_int_equal(ptv_bpf_account_socket(srv, 44, false), 0);
	pump(srv, cli, 5000);
	assert_int_equal(ptv_bpf_account_read(44, &v), 0);
	assert_int_equal(v.egress_bytes, 5000);
	close(cli);
	close(srv);
}

/* The ingest child's sockets live inside libavformat: the relay tags them through a pidfd. */
static void test_account_child_process(void **state)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct ptv_bpf_account_counts c;
	socklen_t len = sizeof(sa);
	const size_t n = 1u << 20;
	static char buf[65536];
	int l, s, pidfd, status;
	size_t sent = 0;
	pid_t pid;

	if (!cg_dir[0])
		skip();
	if (!ptv_bpf_account_active())
		assert_int_equal(ptv_bpf_account_start(cg_dir), 0);
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sa.sin_addr.s_addr = ip("127.0.0.1");
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(l, 1), 0);
	getsockname(l, (struct sockaddr *)&sa, &len);
	pid = fork();
	assert_true(pid >= 0);
	child_pid = pid;
	if (pid == 0) {
		/* The "upstream reader": connect, read n bytes, exit. */
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		size_t got = 0;

		close(l); /* else it is tagged too: every socket of the process is */
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
			_exit(2);
		while (got < n) {
			ssize_t r = recv(fd, buf, sizeof(buf), 0);

			if (r <= 0)
				_exit(3);
			got += (size_t)r;
		}
		_exit(0);
	}
	s = accept(l, NULL, NULL);
	assert_true(s >= 0);
	pidfd = pidfd_open(pid, 0);
	assert_true(pidfd >= 0);
	assert_int_equal(ptv_bpf_account_process(pidfd, pid, 77), 1);
	while (sent < n) {
		ssize_t k = send(s, buf, PTV_MIN(sizeof(buf), n - sent), 0);

		assert_true(k > 0);
		sent += (size_t)k;
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	child_pid = 0;
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(ptv_bpf_account_read(77, &c), 0);
	/* Counted per packet as it arrives, so a segment TCP sent again (a retransmit on a busy
	 * machine: one loopback MSS, 65,483 bytes, was seen in CI) counts again: real traffic. */
	assert_true(c.ingress_bytes >= n);
	assert_true(c.ingress_bytes - n <= n / 8);
	close(pidfd);
	close(s);
	close(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_filter_verdicts),
		cmocka_unit_test(test_filter_loopback_and_replace),
		cmocka_unit_test(test_filter_protocol_bits_merge),
		cmocka_unit_test(test_filter_real_socket),
		cmocka_unit_test(test_account_prog_test_run),
		cmocka_unit_test(test_account_real_sockets),
		cmocka_unit_test(test_account_child_process),
	};
	int ret;

	ptv_log_set_sink(quiet_sink, NULL);
	ret = ptv_bpf_filter_open(&filter);
	if (ret) {
		printf("SKIP: BPF unavailable here: %s (%s)\n", ptv_bpf_explain(ret),
		       ptv_strerror(ret));
		return 77;
	}
	ret = cmocka_run_group_tests(tests, cg_setup, cg_teardown);
	ptv_bpf_filter_free(filter);
	return ret;
}

#else

int main(void)
{
	ptv_log_set_sink(quiet_sink, NULL);
	printf("SKIP: %s\n", ptv_bpf_explain(-ENOTSUP));
	return 77;
}

#endif
