/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

/* Runs in the forked child: only async-signal-safe calls, then exec or _exit. */
static void spawn_child(const char *const *argv, const struct bench_spawn_opts *o, pid_t parent)
{
	int fd, i;

	setpgid(0, 0);
	fd = open(o && o->log_path ? o->log_path : "/dev/null",
		  O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd >= 0) {
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
	}
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		dup2(fd, STDIN_FILENO);
	if (o && o->cwd && chdir(o->cwd) == -1)
		_exit(126);
	if (o && o->uid) {
		if (setgroups(0, NULL) == -1 || setgid(o->gid) == -1 || setuid(o->uid) == -1)
			_exit(126);
	}
	/* Set after the uid change, which clears it; it survives exec of a normal binary. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(126);
	for (i = 0; o && o->env && o->env[i]; i++)
		putenv((char *)o->env[i]);
	execvp(argv[0], (char *const *)argv);
	_exit(127);
}

int bench_spawn(const char *const *argv, const struct bench_spawn_opts *o, pid_t *out)
{
	pid_t parent = getpid();
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid == -1)
		return -errno;
	if (pid == 0)
		spawn_child(argv, o, parent);
	/* Also set here: the child may not have run setpgid yet when we signal the group. */
	setpgid(pid, pid);
	*out = pid;
	return 0;
}

int bench_wait_exit(pid_t pid, unsigned timeout_ms, int *status)
{
	unsigned waited = 0;
	pid_t r;

	for (;;) {
		r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return 0;
		if (r == -1)
			return -errno;
		if (waited >= timeout_ms)
			return -ETIMEDOUT;
		usleep(10000);
		waited += 10;
	}
}

int bench_stop(pid_t pid, unsigned grace_ms)
{
	int status, ret;

	if (pid <= 0)
		return -EINVAL;
	ret = bench_wait_exit(pid, 0, &status);
	if (ret == 0 || ret == -ECHILD)
		goto out;
	kill(-pid, SIGTERM);
	kill(pid, SIGTERM);
	if (bench_wait_exit(pid, grace_ms, &status) == 0)
		goto out;
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	if (bench_wait_exit(pid, 2000, &status))
		return -ETIMEDOUT;
out:
	/* Whatever is left in the group (a peer's helper) goes too. */
	kill(-pid, SIGKILL);
	return 0;
}

bool bench_alive(pid_t pid)
{
	int status;

	return waitpid(pid, &status, WNOHANG) == 0;
}

struct proc_row {
	pid_t pid, ppid;
	unsigned long long ticks; /* utime + stime + cutime + cstime */
	long long rss_pages;
	bool mark;
};

/* Fields after the ')' of /proc/PID/stat, numbered from 3 (state) as in proc(5). */
static int proc_read_stat(pid_t pid, struct proc_row *row)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st, cut, cst;
	long long rss;
	int ppid, fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2,
			 "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu %*d %*d "
			 "%*d %*d %*u %*u %lld",
			 &ppid, &ut, &st, &cut, &cst, &rss) != 6)
		return -EPROTO;
	row->pid = pid;
	row->ppid = ppid;
	row->ticks = ut + st + cut + cst;
	row->rss_pages = rss;
	row->mark = false;
	return 0;
}

static size_t proc_snapshot(struct proc_row **rows)
{
	size_t n = 0, cap = 256;
	struct dirent *de;
	DIR *d = opendir("/proc");

	*rows = ptv_xcalloc(cap, sizeof(**rows));
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		if (n == cap) {
			cap *= 2;
			*rows = ptv_xrealloc(*rows, cap * sizeof(**rows));
		}
		if (proc_read_stat((pid_t)atoi(de->d_name), &(*rows)[n]) == 0)
			n++;
	}
	closedir(d);
	return n;
}

/* Marks @root and its descendants; one pass per tree level, bounded by the row count. */
static void proc_mark_tree(struct proc_row *rows, size_t n, pid_t root)
{
	size_t i, pass;
	bool changed = true;

	for (i = 0; i < n; i++)
		rows[i].mark = rows[i].pid == root;
	for (pass = 0; changed && pass < n; pass++) {
		changed = false;
		for (i = 0; i < n; i++) {
			size_t j;

			if (rows[i].mark)
				continue;
			for (j = 0; j < n; j++) {
				if (rows[j].mark && rows[j].pid == rows[i].ppid) {
					rows[i].mark = changed = true;
					break;
				}
			}
		}
	}
}

int bench_tree_usage(pid_t root, struct bench_tree_usage *u)
{
	struct proc_row *rows;
	size_t n = proc_snapshot(&rows), i;
	long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	unsigned long long ticks = 0;

	memset(u, 0, sizeof(*u));
	proc_mark_tree(rows, n, root);
	for (i = 0; i < n; i++) {
		if (!rows[i].mark)
			continue;
		ticks += rows[i].ticks;
		u->rss_bytes += (uint64_t)(rows[i].rss_pages > 0 ? rows[i].rss_pages : 0) * page;
		u->nproc++;
	}
	free(rows);
	u->cpu_s = (double)ticks / (double)hz;
	return u->nproc ? 0 : -ESRCH;
}

int bench_user_ensure(const char *name, uid_t *uid, gid_t *gid)
{
	const char *argv[] = {"useradd",      "--system", "--no-create-home",
			      "--user-group", "--shell",  "/usr/sbin/nologin",
			      name,	      NULL};
	struct passwd *pw = getpwnam(name);
	pid_t pid;
	int status, ret;

	if (!pw) {
		ret = bench_spawn(argv, NULL, &pid);
		if (ret)
			return ret;
		ret = bench_wait_exit(pid, 10000, &status);
		if (ret)
			return ret;
		pw = getpwnam(name);
		if (!pw)
			return -ENOENT;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return 0;
}

void bench_log_tail(const char *path, size_t max)
{
	char buf[4096];
	FILE *f = fopen(path, "re");
	long size;
	size_t n;

	if (!f)
		return;
	max = PTV_MIN(max, sizeof(buf));
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fseek(f, size > (long)max ? size - (long)max : 0, SEEK_SET);
	n = fread(buf, 1, max, f);
	fclose(f);
	fprintf(stderr, "---- %s (last %zu bytes) ----\n%.*s\n----\n", path, n, (int)n, buf);
}

int bench_host_cpu(double *busy_s, double *total_s)
{
	unsigned long long v[8] = {0};
	double hz = (double)sysconf(_SC_CLK_TCK), total = 0;
	FILE *f = fopen("/proc/stat", "re");
	int n, i;

	if (!f)
		return -errno;
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (n < 5)
		return -EPROTO;
	for (i = 0; i < 8; i++)
		total += (double)v[i];
	*total_s = total / hz;
	*busy_s = (total - (double)v[3] - (double)v[4]) / hz; /* minus idle and iowait */
	return 0;
}
