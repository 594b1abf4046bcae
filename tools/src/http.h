/* HTTP requests to hiventd's admin interface, through libcurl. */
#ifndef HIVENT_CLI_HTTP_H
#define HIVENT_CLI_HTTP_H

#include "cli.h"

/* Address, credentials and TLS settings of the admin interface. */
struct cli_http {
    char base_url[512]; /* "http://host:port" or "https://host:port" */
    char ca_file[1024]; /* tls.ca_file, or "" for the system store */
    int verify;         /* tls.verify */
    long timeout_ms;
    long connect_timeout_ms;
    const char *admin_key; /* NULL: no Authorization header */
};

struct cli_http_response {
    long status;
    char *body; /* NUL-terminated; free with free() */
    size_t size;
};

/* Fills @http from the configuration.  Returns CLI_EXIT_OK or an exit
 * status after printing the error. */
int cli_http_init(struct cli_http *http, const struct cli_config *cfg,
                  const struct cli_options *opts);

/* Sends @method @path (with its query string, already escaped).  Returns
 * CLI_EXIT_OK with @resp filled for any HTTP status, or an exit status
 * after printing why no response arrived. */
int cli_http_request(const struct cli_http *http, const char *method, const char *path,
                     struct cli_http_response *resp);

/* Prints the error of a response whose status is not 2xx and returns the
 * exit status for it. */
int cli_http_fail(const struct cli_http *http, const char *what,
                  const struct cli_http_response *resp);

/* Returns @text escaped for a URL query (free with free()), or NULL. */
char *cli_http_escape(const char *text);

#endif
