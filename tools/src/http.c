/*
 * HTTP requests to hiventd's admin interface.  libcurl does the work: it
 * is synchronous, which suits one request per command, and it applies the
 * same TLS settings (CA file, verification) as the event connection.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

#define MAX_RESPONSE_BYTES (64u << 20)

static int is_true(const char *value)
{
    return strcmp(value, "true") == 0 || strcmp(value, "1") == 0 || strcmp(value, "yes") == 0 ||
           strcmp(value, "on") == 0;
}

int cli_http_init(struct cli_http *http, const struct cli_config *cfg,
                  const struct cli_options *opts)
{
    static int curl_ready;
    char host[256], port[32], secure[16], verify[16], connect_timeout[32];

    memset(http, 0, sizeof *http);
    cli_config_get(cfg->conf, "server.host", host, sizeof host);
    cli_config_get(cfg->conf, "server.port", port, sizeof port);
    cli_config_get(cfg->conf, "server.secure", secure, sizeof secure);
    cli_config_get(cfg->conf, "tls.verify", verify, sizeof verify);
    cli_config_get(cfg->conf, "tls.ca_file", http->ca_file, sizeof http->ca_file);
    cli_config_get(cfg->conf, "connect_timeout", connect_timeout, sizeof connect_timeout);
    if (strcmp(host, "memory") == 0 || !host[0]) {
        cli_error("server.host is '%s', but this command needs a running "
                  "hiventd; set --host or HIVENT_SERVER_HOST",
                  host);
        return CLI_EXIT_USAGE;
    }
    /* An IPv6 address needs brackets in a URL. */
    int bracket = strchr(host, ':') != NULL && host[0] != '[';
    snprintf(http->base_url, sizeof http->base_url, "%s://%s%s%s:%s",
             is_true(secure) ? "https" : "http", bracket ? "[" : "", host, bracket ? "]" : "",
             port);
    http->verify = verify[0] == '\0' || is_true(verify);
    http->timeout_ms = opts->timeout_ms;
    http->connect_timeout_ms = atol(connect_timeout) > 0 ? atol(connect_timeout) : 10000;
    http->admin_key = cfg->admin_key;

    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            cli_error("cannot initialise libcurl");
            return CLI_EXIT_FAILED;
        }
        curl_ready = 1;
    }
    return CLI_EXIT_OK;
}

char *cli_http_escape(const char *text)
{
    char *escaped = curl_easy_escape(NULL, text, 0);
    char *copy = escaped ? strdup(escaped) : NULL;
    curl_free(escaped);
    return copy;
}

struct body_buffer {
    char *data;
    size_t size;
    int too_large;
};

static size_t write_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct body_buffer *body = userdata;
    size_t n = size * nmemb;
    if (n > MAX_RESPONSE_BYTES - body->size) {
        body->too_large = 1;
        return 0;
    }
    char *grown = realloc(body->data, body->size + n + 1);
    if (!grown)
        return 0;
    memcpy(grown + body->size, ptr, n);
    body->data = grown;
    body->size += n;
    body->data[body->size] = '\0';
    return n;
}

static int transport_error(const struct cli_http *http, CURLcode code, const char *url,
                           const char *detail)
{
    const char *reason_text = detail[0] ? detail : curl_easy_strerror(code);
    switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
        cli_error("request to %s timed out: %s", url, reason_text);
        cli_error("%s", cli_err_hint(HIVENT_ERR_TIMED_OUT));
        return CLI_EXIT_TIMED_OUT;
    case CURLE_COULDNT_RESOLVE_HOST:
        cli_error("cannot resolve the host of %s: %s", url, reason_text);
        cli_error("%s", cli_err_hint(HIVENT_ERR_RESOLVE));
        return CLI_EXIT_CONNECTION;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
        cli_error("TLS connection to %s failed: %s", url, reason_text);
        cli_error("%s", cli_err_hint(HIVENT_ERR_TLS));
        return CLI_EXIT_CONNECTION;
    default:
        cli_error("request to %s failed: %s", url, reason_text);
        cli_error("%s", cli_err_hint(HIVENT_ERR_REFUSED));
        return CLI_EXIT_CONNECTION;
    }
}

