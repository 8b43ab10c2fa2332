import CompressNIO
import CoreMetrics
import Foundation
import HTTPTypes
public import Hummingbird
import NIOCore
import ServiceLifecycle
import UnixSignals
public import Logging
public import StrataCore
public import StrataKafka
import Synchronization

/// `strata collect`: the HTTP front door of `ods.raw`.
///
///     POST    /v1/events   a JSON array or NDJSON of raw events (gzip accepted) → 202 / 400 / 401 /
///                          408 / 413 / 415 / 429 / 503
///     OPTIONS /v1/events   CORS preflight
///     GET     /sdk.js      the browser SDK
///     GET     /healthz     liveness, spool and degraded state
///     GET     /metrics     Prometheus text
///
/// A 202 means every accepted event is durable: acknowledged by the broker (`acks=all`,
/// idempotent producer) or fsynced to the spool (docs/collect.md).
public final class CollectServer: Sendable {
    public let options: CollectOptions
    public let collector: Collector
    let validator: EventValidator
    let limiter: RateLimiter?
    let proxies: TrustedProxies
    let metrics: CollectMetrics
    let logger: Logger
    let rateKeyHeader: HTTPField.Name?
    let siteKeyHeader = HTTPField.Name("X-Strata-Key")!
    let forwardedFor = HTTPField.Name("X-Forwarded-For")!
    let allowHeaders: String
    private let services = Mutex<ServiceGroup?>(nil)

    /// Opens the spool (replaying nothing yet) and the producer; `run` serves.
    public init(options: CollectOptions, topology: Topology, producerConfig: KafkaConfig,
                registry: MetricsRegistry = .shared, logger: Logger = Logger(label: "strata.collect")) throws {
        try options.validate()
        self.options = options
        self.logger = logger
        let metrics = CollectMetrics(registry: registry)
        self.metrics = metrics
        validator = try EventValidator(topology: topology, maxEventBytes: options.maxEventBytes)
        limiter = options.rateLimit.map { RateLimiter(rate: $0, burst: options.rateBurst) }
        proxies = try TrustedProxies(options.trustedProxies)
        rateKeyHeader = options.rateKeyHeader.flatMap { HTTPField.Name($0) }
        var headers = ["Content-Type", "Content-Encoding", "X-Strata-Key"]
        if let h = options.rateKeyHeader { headers.append(h) }
        allowHeaders = headers.joined(separator: ", ")
        let spool = try Spool(directory: options.spoolDirectory, quotaBytes: options.spoolQuotaBytes,
                              segmentBytes: options.spoolSegmentBytes, logger: logger) { bytes in
            metrics.spoolBytes.record(bytes)
        }
        let broker = try BrokerWriter(config: producerConfig, topic: options.rawTopic, logger: logger)
        collector = Collector(broker: broker, spool: spool, ackTimeout: options.ackTimeout, metrics: metrics, logger: logger)
    }

    /// Serves until cancelled or (with `handleSignals`) SIGTERM/SIGINT, then closes the spool and
    /// the producer; `onRunning` gets the bound port.
    public func run(handleSignals: Bool = true, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        collector.startDrainer()
        defer { collector.close() }
        let app = Application(
            router: buildRouter(),
            server: .http1(configuration: .init(idleTimeout: .nanoseconds(Int64(options.idleTimeout.components.seconds) * 1_000_000_000
                                                                          + options.idleTimeout.components.attoseconds / 1_000_000_000))),
            configuration: .init(address: .hostname(options.host, port: options.port), serverName: "strata-collect"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: handleSignals ? [.sigterm, .sigint] : [],
                                                      logger: logger))
        services.withLock { $0 = group }
        try await group.run()
    }

    /// Stops serving gracefully (open requests finish); `run` then returns.
    public func shutdown() async {
        await services.withLock { $0 }?.triggerGracefulShutdown()
    }

