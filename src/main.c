/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The daemon and the CLI are one binary; everything lives in ptv_core (see cli.c). */
#include "plextv/cli.h"

int main(int argc, char **argv)
{
	return ptv_cli_main(argc, argv);
}
