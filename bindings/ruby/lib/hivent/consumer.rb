# frozen_string_literal: true

module Hivent
  # Base class of consumers.  A subclass declares what it consumes and
  # implements #process:
  #
  #   class OrderMailer < Hivent::Consumer
  #     topic "order:created"     # an event name, or "*" for every event
  #     name "mailer"             # the service (consumer group) name
  #     partition_count 2
  #     version 1                 # optional: deliver only this version
  #
  #     def process(event)
  #       deliver(event.payload["email"])
  #     end
  #   end
  #
  #   OrderMailer.new.run
  #
  # #process returning normally acknowledges the event.  Raising, or
  # returning [:error, reason], sends it to the dead-letter queue
  # ("SERVICE:PARTITION:dead_letter"); the exception is logged with its
  # backtrace and the loop goes on.  Interrupt, SignalException, SystemExit
  # and NoMemoryError propagate, leaving the event unacknowledged so the
  # server redelivers it.
  #
  # #process and the life-cycle hooks run on the thread that calls #run or
  # #poll; one thread polls a consumer at a time.
  class Consumer
    include Notices

    # Maximum wait, in seconds, before #run checks #stop and its limits.
    SLICE = 0.2
    # Milliseconds #close waits for the server to confirm the leave.
    CLOSE_TIMEOUT_MS = 5000
    # Maximum length of a reject reason sent to the server, in bytes.
    REASON_MAX = 1000

    @running = []

    class << self
      # Sets the topic (an event name or "*"); without an argument returns it.
      def topic(value = nil)
        value.nil? ? setting(:@topic) : (@topic = value.to_s)
      end

      # Sets the service name that consumers of this class share.  Without
      # an argument it returns the class name, as Module#name does; read
      # the service name with .service_name.
      def name(value = nil)
        value.nil? ? super() : (@service_name = value.to_s)
      end

      def service_name
        setting(:@service_name)
      end

      # Sets the partition count of the service; without an argument returns it.
      def partition_count(value = nil)
        value.nil? ? setting(:@partition_count) : (@partition_count = value)
      end

      # Restricts delivery to one event version; without an argument returns it.
      def version(value = nil)
        value.nil? ? setting(:@version) : (@version = value)
      end

      # Runs +consumers+ (instances), each on its own thread, until INT or
      # TERM arrives or every one stops.  Call it on the main thread.  When
      # one run raises (Hivent::FailedError once its reconnect attempts are
      # used up), the others are stopped and the first error is raised.
      def run_all(*consumers, **run_options)
        saved = install_traps
        list = consumers.flatten
        finished = Queue.new
        threads = list.map do |consumer|
          Thread.new do
            Thread.current.report_on_exception = false
            consumer.run(**run_options, handle_signals: false)
          ensure
            finished << Thread.current
          end
        end
        failure = join_finished(threads.size, finished, list)
        raise failure if failure

        consumers
      ensure
        restore_traps(saved)
      end

      # Asks every consumer running in this process to stop.  Safe to call
      # from a signal handler.
      def stop_all
        Consumer.running_list.dup.each(&:stop)
      end

      # Joins +count+ threads in the order they put themselves on
      # +finished+ and returns the first exception one of them raised.
      # After a failure it keeps stopping +consumers+ every SLICE seconds,
      # because a consumer whose run had not started yet resets its stop
      # request when it starts.
      def join_finished(count, finished, consumers)
        failure = nil
        while count.positive?
          begin
            thread = finished.pop(true)
          rescue ThreadError # queue empty
            consumers.each(&:stop) if failure
            sleep SLICE
            next
          end
          count -= 1
          begin
            thread.join
          rescue Exception => e # rubocop:disable Lint/RescueException
            failure ||= e
            consumers.each(&:stop)
          end
        end
        failure
      end
      private :join_finished

      # Installs INT and TERM handlers that call .stop_all; returns the
      # previous handlers for .restore_traps.
      def install_traps
        %w[INT TERM].to_h { |signal| [signal, Signal.trap(signal) { Consumer.stop_all }] }
      end

      def restore_traps(saved)
        saved&.each { |signal, handler| Signal.trap(signal, handler || "DEFAULT") }
      end

      # Consumers inside #run, for .stop_all.
      def running_list
        Consumer.instance_variable_get(:@running)
      end

      private

      # Looks +ivar+ up through the superclasses, so subclasses inherit settings.
      def setting(ivar)
        klass = self
        while klass <= Consumer
          return klass.instance_variable_get(ivar) if klass.instance_variable_defined?(ivar)

          klass = klass.superclass
        end
        nil
      end
    end

    attr_reader :config, :topic, :service, :partition_count, :version, :last_error
    # Events acknowledged and events sent to the dead-letter queue.
    attr_reader :processed_count, :failed_count

    # Keywords override the class declarations.  +config+ is a
    # Hivent::Configuration or a Hash of options applied over Hivent.config,
    # as for Client.new.  Raises ArgumentError when topic, name or
    # partition_count is missing or invalid, or +config+ has another type.
    def initialize(config: Hivent.config, topic: nil, name: nil, partition_count: nil, version: nil)
      @config = Configuration.from(config, base: config.is_a?(Hash) ? Hivent.config : nil)
      @topic = (topic || self.class.topic).to_s
      @service = (name || self.class.service_name).to_s
      @partition_count = partition_count || self.class.partition_count
      @version = version || self.class.version
      check_declarations
      @poll_lock = Mutex.new
      @handle = nil
      @stop_requested = false
      @close_requested = false
      @closed = false
      @registered = false
      @failed = false
      @processed_count = 0
      @failed_count = 0
      @pid = Process.pid
      @finalizer_state = [nil]
      ObjectSpace.define_finalizer(self, self.class.finalizer(@finalizer_state))
    end

    # Returns a finalizer that destroys the native consumer of an instance
    # never closed.
    def self.finalizer(state)
      proc do
        native = state[0]
        state[0] = nil
        Native.consumer_destroy(native) if native
      end
    end

    def logger
      config.logger
    end

    # Handles one consumed event.  Return normally to acknowledge it; raise
    # or return [:error, reason] to send it to the dead-letter queue.
    def process(_event)
      raise NotImplementedError, "#{self.class} must define process(event)"
    end

    # Connects, then processes events until #stop, INT or TERM (when
    # +handle_signals+ is true and run is called on the main thread),
    # +timeout+ seconds, or +max_events+ events.  Closes the consumer before
    # it returns, so a consumer runs once.  Waits without holding the GVL.
    # Raises Hivent::FailedError when the reconnect attempts are used up,
    # and Hivent::DestroyedError when the consumer is closed.
    def run(timeout: nil, max_events: nil, handle_signals: true)
      start
      @stop_requested = false
      saved = self.class.install_traps if handle_signals && Thread.current == Thread.main
      Consumer.running_list << self
      run_loop(timeout && monotonic_now + timeout, max_events)
      raise failure_error if @failed
    ensure
      Consumer.running_list.delete(self)
      self.class.restore_traps(saved)
      close
    end

    # Makes #run return after the event in progress.  Safe to call from any
    # thread and from a signal handler.
    def stop
      @stop_requested = true
    end

    def stopping?
      @stop_requested
    end

    # Waits up to +timeout+ seconds for notices and handles them, for
    # applications with their own loop; returns how many were handled.
    # Raises Hivent::DestroyedError when the consumer is closed.
    def poll(timeout = 0, limit: nil)
      start
      pump(timeout, limit)
    end

    # Returns the connection state: :connecting, :connected, :backoff, :failed or :closed.
    def state
      return :closed unless @handle

      Native.hivent_state_name(Native.hivent_consumer_state(@handle)).to_sym
    end

    # Returns true once #close was called, even from #process before the
    # close takes effect.
    def closed?
      @closed
    end

    # Creates the native consumer, which connects in the background.
    # #run and #poll call it; calling it again does nothing.  Raises
    # Hivent::DestroyedError after #close.
    def start
      check_closed!
      check_fork!
      @handle ||= create_handle.tap { |native| @finalizer_state[0] = native }
      self
    end

    # Stops #run, leaves the channel, so the service's other consumers take
    # over this one's partitions, and frees the native consumer.
    # Unacknowledged events are redelivered.  The consumer cannot be started
    # again.  Safe to call more than once.
    def close
      stop
      @closed = true
      native = @handle
      return unless native

      # Called from #process: the polling thread closes once the event is done.
      if @poll_lock.owned?
        @close_requested = true
        return
      end

      @poll_lock.synchronize do
        @close_requested = false
        @handle = nil
        @finalizer_state[0] = nil
        if Process.pid == @pid
          begin
            Native.consumer_close(native, CLOSE_TIMEOUT_MS)
          rescue Hivent::Error => e
            logger.warn("hivent") { "#{notice_source}: close: #{e.code_name}: #{e.message}" }
          end
          drain_after_close(native)
        end
        Native.consumer_destroy(native)
      end
      nil
    end

    def inspect
      "#<#{self.class} topic=#{topic} service=#{service} partitions=#{partition_count} state=#{state}>"
    end

    private

    # Logs the notices left after closing.  Events among them stay
    # unacknowledged, so the server redelivers them.
    def drain_after_close(native)
      Client::DRAIN_LIMIT.times do
        notice = Native.consumer_next(native, 0)
        break unless notice

        begin
          handle_common_notice(Native.notice_fields(notice)) unless Native.hivent_notice_type(notice) == NOTICE_EVENT
        ensure
          Native.hivent_notice_destroy(notice)
        end
      end
    end

    # Returns the FailedError for #run, naming the error that led to it.
    def failure_error
      message = @last_error&.message || Native.hivent_err_str(Native::HIVENT_ERR_FAILED)
      message += " (after #{@last_cause.code_name}: #{@last_cause.message})" if @last_cause
      Error.build(Native::HIVENT_ERR_FAILED, message)
    end

    def check_declarations
      raise ArgumentError, "#{self.class}: topic is not set; declare it with `topic \"event:name\"`" if topic.empty?
      raise ArgumentError, "#{self.class}: service name is not set; declare it with `name \"service\"`" if service.empty?
      unless partition_count.is_a?(Integer) && partition_count.positive?
        raise ArgumentError, "#{self.class}: partition_count must be a positive Integer, got #{partition_count.inspect}"
      end
      return if version.nil? || (version.is_a?(Integer) && version.positive?)

      raise ArgumentError, "#{self.class}: version must be a positive Integer, got #{version.inspect}"
    end

    def check_closed!
      return unless @closed

      raise Error.build(Native::HIVENT_ERR_DESTROYED, "#{notice_source} is closed; create a new consumer")
    end

    def check_fork!
      return if Process.pid == @pid

      raise Error.build(Native::HIVENT_ERR_FORKED,
                        "consumer was created in process #{@pid} and inherited by fork; create a new consumer")
    end

    def create_handle
      extra = version ? { "consumer.version" => version.to_s } : {}
      conf = config.to_native(extra)
      begin
        Native.hivent_consumer_new(conf, topic, service, partition_count)
      rescue Exception # rubocop:disable Lint/RescueException
        Native.hivent_conf_destroy(conf)
        raise
      end
    end

    def run_loop(deadline, max_events)
      handled = 0
      until @stop_requested || @failed
        remaining = deadline && deadline - monotonic_now
        break if remaining && remaining <= 0
        break if max_events && handled >= max_events

        before = @processed_count + @failed_count
        pump([remaining || SLICE, SLICE].min, max_events && max_events - handled)
        handled += @processed_count + @failed_count - before
      end
    end

    # Takes notices for up to +seconds+ and handles them, stopping after
    # +limit+ events (nil: no limit).
    def pump(seconds, limit)
      if @poll_lock.owned?
        raise Error.build(Native::HIVENT_ERR_STATE,
                          "#{notice_source}: poll called from inside process; return from process instead")
      end
      raise Error.build(Native::HIVENT_ERR_STATE, "#{notice_source} is polled on another thread") \
        unless @poll_lock.try_lock

      begin
        take_notices(seconds, limit)
      ensure
        @poll_lock.unlock
        close if @close_requested
      end
    end

    def take_notices(seconds, limit)
      count = 0
      events = 0
      notice = @handle && Native.consumer_next(@handle, to_ms(seconds))
      while notice
        events += 1 if dispatch_notice(notice)
        count += 1
        break if @stop_requested || (limit && events >= limit) || count >= Client::DRAIN_LIMIT

        notice = Native.consumer_next(@handle, 0)
      end
      count
    end

    # Handles one notice and frees it; returns true for a consumed event.
    def dispatch_notice(notice)
      if Native.hivent_notice_type(notice) == NOTICE_EVENT
        event_notice(notice)
        return true
      end
      handle_common_notice(Native.notice_fields(notice))
      false
    ensure
      Native.hivent_notice_destroy(notice)
    end

    def event_notice(notice)
      native_event = Native.hivent_notice_event(notice)
      event = begin
        Event.from_native(native_event)
      rescue Hivent::Error => e
        logger.error("hivent") { "#{notice_source}: consumed event cannot be decoded: #{e.message}" }
        return reject(native_event, nil, e, "payload cannot be decoded: #{e.message}")
      end
      outcome, detail = invoke_process(event)
      if outcome == :ok
        acknowledge(native_event, event)
      else
        reject(native_event, event, detail, "#{detail.class}: #{detail.message}")
      end
    end

    # Returns [:ok] or [:error, exception].
    def invoke_process(event)
      result = process(event)
      return [:ok] unless result.is_a?(Array) && result.first == :error

      reason = result[1].to_s
      logger.error("hivent") { "#{describe(event)} failed: #{reason}" }
      [:error, ProcessingError.new(reason)]
    rescue Interrupt, SignalException, SystemExit, ::NoMemoryError
      raise
    rescue StandardError, ScriptError, SystemStackError => e
      log_exception("#{describe(event)} failed", e)
      [:error, e]
    end

    def acknowledge(native_event, event)
      Native.hivent_consumer_ack(@handle, native_event)
      @processed_count += 1
      run_hook(:event_processing_succeeded, event.name, event.version, event.payload)
    rescue Hivent::Error => e
      logger.warn("hivent") { "#{describe(event)}: acknowledgement failed (#{e.code_name}: #{e.message}); the server redelivers the event" }
    end

    def reject(native_event, event, exception, reason)
      Native.hivent_consumer_reject(@handle, native_event, clean_reason(reason))
      @failed_count += 1
      return unless event

      raw = Native.hivent_event_to_json(native_event)
      run_hook(:event_processing_failed, exception, event.payload, raw, event.dead_letter_queue)
    rescue Hivent::Error => e
      logger.warn("hivent") { "#{notice_source}: dead-lettering failed (#{e.code_name}: #{e.message}); the server redelivers the event" }
    end

    # Returns +reason+ as valid UTF-8 without NUL bytes, cut to REASON_MAX bytes.
    def clean_reason(reason)
      text = reason.to_s.encode("UTF-8", invalid: :replace, undef: :replace).delete("\0")
      text = text.byteslice(0, REASON_MAX).scrub("") if text.bytesize > REASON_MAX
      text
    end

    def state_changed(state)
      if state == STATE_FAILED
        @failed = true
      elsif state == STATE_CONNECTED && !@registered
        @registered = true
        run_hook(:application_registered, service, [topic], partition_count)
      end
    end

    def run_hook(name, *args)
      handler = config.life_cycle_event_handler
      handler.public_send(name, *args) if handler.respond_to?(name)
    rescue StandardError, ScriptError => e
      log_exception("#{notice_source}: life-cycle hook #{name}", e)
    end

    def describe(event)
      "#{notice_source}: processing #{event.name} v#{event.version} (uuid #{event.uuid}, queue #{event.queue})"
    end

    def notice_source
      "consumer #{service} of #{topic} (#{self.class})"
    end
  end
end
