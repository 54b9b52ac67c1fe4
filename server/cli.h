/* cli.h: flowd's commands that need no server, for a user's loop of writing a flow and trying it:
 *
 *   flowd check FILE... [FLAG VALUE]...
 *       loads the flow documents as the server's --flows does (through flows.c, so whatever the
 *       server checks is checked) and prints every problem as FILE:LINE:COLUMN: /pointer: message,
 *       or FILE: ok. Exit status 0 when every document loads, 1 when one does not, 2 for a bad
 *       command line.
 *   flowd run FILE [--shared JSON] [--params JSON] [FLAG VALUE]...
 *       loads the document and runs one job of it in this process, kept in memory only (as the
 *       memory: store keeps jobs: nothing survives the run). Each step, retry and wait is written
 *       to stderr as it happens, the final shared store (JSON) to stdout. An input node's prompt is
 *       written to stderr and its answer read from stdin, a line each: the line as JSON when it
 *       parses, else as a string, at most --max-body bytes; an answer the node refuses is asked
 *       for again. Exit status 0 when
 *       the job succeeded, 1 when it did not (or the document did not load, or stdin ended while
 *       the job waited), 2 for a bad command line.
 *
 * Both take the server's flags and FLOWD_* variables (config.h): the llm settings, the history
 * limit, the log level, and a --flows DIR whose documents are loaded first, so that FILE may use
 * them as sub-flows. */
#ifndef FLOWD_CLI_H
#define FLOWD_CLI_H

/* Whether argv[1] names one of the commands. */
int flowd_cli_is_command(const char *arg);

/* Runs the command argv[1] names; returns the process's exit status. */
int flowd_cli_main(int argc, char **argv);

#endif