static void apply_options(CURL *curl, const struct cli_http *http, const char *method)
{
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, http->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, http->connect_timeout_ms);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "hivent/" HIVENT_VERSION_STR);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, 0L);
    }
    if (http->ca_file[0])
        curl_easy_setopt(curl, CURLOPT_CAINFO, http->ca_file);
    if (!http->verify) {
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
    }
}

/* Builds the header list; the Authorization line is wiped after use. */
static struct curl_slist *build_headers(const struct cli_http *http, char **auth)
{
    struct curl_slist *headers = curl_slist_append(NULL, "Accept: application/json");
    *auth = NULL;
    if (http->admin_key && asprintf(auth, "Authorization: Bearer %s", http->admin_key) < 0)
        *auth = NULL;
    if (*auth && headers) {
        struct curl_slist *with_auth = curl_slist_append(headers, *auth);
        if (with_auth)
            headers = with_auth;
    }
    return headers;
}

int cli_http_request(const struct cli_http *http, const char *method, const char *path,
                     struct cli_http_response *resp)
{
    char url[2048], errbuf[CURL_ERROR_SIZE] = "";
    struct body_buffer body = {0};
    char *auth;

    memset(resp, 0, sizeof *resp);
    if (snprintf(url, sizeof url, "%s%s", http->base_url, path) >= (int)sizeof url) {
        cli_error("request URL is longer than %zu bytes", sizeof url - 1);
        return CLI_EXIT_USAGE;
    }
    CURL *curl = curl_easy_init();
    struct curl_slist *headers = build_headers(http, &auth);
    if (!curl || !headers || (http->admin_key && !auth)) {
        cli_error("out of memory preparing the request to %s", url);
        curl_easy_cleanup(curl);
        curl_slist_free_all(headers);
        free(auth);
        return CLI_EXIT_FAILED;
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    apply_options(curl, http, method);

    CURLcode code = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
    curl_easy_cleanup(curl);
    curl_slist_free_all(headers);
    if (auth) {
        memset(auth, 0, strlen(auth));
        free(auth);
    }

    int rc = CLI_EXIT_OK;
    if (body.too_large) {
        cli_error("response from %s is larger than %u bytes", url, MAX_RESPONSE_BYTES);
        rc = CLI_EXIT_FAILED;
    } else if (code != CURLE_OK) {
        rc = transport_error(http, code, url, errbuf);
    } else if (!body.data && !(body.data = calloc(1, 1))) {
        cli_error("out of memory reading the response from %s", url);
        rc = CLI_EXIT_FAILED;
    }
    if (rc != CLI_EXIT_OK) {
        free(body.data);
        return rc;
    }
    resp->body = body.data;
    resp->size = body.size;
    return CLI_EXIT_OK;
}

/* Copies the server's message: the "error" field of a JSON body, else the
 * first line of the body, with control bytes replaced. */
static void server_message(const struct cli_http_response *resp, char *out, size_t size)
{
    json_t *root = json_loadb(resp->body, resp->size, 0, NULL);
    json_t *error = json_is_object(root) ? json_object_get(root, "error") : NULL;
    const char *text = json_is_string(error) ? json_string_value(error) : resp->body;
    size_t i = 0;

    for (; text[i] && text[i] != '\n' && i + 1 < size && i < 300; i++)
        out[i] = iscntrl((unsigned char)text[i]) ? '?' : text[i];
    out[i] = '\0';
    json_decref(root);
}

int cli_http_fail(const struct cli_http *http, const char *what,
                  const struct cli_http_response *resp)
{
    char message[320];
    server_message(resp, message, sizeof message);
    if (resp->status == 401 || resp->status == 403) {
        cli_error("%s failed: %s rejected the admin key (HTTP %ld)%s%s", what, http->base_url,
                  resp->status, message[0] ? ": " : "", message);
        cli_error("give hiventd's admin key with --admin-key-file, "
                  "HIVENT_ADMIN_KEY or admin_key in the config file");
        return CLI_EXIT_CONNECTION;
    }
    cli_error("%s failed: %s answered HTTP %ld%s%s", what, http->base_url, resp->status,
              message[0] ? ": " : "", message);
    return CLI_EXIT_REJECTED;
}
