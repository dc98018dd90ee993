/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Command-line front end: `plextv COMMAND [OPTIONS]`, one getopt_long parse per command, GNU
 * conventions (--help and --version on stdout, exit 0) and sysexits.h exit codes:
 * EX_USAGE (64) for a bad command line, EX_CONFIG (78) for an invalid configuration,
 * EX_UNAVAILABLE (69) for a failed healthcheck, EX_OSERR (71) when the server cannot start.
 */
#pragma once

/** Runs the command in @argv (argv[0] is the program name) and returns the exit status. */
int ptv_cli_main(int argc, char **argv);
