/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Operations endpoints: GET /health (liveness) and GET /metrics (Prometheus text 0.0.4).
 */
#pragma once

struct ptv_router;
struct ptv_pool;

/** Registers /health and /metrics. /metrics renders on @pool, never on a reactor thread. */
int ptv_ops_routes_register(struct ptv_router *rt, struct ptv_pool *pool);

/** Sets plextv_build_info{version,commit,io_backend,llhttp,libavformat} = 1. */
void ptv_ops_build_info(const char *io_backend);
