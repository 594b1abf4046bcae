#include <stdlib.h>

#include "hivent/hivent.h"

HIVENT_API int hivent_version(void)
{
    return HIVENT_VERSION;
}

HIVENT_API const char *hivent_version_str(void)
{
    return HIVENT_VERSION_STR;
}

HIVENT_API int hivent_version_check(int compiled)
{
    if ((compiled >> 16) != (HIVENT_VERSION >> 16) || compiled > HIVENT_VERSION)
        return HIVENT_ERR_VERSION_MISMATCH;
    return HIVENT_OK;
}

HIVENT_API void hivent_free(void *ptr)
{
    free(ptr);
}
