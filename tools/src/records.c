/*
 * Reader of replay input.  jansson decodes one value at a time with
 * JSON_DISABLE_EOF_CHECK, so JSON lines, pretty-printed objects written one
 * after another and the elements of a top-level array are read without
 * loading the whole input as one JSON tree.  Only the array's own brackets
 * and commas are scanned here.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "hivent/hivent.h"
#include "records.h"

static void format_err(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void format_err(char *err, size_t err_size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
}

void cli_record_reader_init(struct cli_record_reader *r, const char *data, size_t size)
{
    memset(r, 0, sizeof *r);
    r->data = data;
    r->size = size;
    r->line = 1;
}

void cli_record_clear(struct cli_record *rec)
{
    free(rec->name);
    hivent_free(rec->payload);
    free(rec->cid);
    free(rec->key);
    memset(rec, 0, sizeof *rec);
}

/* Moves the reader to @offset, counting the newlines passed. */
static void advance(struct cli_record_reader *r, size_t offset)
{
    for (size_t i = r->offset; i < offset; i++) {
        if (r->data[i] == '\n') {
            r->line++;
            r->line_start = i + 1;
        }
    }
    r->offset = offset;
}

static void skip_space(struct cli_record_reader *r)
{
    size_t i = r->offset;
    while (i < r->size && (r->data[i] == ' ' || r->data[i] == '\t' || r->data[i] == '\n' ||
                           r->data[i] == '\r'))
        i++;
    advance(r, i);
}

static long column(const struct cli_record_reader *r)
{
    return (long)(r->offset - r->line_start) + 1;
}

static enum cli_record_status syntax_error(struct cli_record_reader *r, char *err,
                                           size_t err_size, const char *what)
{
    format_err(err, err_size, "line %ld, column %ld: %s", r->line, column(r), what);
    r->finished = 1;
    return CLI_RECORD_SYNTAX;
}

/* Consumes the array punctuation before the next element.  Returns 1 when
 * an element follows, 0 at the end, -1 on a syntax error. */
static int next_array_element(struct cli_record_reader *r, char *err, size_t err_size)
{
    skip_space(r);
    if (r->next_index > 0) {
        if (r->offset < r->size && r->data[r->offset] == ',') {
            advance(r, r->offset + 1);
            skip_space(r);
            if (r->offset < r->size && r->data[r->offset] == ']') {
                syntax_error(r, err, err_size, "trailing comma before ']'");
                return -1;
            }
            return 1;
        }
        if (r->offset >= r->size || r->data[r->offset] != ']') {
            syntax_error(r, err, err_size, "expected ',' or ']' after an array element");
            return -1;
        }
    } else if (r->offset < r->size && r->data[r->offset] != ']') {
        return 1;
    }
    if (r->offset >= r->size) {
        syntax_error(r, err, err_size, "unexpected end of input: the array is not closed");
        return -1;
    }
    advance(r, r->offset + 1); /* the closing ']' */
    skip_space(r);
    if (r->offset < r->size) {
        syntax_error(r, err, err_size, "unexpected data after the closing ']'");
        return -1;
    }
    return 0;
}

