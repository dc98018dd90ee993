/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * `plextv serve`: owns the process lifecycle. Starts the logger, metrics, worker pool and one
 * reactor per worker, then waits for signals on the main thread:
 *   SIGTERM/SIGINT  stop accepting, let in-flight responses finish (shutdown_timeout_ms), exit 0;
 *   SIGHUP          re-read the configuration (same file, environment and flags); valid changes
 *                   apply to running reactors, an invalid file is logged and the old config kept.
 */
#pragma once

#include "plextv/config.h"

/**
 * Runs the server until a stop signal. @cfg is the effective configuration; @config_file, @ov
 * and @n_ov are kept to rebuild it on SIGHUP. Returns 0 on a clean stop or a negative errno
 * (after logging the cause) when start-up failed.
 */
int ptv_server_run(const struct ptv_config *cfg, const char *config_file,
		   const struct ptv_config_override *ov, size_t n_ov);
