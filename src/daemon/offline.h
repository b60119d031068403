/*
 * Offline commands: the few `paperclip` commands that do not speak HTTP to a
 * daemon but work on local files directly. Each one goes through the same
 * layer functions the daemon uses, and says in its --help that it is
 * offline. Entry points take argv with argv[0] the command name and return
 * the process exit code (0 success, 1 failure, 2 usage).
 */
#ifndef PC_DAEMON_OFFLINE_H
#define PC_DAEMON_OFFLINE_H

/* paperclip auth create-board-key [--name NAME] [--data-dir DIR] */
int pc_daemon_auth(int argc, char **argv);
/* paperclip plugin check DIR (argv[1] is "check") */
int pc_daemon_plugin_check(int argc, char **argv);

#endif
