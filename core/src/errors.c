#include "hivent/hivent.h"

#include <stddef.h>

struct err_desc {
    int code;
    const char *name;
    const char *desc;
};

static const struct err_desc errors[] = {
    {HIVENT_OK, "HIVENT_OK", "success"},
    {HIVENT_ERR_INVALID_ARG, "HIVENT_ERR_INVALID_ARG", "invalid argument"},
    {HIVENT_ERR_NO_MEMORY, "HIVENT_ERR_NO_MEMORY", "out of memory"},
    {HIVENT_ERR_UNKNOWN_KEY, "HIVENT_ERR_UNKNOWN_KEY", "unknown configuration key"},
    {HIVENT_ERR_INVALID_VALUE, "HIVENT_ERR_INVALID_VALUE", "invalid configuration value"},
    {HIVENT_ERR_TIMED_OUT, "HIVENT_ERR_TIMED_OUT", "timed out"},
    {HIVENT_ERR_QUEUE_FULL, "HIVENT_ERR_QUEUE_FULL", "outbound queue is full"},
    {HIVENT_ERR_FAILED, "HIVENT_ERR_FAILED", "reconnect attempts used up; client failed"},
    {HIVENT_ERR_DESTROYED, "HIVENT_ERR_DESTROYED", "handle destroyed before completion"},
    {HIVENT_ERR_FORKED, "HIVENT_ERR_FORKED", "handle inherited across fork(); create a new one"},
    {HIVENT_ERR_CONNECTION, "HIVENT_ERR_CONNECTION", "connection lost"},
    {HIVENT_ERR_RESOLVE, "HIVENT_ERR_RESOLVE", "server host name lookup failed"},
    {HIVENT_ERR_REFUSED, "HIVENT_ERR_REFUSED", "connection refused"},
    {HIVENT_ERR_TLS, "HIVENT_ERR_TLS", "TLS handshake or certificate verification failed"},
    {HIVENT_ERR_AUTH, "HIVENT_ERR_AUTH", "API key rejected"},
    {HIVENT_ERR_PROTOCOL, "HIVENT_ERR_PROTOCOL", "protocol error"},
    {HIVENT_ERR_PAYLOAD, "HIVENT_ERR_PAYLOAD", "invalid payload"},
    {HIVENT_ERR_VERSION_MISMATCH, "HIVENT_ERR_VERSION_MISMATCH", "incompatible library version"},
    {HIVENT_ERR_STATE, "HIVENT_ERR_STATE", "operation not valid in the current state"},
    {HIVENT_ERR_TOO_LARGE, "HIVENT_ERR_TOO_LARGE", "frame exceeds max_frame_size"},
    {HIVENT_ERR_REJECTED, "HIVENT_ERR_REJECTED", "server rejected the request"},
    {HIVENT_ERR_JOIN_REJECTED, "HIVENT_ERR_JOIN_REJECTED", "server rejected the channel join"},
};

#define ERROR_COUNT ((int)(sizeof errors / sizeof errors[0]))

static const struct err_desc *find(int err)
{
    for (int i = 0; i < ERROR_COUNT; i++)
        if (errors[i].code == err)
            return &errors[i];
    return NULL;
}

HIVENT_API const char *hivent_err_name(int err)
{
    const struct err_desc *d = find(err);
    return d ? d->name : "HIVENT_ERR_UNKNOWN";
}

HIVENT_API const char *hivent_err_str(int err)
{
    const struct err_desc *d = find(err);
    return d ? d->desc : "unknown error code";
}

HIVENT_API int hivent_err_count(void)
{
    return ERROR_COUNT;
}

HIVENT_API int hivent_err_code_at(int i)
{
    return i >= 0 && i < ERROR_COUNT ? errors[i].code : 0;
}