static const char *json_type_name(const json_t *value)
{
    switch (json_typeof(value)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* Returns 0 when @value fits libhivent's limit on names, cid and key
 * (CLI_TEXT_MAX bytes), or -1 with a message naming @what. */
static int check_length(const char *what, json_t *value, char *err, size_t err_size)
{
    size_t length = json_string_length(value);
    if (length <= CLI_TEXT_MAX)
        return 0;
    format_err(err, err_size, "%s is %zu bytes long; the maximum is %d bytes", what, length,
               CLI_TEXT_MAX);
    return -1;
}

/* Copies optional string field @field of @meta into @out.  Returns 0, or
 * -1 with a message when it is present but neither a string nor null. */
static int optional_string(json_t *meta, const char *field, char **out, char *err,
                           size_t err_size)
{
    json_t *value = json_object_get(meta, field);
    if (!value || json_is_null(value))
        return 0;
    if (!json_is_string(value)) {
        format_err(err, err_size, "meta.%s must be a string or null, found %s", field,
                   json_type_name(value));
        return -1;
    }
    char what[32];
    snprintf(what, sizeof what, "meta.%s", field);
    if (check_length(what, value, err, err_size) != 0)
        return -1;
    *out = strdup(json_string_value(value));
    if (!*out) {
        format_err(err, err_size, "out of memory");
        return -1;
    }
    return 0;
}

static int convert_payload(json_t *payload, struct cli_record *rec, char *err, size_t err_size)
{
    char *text = json_dumps(payload, JSON_COMPACT);
    if (!text) {
        format_err(err, err_size, "cannot serialise the payload");
        return -1;
    }
    char detail[256];
    hivent_err_t rc = hivent_json_to_msgpack(text, strlen(text), &rec->payload,
                                             &rec->payload_size, detail, sizeof detail);
    free(text);
    if (rc != HIVENT_OK) {
        format_err(err, err_size, "invalid payload: %s", detail);
        return -1;
    }
    return 0;
}

/* Fills @rec from a decoded record.  Returns 0, or -1 with a message. */
static int convert_record(json_t *root, struct cli_record *rec, char *err, size_t err_size)
{
    if (!json_is_object(root)) {
        format_err(err, err_size, "expected an event object, found %s", json_type_name(root));
        return -1;
    }
    /* Entries of 'hivent dlq list' wrap the event as {"event": {...}}. */
    json_t *event = root;
    if (!json_object_get(root, "name") && json_is_object(json_object_get(root, "event")))
        event = json_object_get(root, "event");

    json_t *name = json_object_get(event, "name");
    if (!json_is_string(name) || json_string_length(name) == 0) {
        format_err(err, err_size, "missing \"name\": expected a non-empty string");
        return -1;
    }
    if (check_length("\"name\"", name, err, err_size) != 0)
        return -1;
    json_t *payload = json_object_get(event, "payload");
    if (!payload) {
        format_err(err, err_size, "missing \"payload\": expected an object");
        return -1;
    }
    if (!json_is_object(payload)) {
        format_err(err, err_size, "\"payload\" must be an object, found %s",
                   json_type_name(payload));
        return -1;
    }
    json_t *meta = json_object_get(event, "meta");
    if (meta && !json_is_object(meta)) {
        format_err(err, err_size, "\"meta\" must be an object, found %s", json_type_name(meta));
        return -1;
    }
    json_t *version = meta ? json_object_get(meta, "version") : NULL;
    if (!version) {
        format_err(err, err_size,
                   "missing meta.version: every event needs a "
                   "positive integer version");
        return -1;
    }
    if (json_is_real(version)) {
        format_err(err, err_size, "meta.version must be a positive integer, found %.17g",
                   json_real_value(version));
        return -1;
    }
    if (!json_is_integer(version)) {
        format_err(err, err_size, "meta.version must be a positive integer, found %s",
                   json_type_name(version));
        return -1;
    }
    if (json_integer_value(version) <= 0) {
        format_err(err, err_size,
                   "meta.version must be a positive integer, found %" JSON_INTEGER_FORMAT,
                   json_integer_value(version));
        return -1;
    }
    rec->version = json_integer_value(version);
    if (optional_string(meta, "cid", &rec->cid, err, err_size) != 0 ||
        optional_string(meta, "key", &rec->key, err, err_size) != 0 ||
        convert_payload(payload, rec, err, err_size) != 0)
        return -1;
    rec->name = strdup(json_string_value(name));
    if (!rec->name) {
        format_err(err, err_size, "out of memory");
        return -1;
    }
    return 0;
}

static enum cli_record_status decode_record(struct cli_record_reader *r, struct cli_record *rec,
                                            char *err, size_t err_size)
{
    json_error_t jerr;
    size_t start = r->offset;
    json_t *root = json_loadb(r->data + start, r->size - start,
                              JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY, &jerr);
    if (!root) {
        /* jansson counts lines and columns from the start of this record. */
        long line = r->line + jerr.line - 1;
        long col = jerr.line <= 1 ? column(r) + jerr.column - 1 : jerr.column;
        format_err(err, err_size, "line %ld, column %ld: invalid JSON: %s", line, col,
                   jerr.text);
        r->finished = 1;
        return CLI_RECORD_SYNTAX;
    }
    rec->index = r->next_index++;
    rec->line = r->line;
    rec->start = start;
    rec->end = start + (size_t)jerr.position;
    advance(r, rec->end);

    int rc = convert_record(root, rec, err, err_size);
    json_decref(root);
    if (rc != 0) {
        free(rec->name);
        rec->name = NULL;
        return CLI_RECORD_INVALID;
    }
    return CLI_RECORD_OK;
}

enum cli_record_status cli_record_next(struct cli_record_reader *r, struct cli_record *rec,
                                       char *err, size_t err_size)
{
    memset(rec, 0, sizeof *rec);
    err[0] = '\0';
    if (r->finished)
        return CLI_RECORD_END;
    if (!r->started) {
        r->started = 1;
        if (r->size >= 3 && memcmp(r->data, "\xef\xbb\xbf", 3) == 0)
            r->offset = r->line_start = 3; /* UTF-8 byte order mark */
        skip_space(r);
        if (r->offset < r->size && r->data[r->offset] == '[') {
            r->in_array = 1;
            advance(r, r->offset + 1);
        }
    }
    if (r->in_array) {
        int more = next_array_element(r, err, err_size);
        if (more < 0)
            return CLI_RECORD_SYNTAX;
        if (more == 0) {
            r->finished = 1;
            return CLI_RECORD_END;
        }
    } else {
        skip_space(r);
        if (r->offset >= r->size) {
            r->finished = 1;
            return CLI_RECORD_END;
        }
    }
    return decode_record(r, rec, err, err_size);
}

int cli_record_write_line(FILE *out, const char *data, const struct cli_record *rec)
{
    json_t *root = json_loadb(data + rec->start, rec->end - rec->start, JSON_DECODE_ANY, NULL);
    if (!root)
        return -1;
    char *text = json_dumps(root, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(root);
    if (!text)
        return -1;
    int rc = fputs(text, out) < 0 || fputc('\n', out) == EOF ? -1 : 0;
    free(text);
    return rc;
}
