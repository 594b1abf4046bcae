/* Reader of replay input: JSON lines, concatenated JSON objects, or one
 * JSON array, each event shaped {name, payload, meta: {version, cid, key}}. */
#ifndef HIVENT_CLI_RECORDS_H
#define HIVENT_CLI_RECORDS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Maximum length in bytes of an event name, meta.cid and meta.key, which
 * libhivent and hiventd reject above it (docs/protocol.md). */
#define CLI_TEXT_MAX 255

/* One input record, converted for hivent_emit_async(). */
struct cli_record {
    size_t index;      /* position in the input, from 0 */
    long line;         /* line where the record starts, from 1 */
    size_t start, end; /* byte range of the record's text in the input */
    char *name;        /* NULL when the record is invalid */
    void *payload;     /* MessagePack map, free with hivent_free() */
    size_t payload_size;
    int64_t version;
    char *cid; /* NULL when absent */
    char *key; /* NULL when absent */
};

struct cli_record_reader {
    const char *data;
    size_t size;
    size_t offset;
    long line;         /* line of data[offset] */
    size_t line_start; /* offset of the first byte of that line */
    int in_array;      /* input is one JSON array */
    int started, finished;
    size_t next_index;
};

enum cli_record_status {
    CLI_RECORD_END = 0,     /* no more records */
    CLI_RECORD_OK = 1,      /* @rec contains a valid record */
    CLI_RECORD_INVALID = 2, /* @rec has a position and @err describes the problem */
    CLI_RECORD_SYNTAX = 3   /* invalid JSON; reading cannot continue */
};

void cli_record_reader_init(struct cli_record_reader *r, const char *data, size_t size);

/* Reads the next record into @rec, which the caller frees with
 * cli_record_clear().  On CLI_RECORD_INVALID and CLI_RECORD_SYNTAX, @err
 * holds a sentence with the line and column where that applies. */
enum cli_record_status cli_record_next(struct cli_record_reader *r, struct cli_record *rec,
                                       char *err, size_t err_size);

void cli_record_clear(struct cli_record *rec);

/* Writes the text of @rec as one compact JSON line to @out.  Returns 0, or
 * -1 when the text cannot be loaded again or writing fails. */
int cli_record_write_line(FILE *out, const char *data, const struct cli_record *rec);

#endif
