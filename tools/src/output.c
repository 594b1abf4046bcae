/* Event output formats of the hivent client: JSON lines and a readable form. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_event_format_valid(const char *format)
{
    return strcmp(format, "json") == 0 || strcmp(format, "pretty") == 0;
}

static int print_json(FILE *out, const hivent_event_t *event)
{
    char *json = hivent_event_to_json(event);
    if (!json) {
        cli_error("cannot convert event %s to JSON",
                  hivent_event_uuid(event) ? hivent_event_uuid(event) : "(no uuid)");
        return -1;
    }
    int rc = fputs(json, out) < 0 || fputc('\n', out) == EOF ? -1 : 0;
    hivent_free(json);
    return rc;
}

/* Returns the payload as indented JSON (free with free()), falling back to
 * libhivent's compact text when jansson cannot load it, for example for
 * integers above INT64_MAX. */
static char *payload_text(const hivent_event_t *event)
{
    size_t size = 0;
    const void *payload = hivent_event_payload(event, &size);
    char errstr[256];
    char *compact = hivent_msgpack_to_json(payload, size, errstr, sizeof errstr);
    if (!compact)
        return strdup("(payload is not valid MessagePack)");

    json_t *root = json_loads(compact, JSON_DECODE_ANY, NULL);
    char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_ENCODE_ANY) : NULL;
    json_decref(root);
    if (!text)
        text = strdup(compact);
    hivent_free(compact);
    return text;
}

static void print_field(FILE *out, const char *label, const char *value)
{
    if (value && value[0])
        fprintf(out, "  %-11s %s\n", label, value);
}

static int print_pretty(FILE *out, const hivent_event_t *event)
{
    fprintf(out, "%s  version %lld\n", hivent_event_name(event),
            (long long)hivent_event_version(event));
    print_field(out, "uuid", hivent_event_uuid(event));
    print_field(out, "created_at", hivent_event_created_at(event));
    print_field(out, "queue", hivent_event_queue(event));
    print_field(out, "key", hivent_event_key(event));
    print_field(out, "cid", hivent_event_cid(event));
    print_field(out, "producer", hivent_event_producer(event));

    char *payload = payload_text(event);
    if (!payload)
        return -1;
    fputs("  payload     ", out);
    for (const char *p = payload; *p; p++) {
        fputc(*p, out);
        if (*p == '\n')
            fputs("              ", out);
    }
    free(payload);
    return fputs("\n\n", out) < 0 ? -1 : 0;
}

int cli_print_event(FILE *out, const hivent_event_t *event, const char *format)
{
    int rc = strcmp(format, "pretty") == 0 ? print_pretty(out, event) : print_json(out, event);
    int write_errno = errno;
    if (fflush(out) != 0)
        return -1; /* errno is set by fflush, for example EPIPE */
    if (rc != 0 || ferror(out)) {
        errno = write_errno;
        return -1;
    }
    return 0;
}
