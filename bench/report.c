/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "bench.h"
int bench_cmd_report(int argc, char **argv)
{
	return 1;
}
