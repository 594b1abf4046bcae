# frozen_string_literal: true

module Hivent
  # Receives consumer life-cycle events.  Subclass it, override the methods
  # you need, and set an instance as Configuration#life_cycle_event_handler.
  # Every method runs on the consumer's polling thread; an exception raised
  # here is logged and does not stop the consumer.
  class LifeCycleEventHandler
    # A consumer of service +client_id+ joined the server for +events+ (an
    # Array of topics) with +partition_count+ partitions.
    def application_registered(client_id, events, partition_count); end

    # #process returned normally for an event.
    def event_processing_succeeded(event_name, event_version, payload); end

    # #process raised +exception+ or returned [:error, reason]; the event
    # went to +dead_letter_queue_name+.  +raw_payload+ is the whole event as
    # JSON text.
    def event_processing_failed(exception, payload, raw_payload, dead_letter_queue_name); end
  end
end
