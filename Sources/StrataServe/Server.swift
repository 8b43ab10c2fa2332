import Foundation
import Hummingbird
import HummingbirdWebSocket
import ServiceLifecycle
import UnixSignals
public import Logging
import StrataCore
public import StrataKafka
public import StrataQuery
import Synchronization

/// What `strata serve` runs with.
public struct ServeOptions: Sendable {
    public var host: String = "127.0.0.1"
    public var port: Int = 8080
    /// Required on every endpoint but /healthz and /readyz when set; set it whenever the server
    /// listens on a non-loopback address (`ServeOptions.validate()` checks).
    public var token: String?
    /// Prepended to each query's FROM topic.
    public var topicPrefix: String = ""
    /// The sources queries may name, with their schemas (built from the topology without the
    /// prefix); nil: FROM is a topic name and columns are not checked.
    public var catalog: Catalog?
    /// Feeds read their topics from the beginning (else from the end).
    public var fromBeginning = true
    /// Feeds skip rows whose `minute` is older than this (default: the trend's 60 minutes + 10).
    public var historyMs: Int64? = 70 * 60_000
    public var limits = QueryLimits()
    public var queryOptions = QueryOptions()
    /// Messages a viewer may have waiting before the oldest are dropped.
    public var viewerBuffer = 64
    /// Messages a viewer may lose that way before it is disconnected.
    public var viewerDropLimit = 1_000
    /// An ad-hoc live query (WebSocket) nobody has watched for this long is stopped.
    public var adHocIdleMs = 30_000
    /// The directory the named feeds were loaded from; checked for changed files this often
    /// (0: never) and reloaded.
    public var feedDirectory: String?
    public var reloadIntervalMs = 2_000
    /// Comment line sent to every viewer this often, so closed connections are noticed.
    public var heartbeatMs = 15_000
    /// Default and maximum time bound of a one-shot query.
    public var oneShotTimeoutMs = 5_000
    public var oneShotMaxTimeoutMs = 60_000
    /// One-shot queries running at once; more are answered 429.
    public var oneShotConcurrency = 4

    public init() {}

    /// True for 127.0.0.0/8, ::1 and localhost.
    public static func isLoopback(_ host: String) -> Bool {
        let h = host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        if h == "localhost" || h == "::1" { return true }
        let parts = h.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }

    public struct Invalid: Error, CustomStringConvertible { public let description: String }

    /// A non-loopback address needs a token.
    public func validate() throws {
        if !Self.isLoopback(host) && (token ?? "").isEmpty {
            throw Invalid(description: "listening on \(host) (not a loopback address) requires an API token: --token or STRATA_SERVE_TOKEN")
        }
    }
}

/// The HTTP server: the dashboard page, the feeds (SSE and WebSocket), one-shot queries, the
/// jobs' lag, probes and metrics.
public final class StrataServer: Sendable {
    public let options: ServeOptions
    let registry: QueryRegistry
    let lag: JobLagMonitor
    let consumerConfig: KafkaConfig
    let logger: Logger
    private let oneShotsRunning = Atomic<Int>(0)
    private let started = Atomic<Bool>(false)
    private let serviceGroup = Mutex<ServiceGroup?>(nil)
    /// The last failed reload of the feed directory (the old feeds keep running).
    private let reloadError = Mutex<String?>(nil)

    public init(options: ServeOptions, feeds: [FeedDefinition], consumerConfig: KafkaConfig,
                lagWatches: [LagWatch] = [], logger: Logger = Logger(label: "strata.serve")) {
        self.options = options
        self.consumerConfig = consumerConfig
        self.logger = logger
        registry = QueryRegistry(feeds: feeds, options: options, consumerConfig: consumerConfig, logger: logger)
        lag = JobLagMonitor(watches: lagWatches, consumerConfig: consumerConfig, logger: logger)
    }

    /// The named feeds, by name.
    public var feeds: [FeedDefinition] { registry.named.map(\.definition) }
    public func hub(_ name: String) -> FeedHub? { registry.hub(named: name) }

