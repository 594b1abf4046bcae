/*
 * Declarations shared by every SWIG binding.  A language's own interface
 * file declares %module and its typemaps, then includes this file.
 *
 * Bindings drive the core through notices (hivent_client_next(),
 * hivent_consumer_next()) instead of C callbacks, so no library thread and
 * no C callback ever calls into an interpreter.  The callback setters are
 * therefore hidden here.
 */

%{
#include "hivent/hivent.h"
%}

%ignore hivent_conf_set_delivery_cb;
%ignore hivent_conf_set_state_cb;
%ignore hivent_conf_set_error_cb;
%ignore hivent_conf_set_log_cb;
%ignore hivent_conf_set_process_cb;
%ignore hivent_conf_set_opaque;
%ignore hivent_client_poll;
%ignore hivent_consumer_poll;
%ignore hivent_notice_msg_opaque;

%include <stdint.i>
%include "hivent/hivent.h"
