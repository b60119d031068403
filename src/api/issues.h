/* Issues: shared with the runs routes. */
#ifndef PC_API_ISSUES_H
#define PC_API_ISSUES_H

#include <jansson.h>

#include "http/http.h"
#include "model/entities.h"

/* Loads the issue named by the :issueId parameter (uuid or identifier such
 * as "PEE-1") as its API object, checking the caller's company access.
 * NULL with 404 "Issue not found" or 403. */
json_t *pc_issue_load_for(pc_req *req, pc_error_t *err);

#endif
