# frozen_string_literal: true

require "base64"
require "json"
require "logger"
require "optparse"
require "hivent"

module Hivent
  # The hivent-rb command: emit, consume and worker.
  #
  #   hivent-rb emit user:created '{"id": 7}' --version 2 --key user-7
  #   hivent-rb consume user:created audit --partitions 4 --count 10
  #   hivent-rb worker -r ./app/consumers.rb Audit Mailer
  #
  # Configuration comes from HIVENT_* environment variables, such as
  # HIVENT_SERVER_HOST, HIVENT_SERVER_PORT and HIVENT_SERVER_API_KEY.
  # Events print as one JSON object per line ({"name", "payload", "meta"},
  # plus "queue" and "partition" for consumed events).  Binary strings print
  # as base64 text and extension values as {"ext": TYPE, "data": BASE64}.
  class CLI
    USAGE = <<~TEXT
      Usage: hivent-rb [--log-level LEVEL] COMMAND [ARGS]
        emit NAME [PAYLOAD_JSON] [--version N] [--cid CID] [--key KEY] [--timeout S]
        consume TOPIC SERVICE [--partitions N] [--version N] [--count N] [--timeout S]
        worker [-r FILE]... CLASS... [--timeout S]
    TEXT

    # Returns +event+ as one line of JSON text.
    def self.event_json(event)
      record = event.to_h
      record = record.merge("queue" => event.queue, "partition" => event.partition) if event.queue
      JSON.generate(json_value(record))
    end

    # Converts decoded payload values to values JSON can print.
    def self.json_value(value)
      case value
      when Hash then value.to_h { |key, item| [key.is_a?(String) ? key : JSON.generate(json_value(key)), json_value(item)] }
      when Array then value.map { |item| json_value(item) }
      when Hivent::Ext then { "ext" => value.type, "data" => Base64.strict_encode64(value.data) }
      when String then value.encoding == Encoding::ASCII_8BIT ? Base64.strict_encode64(value) : value
      else value
      end
    end

    def initialize(out: $stdout, err: $stderr)
      @out = out
      @err = err
    end

    # Runs the command in +argv+; returns the exit status.
    def run(argv)
      args = argv.dup
      level = "warn"
      while args.first == "--log-level"
        args.shift
        level = args.shift or raise ArgumentError, "--log-level needs a value"
      end
      command = args.shift
      configure_logger(level)
      case command
      when "emit" then emit(args)
      when "consume" then consume(args)
      when "worker" then worker(args)
      else
        @err.puts(USAGE)
        2
      end
    rescue OptionParser::ParseError, ArgumentError, JSON::ParserError => e
      @err.puts("hivent-rb #{command}: #{e.message}")
      2
    rescue Hivent::Error => e
      @err.puts("hivent-rb #{command}: #{e.code_name}: #{e.message}")
      1
    end

    private

    def configure_logger(level)
      severity = Logger::Severity.const_get(level.upcase)
      Hivent.configure { |c| c.logger = Logger.new(@err, level: severity, progname: "hivent") }
    rescue NameError
      raise ArgumentError, "unknown log level #{level.inspect} (expected debug, info, warn or error)"
    end

    def emit(args)
      options = { version: 1 }
      rest = OptionParser.new do |parser|
        parser.on("--version N", Integer) { |v| options[:version] = v }
        parser.on("--cid CID") { |v| options[:cid] = v }
        parser.on("--key KEY") { |v| options[:key] = v }
        parser.on("--timeout S", Float) { |v| options[:timeout] = v }
      end.parse(args)
      name, payload_text = rest
      raise ArgumentError, "missing event name" unless name

      payload = JSON.parse(payload_text || "{}")
      raise ArgumentError, "the payload must be a JSON object" unless payload.is_a?(Hash)

      client = Client.new(Hivent.config)
      begin
        event = client.emit(name, payload, version: options[:version], cid: options[:cid], key: options[:key],
                                           timeout: options[:timeout])
      ensure
        client.close
      end
      @out.puts(CLI.event_json(event))
      0
    end

    def consume(args)
      options = { partitions: 1, count: 0 }
      rest = OptionParser.new do |parser|
        parser.on("--partitions N", Integer) { |v| options[:partitions] = v }
        parser.on("--version N", Integer) { |v| options[:version] = v }
        parser.on("--count N", Integer) { |v| options[:count] = v }
        parser.on("--timeout S", Float) { |v| options[:timeout] = v }
      end.parse(args)
      topic, service = rest
      raise ArgumentError, "expected TOPIC and SERVICE" unless topic && service

      printer = printing_consumer(topic, service, options)
      printer.run(timeout: options[:timeout], max_events: options[:count].positive? ? options[:count] : nil)
      return 0 if options[:count].zero? || printer.processed_count >= options[:count]

      @err.puts("hivent-rb consume: received #{printer.processed_count} of #{options[:count]} events before the timeout")
      1
    end

    def printing_consumer(topic, service, options)
      out = @out
      printer = Class.new(Consumer) do
        define_method(:process) do |event|
          out.puts(CLI.event_json(event))
          out.flush
        end
      end
      printer.new(topic: topic, name: service, partition_count: options[:partitions], version: options[:version])
    end

    def worker(args)
      files = []
      options = {}
      names = OptionParser.new do |parser|
        parser.on("-r FILE", "--require FILE") { |v| files << v }
        parser.on("--timeout S", Float) { |v| options[:timeout] = v }
      end.parse(args)
      raise ArgumentError, "expected at least one consumer class" if names.empty?

      files.each { |file| require File.expand_path(file) }
      consumers = names.map { |name| load_consumer(name) }
      Hivent.logger.info("hivent") { "worker running #{names.join(', ')}" }
      Consumer.run_all(consumers, timeout: options[:timeout])
      0
    end

    def load_consumer(name)
      klass = Object.const_get(name)
      raise ArgumentError, "#{name} is not a Hivent::Consumer subclass" unless klass.is_a?(Class) && klass < Consumer

      klass.new
    rescue NameError
      raise ArgumentError, "consumer class #{name} not found; load its file with -r FILE"
    end
  end
end
