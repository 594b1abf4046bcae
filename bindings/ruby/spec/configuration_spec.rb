# frozen_string_literal: true

require "spec_helper"

RSpec.describe "configuration" do
  around do |example|
    saved = ENV.to_h.select { |name, _| name.start_with?("HIVENT_") }
    example.run
  ensure
    ENV.keys.grep(/\AHIVENT_/).each { |name| ENV.delete(name) unless saved.key?(name) }
    saved.each { |name, value| ENV[name] = value }
  end

  it "rejects an unknown key with its name" do
    expect { Hivent.configure { |c| c.set("no_such_key", 1) } }
      .to raise_error(Hivent::UnknownKeyError, /no_such_key/)
  end

  it "rejects invalid values naming the key" do
    cases = {
      "server.port" => "http",
      "max_reconnect_tries" => "many",
      "server.secure" => "maybe",
      "reconnect_backoff_time" => -5,
      "log_level" => "loud"
    }
    cases.each do |key, value|
      expect { Hivent.configure { |c| c.set(key, value) } }
        .to raise_error(Hivent::InvalidValueError, /#{Regexp.escape(key)}/)
    end
  end

  it "groups configuration errors under ConfigurationError" do
    expect(Hivent::UnknownKeyError.ancestors).to include(Hivent::ConfigurationError, Hivent::Error)
    expect(Hivent::InvalidValueError.ancestors).to include(Hivent::ConfigurationError)
  end

  it "rejects unknown server settings and non-Hash servers" do
    expect { Hivent.configure { |c| c.server = { hots: "x" } } }.to raise_error(ArgumentError, /hots/)
    expect { Hivent.configure { |c| c.server = "127.0.0.1:4000" } }.to raise_error(TypeError)
  end

  it "rejects values of the wrong type" do
    expect { Hivent.configure { |c| c.set("heartbeat_interval", Object.new) } }.to raise_error(TypeError, /heartbeat_interval/)
    expect { Hivent.configure { |c| c.set("heartbeat_interval", 1.5) } }.to raise_error(ArgumentError, /whole number/)
  end

  it "keeps the previous configuration after an error" do
    Hivent.configure { |c| c.client_id = "before" }
    expect { Hivent.configure { |c| c.client_id = "after"; c.server = { port: 0 } } }
      .to raise_error(Hivent::InvalidValueError, /server\.port/)
    expect(Hivent.config.client_id).to eq("before")
  end

  it "reads HIVENT_* environment variables" do
    ENV["HIVENT_SERVER_HOST"] = "memory"
    ENV["HIVENT_CLIENT_ID"] = "from-env"
    Hivent::Memory.clear
    event = Hivent.emit("config:env", { "a" => 1 }, version: 1)
    expect(event.producer).to eq("from-env")
  end

  it "lets explicit settings win over the environment" do
    ENV["HIVENT_SERVER_HOST"] = "memory"
    ENV["HIVENT_CLIENT_ID"] = "from-env"
    Hivent.configure { |c| c.client_id = "explicit" }
    expect(Hivent.emit("config:explicit", {}, version: 1).producer).to eq("explicit")
  end

  it "reports an invalid environment value" do
    ENV["HIVENT_MAX_RECONNECT_TRIES"] = "lots"
    expect { Hivent.configure { |c| c.client_id = "x" } }
      .to raise_error(Hivent::InvalidValueError, /max_reconnect_tries/)
  end

  it "ignores the environment when use_env is false" do
    ENV["HIVENT_MAX_RECONNECT_TRIES"] = "lots"
    expect { Hivent.configure { |c| c.use_env = false; c.server = { host: "memory" } } }.not_to raise_error
  end

  it "maps the logger level to libhivent's log_level" do
    config = Hivent::Configuration.new
    config.logger = Logger.new(StringIO.new, level: Logger::WARN)
    expect(config.log_level).to eq("warning")
    conf = config.to_native
    begin
      expect(Hivent::Native.conf_get(conf, "log_level")).to match(/warn/)
      expect(Hivent::Native.conf_get(conf, "log.queue")).to eq("true")
    ensure
      Hivent::Native.hivent_conf_destroy(conf)
    end
  end

  it "never reads the API key back" do
    config = Hivent::Configuration.new
    config.server = { api_key: "secret-value" }
    conf = config.to_native
    begin
      expect(Hivent::Native.conf_get(conf, "server.api_key")).to eq("(set)")
    ensure
      Hivent::Native.hivent_conf_destroy(conf)
    end
  end

  it "creates a client from a Hash of options" do
    log = StringIO.new
    client = Hivent::Client.new(client_id: "ruby-hash-client", server: { host: "127.0.0.1", port: SharedServer.port },
                                max_reconnect_tries: 3, logger: test_logger(log), request_timeout: 4000)
    begin
      expect(client.config).to be_a(Hivent::Configuration)
      expect(client.config.max_reconnect_tries).to eq(3)
      expect(client.config.options).to eq("request_timeout" => 4000)
      event = client.emit("config:hash", { "a" => 1 }, version: 1, timeout: 10)
      expect(event.producer).to eq("ruby-hash-client")
    ensure
      client.close
    end
  end

  it "accepts String keys and leaves Hivent.config alone" do
    Hivent.configure { |c| c.client_id = "global" }
    client = Hivent::Client.new("client_id" => "string-keys", "server" => { "host" => "memory" })
    begin
      expect(client.config.client_id).to eq("string-keys")
      expect(client.config.server).to eq(host: "memory")
      expect(client.emit("config:string_keys", {}, version: 1).producer).to eq("string-keys")
      expect(Hivent.config.client_id).to eq("global")
      expect(Hivent.config.server).to eq({})
    ensure
      client.close
    end
  end

  it "layers client options over configure over the environment" do
    ENV["HIVENT_CLIENT_ID"] = "from-env"
    ENV["HIVENT_SERVER_HOST"] = "memory"
    Hivent.configure { |c| c.client_id = "from-configure" }
    configured = Hivent::Client.new
    explicit = Hivent::Client.new(client_id: "from-hash")
    begin
      expect(configured.emit("config:layers", {}, version: 1).producer).to eq("from-configure")
      expect(explicit.emit("config:layers", {}, version: 1).producer).to eq("from-hash")
    ensure
      configured.close
      explicit.close
    end
    # A key that configure leaves unset still comes from the environment.
    ENV["HIVENT_REQUEST_TIMEOUT"] = "soon"
    expect { Hivent::Client.new }.to raise_error(Hivent::InvalidValueError, /request_timeout/)
  end

  it "rejects an invalid Hash of options" do
    expect { Hivent::Client.new(no_such_key: 1) }.to raise_error(Hivent::UnknownKeyError, /no_such_key/)
    expect { Hivent::Client.new(server: { hots: "x" }) }.to raise_error(ArgumentError, /hots/)
    expect { Hivent::Client.new(server: { port: 0 }) }.to raise_error(Hivent::InvalidValueError, /server\.port/)
  end

  it "rejects a client config of another type" do
    { 42 => "Integer", "memory" => "String", nil => "NilClass", [] => "Array" }.each do |value, type|
      expect { Hivent::Client.new(value) }.to raise_error(ArgumentError, /#{type}/)
    end
  end

  it "creates a consumer from a Hash of options" do
    consumer = RecordingConsumer.new(config: { server: { host: "127.0.0.1", port: SharedServer.port },
                                              logger: test_logger(StringIO.new) },
                                     topic: unique("config:hash"), name: unique("hash-svc"), partition_count: 1)
    begin
      expect(consumer.config).to be_a(Hivent::Configuration)
      wait_joined(consumer)
      expect(consumer.state).to eq(:connected)
    ensure
      consumer.close
    end
    expect { RecordingConsumer.new(config: 5, topic: "t", name: "s", partition_count: 1) }
      .to raise_error(ArgumentError, /Integer/)
  end

  it "rejects consumers without topic, name or a valid partition count" do
    anonymous = Class.new(Hivent::Consumer)
    expect { anonymous.new }.to raise_error(ArgumentError, /topic is not set/)
    expect { anonymous.new(topic: "t") }.to raise_error(ArgumentError, /service name is not set/)
    expect { anonymous.new(topic: "t", name: "s", partition_count: 0) }.to raise_error(ArgumentError, /partition_count/)
    expect { anonymous.new(topic: "t", name: "s", partition_count: 1, version: -1) }.to raise_error(ArgumentError, /version/)
  end

  it "lets consumer subclasses inherit declarations" do
    base = Class.new(Hivent::Consumer) do
      topic "orders:created"
      name "billing"
      partition_count 3
    end
    child = Class.new(base) { version 2 }
    expect(child.topic).to eq("orders:created")
    expect(child.service_name).to eq("billing")
    expect(child.partition_count).to eq(3)
    expect(child.version).to eq(2)
    expect(base.version).to be_nil
  end
end

RSpec.describe "errors" do
  it "has one class per libhivent error code" do
    codes = Array.new(Hivent::Native.hivent_err_count) { |i| Hivent::Native.hivent_err_code_at(i) }.reject(&:zero?)
    expect(codes).not_to be_empty
    codes.each do |code|
      klass = Hivent::Error.for_code(code)
      expect(klass).to be < Hivent::Error
      expect(klass.code).to eq(code)
      expect(klass.name).to end_with("Error")
    end
    expect(Hivent::Error.for_code(Hivent::Native::HIVENT_ERR_FORKED)).to eq(Hivent::ForkedError)
    expect(Hivent::Error.for_code(Hivent::Native::HIVENT_ERR_REJECTED)).to be < Hivent::ServerError
  end

  it "builds errors with code, name and message" do
    error = Hivent::Error.build(Hivent::Native::HIVENT_ERR_TIMED_OUT, "no reply")
    expect(error).to be_a(Hivent::TimedOutError)
    expect(error.code_name).to eq("HIVENT_ERR_TIMED_OUT")
    expect(error.message).to eq("no reply")
    expect(Hivent::Error.build(-999, "odd")).to be_instance_of(Hivent::Error)
  end
end
