import ArgumentParser
import Foundation
import Logging
import StrataCLI
import StrataCollect
import StrataCore
import StrataKafka

struct CollectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collect",
        abstract: "Run the HTTP collection gateway: browsers and apps post events, the gateway writes ods.raw.",
        discussion: """
        Endpoints (docs/collect.md):
          POST    /v1/events   JSON array or NDJSON of raw events (gzip accepted)
          OPTIONS /v1/events   CORS preflight
          GET     /sdk.js      the browser SDK
          GET     /healthz     liveness, degraded state, spool bytes
          GET     /metrics     Prometheus text

        Each event is checked with the split job's own rule. Good events of a batch are accepted even when others are not: 202 {"accepted":n,"rejected":[{"index":i,"reason":"…"}]}; 400 when none is good. Accepted events get "server_ts" (ms) and "client_ip" and go to ods.raw keyed by content_id (idempotent producer, acks=all).

        A 202 means durable: every accepted event was acknowledged by the broker, or, when the broker did not answer within --ack-timeout, appended and fsynced to the spool (--spool-dir). A drainer replays the spool in order once the broker is back; a replay may duplicate an event, which the dwm job's event_id dedupe absorbs. When the spool reaches --spool-quota the answer is 503 with Retry-After.

        Other answers: 401 (--site-key set, none or a wrong one sent), 408 (body slower than --body-timeout), 413 (body over --max-body, or more than --max-items events), 415 (an encoding other than gzip), 429 with Retry-After (over --rate for the tracking key).

        Environment: STRATA_COLLECT_SITE_KEYS and STRATA_COLLECT_TRUSTED_PROXIES (comma-separated), STRATA_COLLECT_SPOOL_DIR.

        Examples:
          strata collect
          strata collect --listen 0.0.0.0:8090 --site-key K1 --rate 50 \\
                         --rate-key-header X-Strata-Site --trusted-proxy 10.0.0.0/8
          curl -d '[{"event_id":"e1","ts":1795219200000,"action":"click",
                     "content_id":"c00000001","user_id":"u1"}]' \\
               http://127.0.0.1:8090/v1/events
          strata gen events --rate 5000 --duration 60s \\
                 --http http://127.0.0.1:8090/v1/events
        """)

    @OptionGroup var global: GlobalOptions
    @Option(help: "Address to listen on, HOST:PORT (port 0 picks a free one).") var listen = "127.0.0.1:8090"
    @Option(help: "Prefix for every topic name (the raw topic is PREFIX + ods.raw).") var topicPrefix = ""
    @Option(help: "Largest request body, and largest once inflated (e.g. 1MB, 512KB).") var maxBody: ByteSize = ByteSize(1 << 20)
    @Option(help: "Most events in one request.") var maxItems = 1_000
    @Option(help: "A request's whole body must arrive within this.") var bodyTimeout = DurationArgument(.seconds(10))
    @Option(help: "A connection idle this long is closed.") var idleTimeout = DurationArgument(.seconds(30))
    @Option(help: "How long a request waits for the broker's acknowledgements before spooling.") var ackTimeout = DurationArgument(.milliseconds(500))
    @Option(help: "librdkafka's message.timeout.ms for the gateway's producer: how long it retries one event.")
    var messageTimeout = DurationArgument(.seconds(30))
    @Option(help: "Spool directory (env STRATA_COLLECT_SPOOL_DIR).") var spoolDir: String?
    @Option(help: "Bytes the spool may hold before 503 (e.g. 1GB).") var spoolQuota: ByteSize = ByteSize(1 << 30)
    @Option(help: "Spool segment size.") var spoolSegment: ByteSize = ByteSize(16 << 20)
    @Option(help: "Retry-After of a 503, seconds.") var retryAfter = 5
    @Option(help: "Requests per second per tracking key (default: no limit).") var rate: Double?
    @Option(help: "Burst of the rate limit, requests.") var burst: Double = 100
    @Option(help: "Header holding the tracking key for the rate limit (default: the client address).") var rateKeyHeader: String?
    @Option(help: "A proxy whose X-Forwarded-For is believed: address or IPv4 network (repeatable; env STRATA_COLLECT_TRUSTED_PROXIES).")
    var trustedProxy: [String] = []
    @Option(help: "An accepted site key, sent as X-Strata-Key or ?key= (repeatable; env STRATA_COLLECT_SITE_KEYS). None: no key needed.")
    var siteKey: [String] = []
    @Option(help: "An origin browsers may post from (repeatable); default any (*).") var corsOrigin: [String] = []
    @Option(help: "Share of successful requests in the access log (errors are always logged).") var accessLogSample = 0.01

    func run() throws {
        let env = ProcessInfo.processInfo.environment
        var options = CollectOptions()
        (options.host, options.port) = try HTTPCommandSupport.parseListen(listen, example: "127.0.0.1:8090")
        options.rawTopic = topicPrefix + Topology.raw
        options.maxBodyBytes = Int(maxBody.bytes)
        options.maxItems = maxItems
        options.bodyTimeout = bodyTimeout.duration
        options.idleTimeout = idleTimeout.duration
        options.ackTimeout = ackTimeout.duration
        options.spoolDirectory = spoolDir ?? env["STRATA_COLLECT_SPOOL_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "data/collect/spool"
        options.spoolQuotaBytes = spoolQuota.bytes
        options.spoolSegmentBytes = spoolSegment.bytes
        options.retryAfterSeconds = retryAfter
        options.rateLimit = rate
        options.rateBurst = burst
        options.rateKeyHeader = rateKeyHeader
        options.trustedProxies = trustedProxy.isEmpty ? Self.list(env["STRATA_COLLECT_TRUSTED_PROXIES"]) : trustedProxy
        options.siteKeys = Set(siteKey.isEmpty ? Self.list(env["STRATA_COLLECT_SITE_KEYS"]) : siteKey)
        if !corsOrigin.isEmpty { options.corsOrigins = corsOrigin }
        options.accessLogSample = accessLogSample
        do { try options.validate() } catch { throw ValidationError(String(describing: error)) }

        let config = try global.resolve()
        let topology = try global.loadTopology(config)
        var producer = config.producerConfig(clientId: "strata-collect")
        // Operators' -X settings win over these defaults, as everywhere.
        if config.kafka["message.timeout.ms"] == nil {
            producer["message.timeout.ms"] = String(Int(messageTimeout.seconds * 1000))
        }
        let logger = Logger(label: "strata.collect")
        let server = try CollectServer(options: options, topology: topology, producerConfig: producer, logger: logger)
        let host = HTTPCommandSupport.urlHost(options.host)
        let banner = "→ \(options.rawTopic) · spool \(options.spoolDirectory) · site keys \(options.siteKeys.isEmpty ? "off" : "required")"
        try HTTPCommandSupport.run(command: "strata collect", { onRunning in try await server.run(onRunning: onRunning) }) { port in
            stderrLine("strata collect: http://\(host):\(port)/v1/events \(banner)")
        }
    }

    static func list(_ value: String?) -> [String] {
        (value ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}

/// "1048576", "512KB", "1MB", "20GB" (powers of 1024).
struct ByteSize: ExpressibleByArgument, Sendable {
    let bytes: Int64

    init(_ bytes: Int64) { self.bytes = bytes }

    init?(argument: String) {
        let units: [(String, Int64)] = [("KIB", 1 << 10), ("MIB", 1 << 20), ("GIB", 1 << 30), ("KB", 1 << 10), ("MB", 1 << 20),
                                        ("GB", 1 << 30), ("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("B", 1)]
        var text = argument.uppercased().trimmingCharacters(in: .whitespaces)
        var scale: Int64 = 1
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            text.removeLast(suffix.count)
            scale = factor
            break
        }
        guard let v = Double(text.trimmingCharacters(in: .whitespaces)), v >= 0 else { return nil }
        bytes = Int64(v * Double(scale))
    }

    var defaultValueDescription: String { "\(bytes)" }
}
