/* SPDX-License-Identifier: Apache-2.0 */
#ifndef NANGILA_CLI_H
#define NANGILA_CLI_H
int ngl_cli_bench(int argc, char **argv);
#endif
