/*
 * Internal to libpaperclip-plugin: not installed, not part of the API.
 */
#ifndef PC_SDK_EXEC_INTERNAL_H
#define PC_SDK_EXEC_INTERNAL_H

/* Sends `sig` to the process group of every command pc_plugin_exec() is
 * running right now. Used when the worker itself is told to terminate, so
 * no sandboxed command outlives it. */
void pc__exec_kill_all(int sig);

#endif
