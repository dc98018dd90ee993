/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Standard process_* metrics (the names every Prometheus client library exports), read from
 * /proc by a collector at the start of each render. procfs reads do not touch a disk, so a
 * scrape served by a reactor does not block on I/O; the cost is O(open fds) for the fd count.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "plextv/metrics.h"

/* Fields of /proc/self/stat we use (proc(5) numbering, 1-based). */
enum {
	STAT_UTIME = 14,
	STAT_STIME = 15,
	STAT_NUM_THREADS = 20,
	STAT_STARTTIME = 22,
	STAT_VSIZE = 23,
	STAT_RSS = 24,
	STAT_LAST = STAT_RSS,
};

struct ptv_metrics_proc {
	struct ptv_metric *cpu, *rss, *vsize, *open_fds, *max_fds, *start, *threads;
	double ticks; /* clock ticks per second */
	double page;  /* bytes per page */
};

/*
 * One process, one set of process metrics: the handles live as long as the registry (also a
 * process-wide singleton); ptv_metrics_process_register() refreshes them after a test reset.
 */
static struct ptv_metrics_proc proc;

/* Reads /proc/self/stat fields 1..STAT_LAST into @f. Returns 0 or a negative errno. */
static int read_self_stat(unsigned long long f[STAT_LAST + 1])
{
	char buf[1024], *p, *end;
	ssize_t n;
	int fd, i;

	fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return n < 0 ? -errno : -EIO;
	buf[n] = '\0';
	/* comm (field 2) may contain spaces and ')': fields resume after the last ')'. */
	p = strrchr(buf, ')');
	if (!p || strncmp(p, ") ", 2) != 0)
		return -EINVAL;
	p = strchr(p + 2, ' '); /* skip field 3, the state letter */
	if (!p)
		return -EINVAL;
	for (i = 4; i <= STAT_LAST; i++) {
		f[i] = strtoull(p, &end, 10);
		if (end == p)
			return -EINVAL;
		p = end;
	}
	return 0;
}

static int count_open_fds(void)
{
	struct dirent *e;
	int n = 0;
	DIR *d;

	d = opendir("/proc/self/fd");
	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d))
			n++;
	closedir(d);
	return n;
}

/* Boot time in seconds since the epoch ("btime" in /proc/stat). Returns 0 when unknown. */
static unsigned long long boot_time(void)
{
	unsigned long long bt = 0;
	size_t cap = 0;
	char *line = NULL;
	FILE *fp;

	fp = fopen("/proc/stat", "re");
	if (!fp)
		return 0;
	while (getline(&line, &cap, fp) > 0)
		if (sscanf(line, "btime %llu", &bt) == 1)
			break;
	free(line);
	fclose(fp);
	return bt;
}

static void proc_collect(void *ctx)
{
	struct ptv_metrics_proc *p = ctx;
	unsigned long long f[STAT_LAST + 1];
	struct rlimit rl;
	int fds;

	if (read_self_stat(f) == 0) {
		ptv_metric_set(p->cpu, (double)(f[STAT_UTIME] + f[STAT_STIME]) / p->ticks);
		ptv_metric_set(p->vsize, (double)f[STAT_VSIZE]);
		ptv_metric_set(p->rss, (double)f[STAT_RSS] * p->page);
		ptv_metric_set(p->threads, (double)f[STAT_NUM_THREADS]);
	}
	fds = count_open_fds();
	if (fds >= 0)
		ptv_metric_set(p->open_fds, fds);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		ptv_metric_set(p->max_fds, (double)rl.rlim_cur);
}

static void proc_set_start_time(struct ptv_metrics_proc *p)
{
	unsigned long long f[STAT_LAST + 1];
	unsigned long long bt = boot_time();

	if (bt && read_self_stat(f) == 0)
		ptv_metric_set(p->start, (double)bt + (double)f[STAT_STARTTIME] / p->ticks);
}

void ptv_metrics_process_register(void)
{
	struct ptv_metrics_proc *p = &proc;
	long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);

	p->ticks = ticks > 0 ? (double)ticks : 100;
	p->page = page > 0 ? (double)page : 4096;
	/* Counter in type, set() in practice: the kernel keeps it monotonic for us. */
	p->cpu = ptv_metric_simple("process_cpu_seconds_total",
				   "Total user and system CPU time spent in seconds.",
				   PTV_METRIC_COUNTER);
	p->rss = ptv_metric_simple("process_resident_memory_bytes",
				   "Resident memory size in bytes.", PTV_METRIC_GAUGE);
	p->vsize = ptv_metric_simple("process_virtual_memory_bytes",
				     "Virtual memory size in bytes.", PTV_METRIC_GAUGE);
	p->open_fds = ptv_metric_simple("process_open_fds", "Number of open file descriptors.",
					PTV_METRIC_GAUGE);
	p->max_fds = ptv_metric_simple(
		"process_max_fds", "Maximum number of open file descriptors.", PTV_METRIC_GAUGE);
	p->start = ptv_metric_simple("process_start_time_seconds",
				     "Start time of the process since unix epoch in seconds.",
				     PTV_METRIC_GAUGE);
	p->threads = ptv_metric_simple("process_threads", "Number of OS threads in the process.",
				       PTV_METRIC_GAUGE);
	proc_set_start_time(p);
	ptv_metrics_collector_add(proc_collect, p);
}
