/* SPDX-License-Identifier: Apache-2.0 */
#ifndef NANGILA_CLI_H
#define NANGILA_CLI_H
int ngl_cli_bench(int argc, char **argv);
/* `nangila hpc ...` (tools/hpc_cli.c); argv[0] is "hpc". */
int ngl_cli_hpc(int argc, char **argv);
/* `nangila twin ...` (tools/twin_cli.c); argv[0] is "twin". */
int ngl_cli_twin(int argc, char **argv);
#endif