    /// Ready once every consumer of a named feed has read each partition to its end once (an
    /// ad-hoc query over a topic that does not exist does not make the server unready).
    public var isReady: Bool { registry.namedSources.allSatisfy(\.caughtUp) }

    /// Starts the shared consumers and the lag monitor (once).
    public func startFeeds() {
        guard !started.exchange(true, ordering: .relaxed) else { return }
        registry.start()
        lag.start()
    }

    /// Stops the consumers and ends every viewer's stream.
    public func stopFeeds() {
        registry.stop()
        lag.stop()
    }

    /// Reads the feed directory again and replaces the feeds that changed. A directory that no
    /// longer loads leaves the running feeds as they are (the error is logged and shown on
    /// /api/status).
    public func reloadFeeds() {
        guard let directory = options.feedDirectory else { return }
        do {
            registry.replaceNamed(try FeedDefinition.load(directory: directory, topicPrefix: options.topicPrefix, catalog: options.catalog))
            reloadError.withLock { $0 = nil }
        } catch {
            let message = String(describing: error)
            let changed = reloadError.withLock { old in
                defer { old = message }
                return old != message
            }
            if changed { logger.error("feed directory not reloaded; the running feeds stay", metadata: ["error": "\(message)"]) }
        }
    }

    /// Serves until `shutdown()`, cancellation or (with `handleSignals`) SIGTERM/SIGINT;
    /// `onRunning` gets the bound port.
    ///
    /// Two services in one ServiceGroup: the HTTP server and the feeds. On shutdown the feeds go
    /// first: every viewer's stream ends, so the open SSE responses finish and the HTTP server's
    /// graceful shutdown does not wait on them forever.
    public func run(handleSignals: Bool = true,
                    onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        try options.validate()
        let router = buildRouter()
        var webSocket = WebSocketServerConfiguration()
        webSocket.maxFrameSize = 1 << 20
        webSocket.autoPing = .enabled(timePeriod: .milliseconds(Int64(options.heartbeatMs)))
        let app = Application(
            router: router,
            server: .http1WebSocketUpgrade(webSocketRouter: router, configuration: .init(ws: webSocket)),
            configuration: .init(address: .hostname(options.host, port: options.port), serverName: "strata"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
        // Services shut down in reverse order: the feeds before the server.
        let group = ServiceGroup(configuration: .init(
            services: [app, FeedsService(server: self)],
            gracefulShutdownSignals: handleSignals ? [.sigterm, .sigint] : [],
            logger: logger))
        serviceGroup.withLock { $0 = group }
        defer { serviceGroup.withLock { $0 = nil } }
        try await group.run()
    }

    /// Shuts the server down gracefully, as SIGTERM does.
    public func shutdown() async {
        await serviceGroup.withLock { $0 }?.triggerGracefulShutdown()
    }

    /// The feeds as a service: started with the server, stopped first on shutdown; between, the
    /// housekeeping (heartbeats, idle ad-hoc queries, feed files changed).
    struct FeedsService: Service {
        let server: StrataServer

        func run() async throws {
            server.startFeeds()
            defer { server.stopFeeds() }
            await cancelWhenGracefulShutdown {
                await server.housekeeping()
            }
        }
    }

    func housekeeping() async {
        var fingerprint = options.feedDirectory.flatMap(FeedDefinition.fingerprint)
        var sincePing = 0, sinceSweep = 0, sinceReload = 0
        let step = 500
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(step))
            sincePing += step; sinceSweep += step; sinceReload += step
            if sincePing >= options.heartbeatMs {
                sincePing = 0
                for hub in registry.hubs { hub.broadcast(.ping) }
            }
            if sinceSweep >= 5_000 {
                sinceSweep = 0
                registry.sweep(idle: .milliseconds(options.adHocIdleMs))
            }
            if options.reloadIntervalMs > 0, let directory = options.feedDirectory, sinceReload >= options.reloadIntervalMs {
                sinceReload = 0
                let now = FeedDefinition.fingerprint(directory: directory)
                if now != fingerprint {
                    fingerprint = now
                    reloadFeeds()
                }
            }
        }
    }

