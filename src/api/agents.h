/* Agents: what other resource modules share with the agents routes. */
#ifndef PC_API_AGENTS_H
#define PC_API_AGENTS_H

#include "app.h"
#include "lib/error.h"

extern const char *const pc_adapter_types[];

#endif
