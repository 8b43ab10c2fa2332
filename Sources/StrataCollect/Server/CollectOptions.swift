/// What `strata collect` runs with. Defaults suit a gateway on one machine beside the broker.
public struct CollectOptions: Sendable {
    public var host = "127.0.0.1"
    /// 0 picks a free port (tests, benches).
    public var port = 8090
    /// The raw topic, with any topic prefix already applied.
    public var rawTopic = "ods.raw"

    // Bodies
    /// Largest body, compressed or not (a gzip body is also held to this size once inflated) → 413.
    public var maxBodyBytes = 1 << 20
    /// Most events in one request → 413.
    public var maxItems = 1_000
    /// Largest single event (the split's limit too).
    public var maxEventBytes = 64 * 1024
    /// The whole body must arrive within this (slow-loris guard) → 408.
    public var bodyTimeout: Duration = .seconds(10)
    /// A connection that sends nothing for this long is closed.
    public var idleTimeout: Duration = .seconds(30)

    // Durability
    /// How long a request waits for the broker's acknowledgements before its events go to the spool.
    public var ackTimeout: Duration = .milliseconds(500)
    public var spoolDirectory = "data/collect/spool"
    /// Bytes the spool may hold; beyond that requests are answered 503 + Retry-After.
    public var spoolQuotaBytes: Int64 = 1 << 30
    public var spoolSegmentBytes: Int64 = 16 << 20
    /// The `Retry-After` of a 503.
    public var retryAfterSeconds = 5

    // Protection
    /// Requests per second per tracking key (nil: no limit), with bursts of `rateBurst`.
    public var rateLimit: Double? = nil
    public var rateBurst: Double = 100
    /// The header naming the tracking key (e.g. X-Strata-Site); without it, or when a request lacks
    /// it, the key is the client address.
    public var rateKeyHeader: String? = nil
    /// Peers whose `X-Forwarded-For` is believed (addresses or IPv4 networks).
    public var trustedProxies: [String] = []
    /// Accepted site keys (`X-Strata-Key` header or `?key=`); empty: no key needed.
    public var siteKeys: Set<String> = []
    /// Origins allowed by CORS; "*" allows any.
    public var corsOrigins: [String] = ["*"]

    // Logs
    /// Share of successful requests written to the access log (errors and 5xx always are).
    public var accessLogSample: Double = 0.01

    public init() {}

    public struct Invalid: Error, CustomStringConvertible { public let description: String }

    public func validate() throws {
        func check(_ ok: Bool, _ message: String) throws { if !ok { throw Invalid(description: message) } }
        try check((0...65535).contains(port), "port must be 0...65535")
        try check(maxBodyBytes >= 1024, "the body limit must be at least 1 KiB")
        try check(maxItems >= 1, "the item limit must be at least 1")
        try check(ackTimeout > .zero, "the ack timeout must be positive")
        try check(spoolQuotaBytes >= spoolSegmentBytes, "the spool quota must hold at least one segment (\(spoolSegmentBytes) bytes)")
        try check(spoolSegmentBytes >= 4096, "spool segments must be at least 4 KiB")
        try check(rateLimit.map { $0 > 0 } ?? true, "the rate limit must be positive")
        try check(rateBurst >= 1, "the burst must be at least 1")
        try check((0...1).contains(accessLogSample), "the access-log sample must be within 0...1")
        try check(!rawTopic.isEmpty, "the raw topic name is empty")
        _ = try TrustedProxies(trustedProxies)
    }
}