    func buildRouter() -> Router<BasicWebSocketRequestContext> {
        let router = Router(context: BasicWebSocketRequestContext.self)
        router.add(middleware: TokenMiddleware(token: options.token))
        router.get("/healthz") { _, _ in StrataServer.json("{\"status\":\"ok\"}") }
        router.get("/readyz") { [self] _, _ in
            StrataServer.json(statusJSON(), status: isReady ? .ok : .serviceUnavailable)
        }
        router.get("/api/status") { [self] _, _ in StrataServer.json(statusJSON()) }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: MetricsRegistry.shared.render())))
        }
        router.get("/openapi.yaml") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/yaml; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: OpenAPIDocument.yaml)))
        }
        router.get("/") { [self] _, _ in
            // The feeds' current results go into the page, so it shows data before the streams connect.
            var initial = "{"
            for (i, entry) in registry.named.enumerated() {
                if i > 0 { initial += "," }
                JSONString.append(entry.definition.name, to: &initial)
                initial += ":" + (entry.hub.currentJSON ?? "null")
            }
            initial += "}"
            return Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-cache"],
                            body: .init(byteBuffer: ByteBuffer(string: DashboardPage.render(initial: initial))))
        }
        router.get("/api/feeds") { [self] _, _ in
            var s = "["
            for (i, entry) in registry.named.enumerated() {
                let (feed, hub) = (entry.definition, entry.hub)
                if i > 0 { s += "," }
                s += "{\"name\":"
                JSONString.append(feed.name, to: &s)
                s += ",\"topic\":"
                JSONString.append(feed.topic, to: &s)
                s += ",\"sql\":"
                JSONString.append(feed.query.text, to: &s)
                s += ",\"canonical\":"
                JSONString.append(feed.query.canonical, to: &s)
                s += ",\"columns\":"
                ResultJSON.appendColumns(feed.query.columns, to: &s)
                s += ",\"url\":"
                JSONString.append("/api/feeds/\(feed.name)", to: &s)
                s += ",\"viewers\":\(hub.viewerCount),\"emissions\":\(hub.publishedCount),\"dropped\":\(hub.droppedCount)"
                s += ",\"disconnected\":\(hub.disconnectedCount),\"failure\":"
                if let f = hub.failure { JSONString.append(f, to: &s) } else { s += "null" }
                s += "}"
            }
            return StrataServer.json(s + "]")
        }
        router.get("/api/feeds/:name") { [self] _, context in
            let name = try context.parameters.require("name")
            guard let hub = registry.hub(named: name) else {
                return StrataServer.json(ResultJSON.error("no feed named \(name); GET /api/feeds lists them"), status: .notFound)
            }
            let stream = hub.subscribe()
            return Response(status: .ok,
                            headers: [.contentType: "text/event-stream", .cacheControl: "no-cache", .connection: "keep-alive"],
                            body: ResponseBody { writer in
                                try await writer.write(ByteBuffer(string: "retry: 2000\n\n"))
                                for await message in stream {
                                    try await writer.write(ByteBuffer(string: message.sse))
                                }
                                try await writer.finish(nil)
                            })
        }
        router.ws("/ws") { [self] inbound, outbound, _ in
            try await WebSocketFeeds.handle(inbound: inbound, outbound: outbound, registry: registry, options: options, logger: logger)
        }
        router.post("/api/query") { [self] request, _ in
            let body: ByteBuffer
            do { body = try await request.body.collect(upTo: 256 * 1024) } catch {
                return StrataServer.json(ResultJSON.error("the request body is larger than 256 KiB"), status: .contentTooLarge)
            }
            guard let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any],
                  let sql = object["sql"] as? String else {
                return StrataServer.json(ResultJSON.error("expected a JSON body {\"sql\": \"SELECT …\"} (optional \"timeout_ms\")"), status: .badRequest)
            }
            var timeoutMs = options.oneShotTimeoutMs
            if let t = object["timeout_ms"] as? NSNumber { timeoutMs = max(1, min(options.oneShotMaxTimeoutMs, t.intValue)) }
            guard oneShotsRunning.add(1, ordering: .relaxed).newValue <= options.oneShotConcurrency else {
                oneShotsRunning.subtract(1, ordering: .relaxed)
                return StrataServer.json(ResultJSON.error("too many one-shot queries running; try again"), status: .tooManyRequests)
            }
            defer { oneShotsRunning.subtract(1, ordering: .relaxed) }
            let bound = timeoutMs
            let answer = await StrataServer.onThread { [options, consumerConfig] in
                OneShot.run(sql: sql, timeoutMs: bound, options: options, consumerConfig: consumerConfig)
            }
            return StrataServer.json(answer.body, status: HTTPResponse.Status(code: answer.status))
        }
        return router
    }

    /// `{"ready", "now", "topics":[…], "jobs":[…], "ad_hoc_queries", "reload_error"}`: the feed
    /// consumers and the watched jobs' lag.
    func statusJSON() -> String {
        var s = "{\"ready\":\(isReady),\"now\":\(TopicSource.nowMs()),\"topics\":["
        for (i, source) in registry.sources.enumerated() {
            let status = source.snapshot
            if i > 0 { s += "," }
            s += "{\"topic\":"
            JSONString.append(source.topic, to: &s)
            s += ",\"caught_up\":\(status.caughtUp),\"partitions\":\(status.partitions),\"rows\":\(status.rowsIn),\"queries\":\(status.queries)"
            s += ",\"newest_minute\":" + (status.newestMinute.map { String($0) } ?? "null")
            s += ",\"error\":"
            if let e = status.lastError { JSONString.append(e, to: &s) } else { s += "null" }
            s += "}"
        }
        s += "],\"jobs\":["
        for (i, reading) in lag.current.enumerated() {
            if i > 0 { s += "," }
            s += "{\"job\":"
            JSONString.append(reading.job, to: &s)
            s += ",\"group\":"
            JSONString.append(reading.groupId, to: &s)
            s += ",\"lag\":" + (reading.lag.map { String($0) } ?? "null")
            s += ",\"measured_at\":\(reading.measuredAtMs),\"error\":"
            if let e = reading.error { JSONString.append(e, to: &s) } else { s += "null" }
            s += "}"
        }
        s += "],\"ad_hoc_queries\":\(registry.adHocCount),\"reload_error\":"
        if let e = reloadError.withLock({ $0 }) { JSONString.append(e, to: &s) } else { s += "null" }
        return s + "}"
    }

    /// Runs blocking work (librdkafka) on its own thread instead of the server's.
    static func onThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: work()) }
            thread.start()
        }
    }

    static func json(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json; charset=utf-8"],
                 body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

/// `Authorization: Bearer <token>` or `?token=<token>` (EventSource cannot set headers) on every
/// endpoint but the probes. The token is compared in constant time and never logged.
struct TokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token, !token.isEmpty else { return try await next(request, context) }
        let path = request.uri.path
        if path == "/healthz" || path == "/readyz" { return try await next(request, context) }
        var given: String?
        if let header = request.headers[.authorization], header.hasPrefix("Bearer ") {
            given = String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        } else if let q = request.uri.queryParameters.get("token") {
            given = q
        }
        guard let given, Self.equal(given, token) else {
            return Response(status: .unauthorized,
                            headers: [.contentType: "application/json; charset=utf-8", .wwwAuthenticate: "Bearer"],
                            body: .init(byteBuffer: ByteBuffer(string: ResultJSON.error("missing or wrong API token"))))
        }
        return try await next(request, context)
    }

    static func equal(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var diff = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) {
            diff |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
        }
        return diff == 0
    }
}
