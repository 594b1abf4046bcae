# frozen_string_literal: true

module Hivent
  # A producer: one libhivent client with its own connection and I/O
  # thread.  Every method is safe to call from any Ruby thread.  Delivery
  # callbacks run on the thread that polls: the one inside #poll, #flush,
  # #close or a synchronous #emit.  Only one thread polls at a time; the
  # others wait for their results, taking over polling when it is free.
  #
  # A client inherited across Process.fork fails with Hivent::ForkedError;
  # create a new one in the child.
  class Client
    include Notices

    # Maximum wait, in seconds, between checks of other threads' state.
    SLICE = 0.2
    # Notices dispatched per poll before control returns to the caller.
    DRAIN_LIMIT = 10_000
    # Asynchronous emits between two dispatches of ready delivery reports.
    DISPATCH_EVERY = 64
    # Notices converted per call into the extension while dispatching.
    DRAIN_BATCH = 256

    attr_reader :config, :last_error

    # Creates the client and starts connecting in the background; a server
    # that is down is not an error here.  +config+ is a
    # Hivent::Configuration (default Hivent.config) or a Hash of options
    # applied over Hivent.config (see Configuration.from).  Raises
    # Hivent::ConfigurationError for invalid settings and ArgumentError
    # for a +config+ of another type.
    def initialize(config = Hivent.config)
      @config = Configuration.from(config, base: config.is_a?(Hash) ? Hivent.config : nil)
      @lock = Mutex.new
      @changed = ConditionVariable.new
      @pending = {}
      @next_id = 0
      @emits_since_dispatch = 0
      @polling = false
      @poller = nil
      @pid = Process.pid
      @handle = create_handle
      @finalizer_state = [@handle, to_ms(@flush_timeout)]
      ObjectSpace.define_finalizer(self, self.class.finalizer(@finalizer_state))
    end

    # Returns a finalizer that destroys the handle of a client never
    # closed, after waiting up to flush_timeout for its outstanding emits.
    def self.finalizer(state)
      proc do
        handle = state[0]
        state[0] = nil
        Native.client_destroy(handle, state[1]) if handle
      end
    end

    def logger
      config.logger
    end

    # Emits an event and waits for the server's reply; returns the
    # published Event with meta.uuid, meta.cid and meta.created_at filled
    # in.  +payload+ is a Hash (nil is an empty one).  Raises TypeError or
    # ArgumentError for payload values that cannot be converted, naming the
    # field, and a Hivent::Error when the emit fails.
    def emit(name, payload = {}, version:, cid: nil, key: nil, timeout: nil)
      emit_async(name, payload, version: version, cid: cid, key: key).value(timeout)
    end

    # Queues an event and returns a Hivent::Delivery at once.  The block, if
    # given, runs with (event, error) when the delivery report is
    # dispatched.  An error raised here (invalid argument, full queue,
    # failed state) means no report will come.
    def emit_async(name, payload = {}, version:, cid: nil, key: nil, &block)
      # Strings, the usual case, skip the conversion calls.
      name = text_arg(name, "name") unless name.instance_of?(String)
      integer_arg(version, "version") unless version.is_a?(Integer)
      cid = text_arg(cid, "cid") unless cid.nil? || cid.instance_of?(String)
      key = text_arg(key, "key") unless key.nil? || key.instance_of?(String)
      delivery = @lock.synchronize do
        # Holding the lock keeps #close from destroying the handle during the call.
        native = handle
        id = @next_id + 1
        pending = Delivery.new(self, id, block)
        Native.hivent_emit_async(native, name, payload, version, cid, key, id)
        @next_id = id
        @pending[id] = pending
      end
      # Ready delivery reports are dispatched every DISPATCH_EVERY emits,
      # so callbacks of asynchronous emits run without an explicit poll.
      @emits_since_dispatch += 1
      if @emits_since_dispatch >= DISPATCH_EVERY
        @emits_since_dispatch = 0
        poll(0)
      end
      delivery
    end

    # Waits up to +timeout+ seconds (nil: no limit) for delivery reports and
    # dispatches them; returns how many notices were handled.  Returns 0
    # when another thread is polling.
    def poll(timeout = 0)
      check_fork!
      with_polling { pump(timeout) } || 0
    end

    # Waits up to +timeout+ seconds for every outstanding emit of this
    # client, dispatching delivery callbacks; returns how many are still
    # outstanding (0 when all completed).
    def flush(timeout = 5)
      check_fork!
      deadline = monotonic_now + timeout
      loop do
        left = outstanding
        return left if left.zero?

        remaining = deadline - monotonic_now
        return left if remaining <= 0

        poll_or_wait([remaining, SLICE].min) { outstanding.zero? }
      end
    end

    # Returns the number of emits whose delivery report was not dispatched yet.
    def outstanding
      @lock.synchronize { @pending.size }
    end

    # Returns the connection state: :connecting, :connected, :backoff, :failed or :closed.
    def state
      @lock.synchronize do
        return :closed unless @handle

        Native.hivent_state_name(Native.hivent_client_state(@handle)).to_sym
      end
    end

    def closed?
      @handle.nil?
    end

    # Flushes for up to +timeout+ seconds (default: the flush_timeout
    # setting), then destroys the client.  close(0) returns without
    # waiting for the server.  Emits still outstanding after that fail with
    # Hivent::DestroyedError, through their Delivery and block; the event
    # may still have reached the server.  Safe to call more than once.
    def close(timeout = nil)
      return if @handle.nil?
      if @poller == Thread.current
        raise Error.build(Native::HIVENT_ERR_STATE, "a client cannot be closed from its own delivery callback")
      end

      waited = timeout || @flush_timeout
      if Process.pid == @pid
        flush(waited)
        # Log lines still queued would go to stderr once the handle is gone.
        poll(0)
      end
      destroy_handle
      left = outstanding
      if left.positive?
        logger.warn("hivent") do
          "#{notice_source}: closed with #{left} emits outstanding after waiting #{waited} s, " \
            "so they fail with HIVENT_ERR_DESTROYED"
        end
      end
      fail_pending(Error.build(Native::HIVENT_ERR_DESTROYED, "client closed before the delivery report"))
      nil
    end

    # Waits until +delivery+ completes, polling when no other thread does.
    # Delivery#value calls it.
    def wait_for(delivery, timeout)
      deadline = timeout && monotonic_now + timeout
      until delivery.done?
        check_fork!
        remaining = deadline && deadline - monotonic_now
        raise timeout_error(delivery, timeout) if remaining && remaining <= 0

        poll_or_wait([remaining || SLICE, SLICE].min) { delivery.done? }
      end
      delivery
    end

    def inspect
      "#<Hivent::Client state=#{state} outstanding=#{outstanding}>"
    end

    private

    def create_handle
      conf = config.to_native
      begin
        @flush_timeout = Native.conf_get(conf, "flush_timeout").to_i / 1000.0
        # #close and the finalizer wait for outstanding emits themselves, so
        # the core client gets flush_timeout 0 and its destroy fails the
        # rest at once instead of waiting again.
        Native.hivent_conf_set(conf, "flush_timeout", "0")
        Native.hivent_client_new(conf)
      rescue Exception # rubocop:disable Lint/RescueException
        Native.hivent_conf_destroy(conf)
        raise
      end
    end

    def handle
      @handle || raise(Error.build(Native::HIVENT_ERR_DESTROYED, "client is closed"))
    end

    # Raises Hivent::ForkedError in a forked child before any wait starts;
    # libhivent rejects the inherited handle the same way.
    def check_fork!
      handle
      return if Process.pid == @pid

      raise Error.build(Native::HIVENT_ERR_FORKED,
                        "client was created in process #{@pid} and inherited by fork; create a new client")
    end

    def text_arg(value, what)
      case value
      when nil, String then value
      when Symbol then value.to_s
      else raise TypeError, "#{what} must be a String, got #{value.class}"
      end
    end

    def integer_arg(value, what)
      raise TypeError, "#{what} must be an Integer, got #{value.inspect}" unless value.is_a?(Integer)

      value
    end

    # Runs the block with the polling role and returns its result, or
    # returns nil at once when another thread has the role.  A delivery
    # callback that emits or flushes already has the role and polls
    # directly.
    def with_polling
      return yield if @poller == Thread.current

      acquired = @lock.synchronize do
        next false if @polling

        @polling = true
        @poller = Thread.current
      end
      return nil unless acquired

      begin
        yield
      ensure
        @lock.synchronize do
          @polling = false
          @poller = nil
          @changed.broadcast
        end
      end
    end

    # Polls for up to +seconds+ when no other thread polls; otherwise waits
    # as long for the poller to report progress.  The block returns whether
    # the caller's condition is already met.
    def poll_or_wait(seconds, &done)
      return if with_polling { pump(seconds) }

      @lock.synchronize { @changed.wait(@lock, seconds) unless done.call || !@polling }
    end

    # Takes notices for up to +seconds+ and dispatches them.  Runs only
    # while this thread has the polling role.
    def pump(seconds)
      count = 0
      wait = to_ms(seconds)
      while count < DRAIN_LIMIT
        batch = Native.client_drain(handle, wait, [DRAIN_BATCH, DRAIN_LIMIT - count].min)
        return count if batch.empty?

        batch.each do |fields|
          # Delivery reports, nearly every notice, skip dispatch_fields.
          if fields[FIELD_TYPE] == NOTICE_DELIVERY
            delivery_notice(fields)
          else
            dispatch_fields(fields)
          end
          count += 1
          # The rest of the batch belongs to emits that closing failed.
          return count if @handle.nil?
        end
        wait = 0
      end
      count
    end

    def dispatch_fields(fields)
      return unreadable_notice(*fields) if fields[0].is_a?(Exception)
      return if handle_common_notice(fields)

      delivery_notice(fields) if fields[FIELD_TYPE] == NOTICE_DELIVERY
    end

    # A notice that could not be converted; a delivery still completes,
    # with the error.
    def unreadable_notice(error, type, id)
      logger.error("hivent") { "#{notice_source}: notice of type #{type} has an unreadable event: #{error.message}" }
      complete_delivery(id, nil, error) if type == NOTICE_DELIVERY
      nil
    end

    # Completes the emit of a delivery notice.  Native.client_drain has
    # already built its Event.
    def delivery_notice(fields)
      err = fields[FIELD_ERR]
      error = err.zero? ? nil : Error.build(err, fields[FIELD_ERRSTR])
      complete_delivery(fields[FIELD_MSG_ID], fields[FIELD_EVENT], error)
    end

    def complete_delivery(id, event, error)
      delivery = @lock.synchronize do
        found = @pending.delete(id)
        found&.complete(event, error)
        @changed.broadcast
        found
      end
      unless delivery
        logger.warn("hivent") { "#{notice_source}: delivery report for unknown emit id #{id}" }
        return
      end
      # Emits without a block, such as those awaited with Delivery#value,
      # have no callback to run.
      run_callback(delivery) if delivery.callback?
    end

    def run_callback(delivery)
      delivery.run_callback
    rescue StandardError, ScriptError => e
      log_exception("#{notice_source}: delivery callback for #{delivery.event&.name || "emit #{delivery.id}"}", e)
    end

    def fail_pending(error)
      failed = @lock.synchronize do
        list = @pending.values
        @pending.clear
        list.each { |delivery| delivery.complete(nil, error) }
        @changed.broadcast
        list
      end
      failed.each { |delivery| run_callback(delivery) }
    end

    # Takes the polling role so no thread is inside client_next, clears
    # @handle under the lock so no emit is inside libhivent, then destroys.
    def destroy_handle
      native = @lock.synchronize do
        # A forked child has no poller thread, even when @polling is true.
        @changed.wait(@lock, SLICE) while @polling && Process.pid == @pid
        found = @handle
        @handle = nil
        found
      end
      return unless native

      @finalizer_state[0] = nil
      ObjectSpace.undefine_finalizer(self)
      Native.client_destroy(native, 0)
    end

    def timeout_error(delivery, timeout)
      Error.build(Native::HIVENT_ERR_TIMED_OUT,
                  "no delivery report for emit #{delivery.id} within #{timeout} s")
    end

    def notice_source
      "producer #{config.client_id || '(default client_id)'}"
    end
  end
end