    public func buildRouter() -> Router<CollectContext> {
        let router = Router(context: CollectContext.self)
        router.add(middleware: CORSMiddleware(origins: options.corsOrigins, allowHeaders: allowHeaders))
        router.post("/v1/events") { [self] request, context in await events(request, context) }
        router.on("/v1/events", method: .options) { _, _ in Response(status: .noContent) }
        router.get("/sdk.js") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/javascript; charset=utf-8", .cacheControl: "public, max-age=3600"],
                     body: .init(byteBuffer: ByteBuffer(bytes: PackageResources.sdk_js)))
        }
        router.get("/healthz") { [self] _, _ in
            let s = "{\"status\":\"ok\",\"degraded\":\(collector.isDegraded),\"spool_bytes\":\(collector.spool.bytes),"
                + "\"broker_outstanding\":\(collector.broker.outstanding)}"
            return Responses.json(s, status: .ok)
        }
        router.get("/metrics") { [self] _, _ in
            metrics.outstanding.record(collector.broker.outstanding)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: metrics.registry.render())))
        }
        return router
    }

    // MARK: POST /v1/events

    /// What one request came to, for the access log.
    struct Outcome {
        var status: HTTPResponse.Status
        var body: String
        var headers: HTTPFields = [:]
        var accepted = 0
        var rejected = 0
        var durable: String? = nil
        var reason: String? = nil
    }

    func events(_ request: Request, _ context: CollectContext) async -> Response {
        let started = ContinuousClock.now
        let peer = context.remoteAddress?.ipAddress
        let client = ClientAddress.resolve(peer: peer, forwardedFor: request.headers[forwardedFor], trusted: proxies)
        let outcome = await handle(request, client: client)
        let elapsed = ContinuousClock.now - started
        metrics.duration.recordNanoseconds(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
        metrics.status(outcome.status.code)
        accessLog(outcome, client: client, elapsed: elapsed)
        return Responses.json(outcome.body, status: outcome.status, headers: outcome.headers)
    }

    private func refuse(_ status: HTTPResponse.Status, _ code: String, _ detail: String, retryAfter: Int? = nil) -> Outcome {
        metrics.rejected(code)
        var o = Outcome(status: status, body: Responses.error(code, detail), reason: code)
        if let retryAfter { o.headers[.retryAfter] = String(retryAfter) }
        return o
    }

    private func handle(_ request: Request, client: String) async -> Outcome {
        if !options.siteKeys.isEmpty {
            let given = request.headers[siteKeyHeader] ?? request.uri.queryParameters.get("key")
            guard let given, options.siteKeys.contains(given) else {
                return refuse(.unauthorized, "bad_key", "a site key is required: the X-Strata-Key header or ?key=")
            }
        }
        if let limiter {
            let key = rateKeyHeader.flatMap { request.headers[$0] } ?? client
            if let wait = limiter.take(key) {
                return refuse(.tooManyRequests, "rate_limited", "more than \(limiter.rate) requests/s for this key", retryAfter: wait)
            }
        }
        let encoding = request.headers[.contentEncoding]?.lowercased().trimmingCharacters(in: .whitespaces) ?? "identity"
        guard encoding == "identity" || encoding == "gzip" || encoding == "x-gzip" else {
            return refuse(.unsupportedMediaType, "unsupported_encoding", "Content-Encoding \(encoding) is not supported (gzip or none)")
        }
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > options.maxBodyBytes {
            return refuse(.contentTooLarge, "body_too_large", "the body is \(declared) bytes, the limit is \(options.maxBodyBytes)")
        }

        // Read the body within the size limit and the time limit.
        var body = ByteBuffer()
        let deadline = ContinuousClock.now + options.bodyTimeout
        do {
            for try await chunk in request.body {
                if body.readableBytes + chunk.readableBytes > options.maxBodyBytes {
                    return refuse(.contentTooLarge, "body_too_large", "the body exceeds the limit of \(options.maxBodyBytes) bytes")
                }
                var chunk = chunk
                body.writeBuffer(&chunk)
                if ContinuousClock.now > deadline {
                    return refuse(.requestTimeout, "body_timeout", "the body did not arrive within \(options.bodyTimeout)")
                }
            }
        } catch {
            return refuse(.badRequest, "body_read_failed", "\(error)")
        }
        if encoding != "identity" {
            do {
                body = try body.decompress(with: .gzip(), maxSize: options.maxBodyBytes)
            } catch let e as CompressNIOError where e == .bufferOverflow {
                return refuse(.contentTooLarge, "body_too_large", "the inflated body exceeds the limit of \(options.maxBodyBytes) bytes")
            } catch {
                return refuse(.badRequest, "bad_gzip", "the gzip body could not be inflated: \(error)")
            }
        }

        // Split, validate, enrich.
        let serverTs = Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
        var rejected: [Rejection] = []
        let result: Result<FramedBatch, BodyError> = body.withUnsafeReadableBytes { bytes in
            do throws(BodyError) {
                let items = try BodySplitter.split(bytes, maxItems: options.maxItems)
                return .success(validator.validate(body: bytes, items: items, serverTs: serverTs, clientIP: client, rejected: &rejected))
            } catch {
                return .failure(error)
            }
        }
        let batch: FramedBatch
        switch result {
        case .failure(let e):
            return refuse(e == .tooManyItems(limit: options.maxItems) ? .contentTooLarge : .badRequest, e.reason, e.description)
        case .success(let b):
            batch = b
        }
        for r in rejected { metrics.rejected(r.reason) }
        guard batch.count > 0 else {
            return Outcome(status: .badRequest, body: Responses.batch(accepted: 0, rejected: rejected, durable: nil),
                           rejected: rejected.count, reason: rejected.first?.reason)
        }

        switch await collector.store(batch) {
        case .broker:
            return Outcome(status: .accepted, body: Responses.batch(accepted: batch.count, rejected: rejected, durable: "broker"),
                           accepted: batch.count, rejected: rejected.count, durable: "broker")
        case .spool:
            return Outcome(status: .accepted, body: Responses.batch(accepted: batch.count, rejected: rejected, durable: "spool"),
                           accepted: batch.count, rejected: rejected.count, durable: "spool")
        case .full:
            return refuse(.serviceUnavailable, "spool_full", "the broker is away and the spool is full; retry later",
                          retryAfter: options.retryAfterSeconds)
        case .failed(let m):
            logger.error("the spool cannot write", metadata: ["error": "\(m)"])
            return refuse(.serviceUnavailable, "spool_failed", "the events could not be made durable; retry later",
                          retryAfter: options.retryAfterSeconds)
        }
    }

    private func accessLog(_ o: Outcome, client: String, elapsed: Duration) {
        let code = o.status.code
        let always = code >= 500 || (code >= 400 && code != 429)
        guard always || (options.accessLogSample > 0 && Double.random(in: 0..<1) < options.accessLogSample) else { return }
        var meta: Logger.Metadata = [
            "method": "POST", "path": "/v1/events", "status": "\(code)", "client": "\(client)",
            "accepted": "\(o.accepted)", "rejected": "\(o.rejected)",
            "duration_us": "\(elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000)",
        ]
        if let d = o.durable { meta["durable"] = "\(d)" }
        if let r = o.reason { meta["reason"] = "\(r)" }
        if !always { meta["sampled"] = "\(options.accessLogSample)" }
        logger.log(level: code >= 500 ? .warning : .info, "access", metadata: meta)
    }
}

/// CORS for browser SDKs: every answer names the allowed origin; a preflight (OPTIONS) also lists
/// the method and the headers a page may send.
struct CORSMiddleware<Context: RequestContext>: RouterMiddleware {
    let origins: [String]
    let allowHeaders: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        let origin = request.headers[.origin]
        let allowed: String?
        if origins.contains("*") {
            allowed = "*"
        } else if let origin, origins.contains(origin) {
            allowed = origin
            response.headers[.vary] = "Origin"
        } else {
            allowed = nil
        }
        guard let allowed else { return response }
        response.headers[.accessControlAllowOrigin] = allowed
        if request.method == .options {
            response.headers[.accessControlAllowMethods] = "POST, OPTIONS"
            response.headers[.accessControlAllowHeaders] = allowHeaders
            response.headers[.accessControlMaxAge] = "86400"
        }
        response.headers[.accessControlExposeHeaders] = "Retry-After"
        return response
    }
}
