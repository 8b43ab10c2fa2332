import CoreMetrics
import Foundation
public import StrataCore
import Synchronization

/// What a feed sends its viewers; each transport (SSE, WebSocket) frames it its own way.
public enum FeedMessage: Sendable, Equatable {
    /// A result table as JSON (`ResultJSON.feedEvent`).
    case result(String)
    /// `{"error": …}`: the query failed and the feed no longer changes.
    case error(String)
    /// Keeps idle connections alive, so closed ones are noticed.
    case ping

    /// The Server-Sent Events frame.
    public var sse: String {
        switch self {
        case .result(let json): "event: result\ndata: \(json)\n\n"
        case .error(let json): "event: error\ndata: \(json)\n\n"
        case .ping: ": ping\n\n"
        }
    }
}

/// The fan-out point of one query: its current result and its viewers.
///
/// Publishing never waits for a viewer: each viewer has a bounded buffer; when it is full the
/// oldest message is dropped (and counted), so a slow client only loses its own backlog. A viewer
/// that has lost more than `dropLimit` messages is disconnected: it is not reading.
public final class FeedHub: Sendable {
    public let name: String
    public let bufferCapacity: Int
    public let dropLimit: Int

    struct Viewer {
        var continuation: AsyncStream<FeedMessage>.Continuation
        var dropped = 0
    }
    struct State {
        var current: FeedMessage?
        var currentJSON: String?
        var viewers: [UInt64: Viewer] = [:]
        var nextId: UInt64 = 0
        var dropped = 0
        var disconnected = 0
        var published = 0
        var failure: String?
        /// When the last viewer left (for idle ad-hoc queries).
        var idleSince: ContinuousClock.Instant? = .now
    }
    private let state = Mutex(State())
    private let droppedCounter: Counter
    private let disconnectedCounter: Counter
    private let emissionsCounter: Counter
    private let viewersMeter: Meter

    public init(name: String, bufferCapacity: Int = 64, dropLimit: Int = 1_000, metrics: MetricsRegistry = .shared) {
        self.name = name
        self.bufferCapacity = max(1, bufferCapacity)
        self.dropLimit = max(1, dropLimit)
        droppedCounter = metrics.counter("strata_serve_dropped_messages_total",
                                         help: "Messages dropped from full viewer buffers (drop-oldest).", labels: ["feed": name])
        disconnectedCounter = metrics.counter("strata_serve_slow_viewers_disconnected_total",
                                              help: "Viewers disconnected after losing more messages than the drop limit.", labels: ["feed": name])
        emissionsCounter = metrics.counter("strata_serve_feed_emissions_total",
                                           help: "New current results published by a feed.", labels: ["feed": name])
        viewersMeter = metrics.meter("strata_serve_viewers", help: "Connected viewers (SSE and WebSocket).", labels: ["feed": name])
    }

    /// The current result, if the feed has one yet.
    public var current: FeedMessage? { state.withLock { $0.current } }
    /// The current result table as JSON (see `publishResult(json:)`).
    public var currentJSON: String? { state.withLock { $0.currentJSON } }
    public var viewerCount: Int { state.withLock { $0.viewers.count } }
    /// Messages dropped from full viewer buffers since start.
    public var droppedCount: Int { state.withLock { $0.dropped } }
    /// Viewers disconnected for not reading.
    public var disconnectedCount: Int { state.withLock { $0.disconnected } }
    public var publishedCount: Int { state.withLock { $0.published } }
    /// Set when the feed's query failed (a limit); the feed no longer changes.
    public var failure: String? { state.withLock { $0.failure } }
    /// How long the feed has had no viewer (nil while it has one).
    public var idleFor: Duration? { state.withLock { $0.idleSince.map { .now - $0 } } }

    /// A new viewer: the stream starts with the current result (if any), then each new one.
    /// The viewer is removed when the stream's consumer goes away or `closeAll()` is called.
    public func subscribe() -> AsyncStream<FeedMessage> {
        let (stream, continuation) = AsyncStream.makeStream(of: FeedMessage.self, bufferingPolicy: .bufferingNewest(bufferCapacity))
        let id: UInt64 = state.withLock { s in
            let id = s.nextId
            s.nextId += 1
            s.viewers[id] = Viewer(continuation: continuation)
            s.idleSince = nil
            if let current = s.current { _ = continuation.yield(current) }
            if let failure = s.failure { _ = continuation.yield(.error(ResultJSON.error(failure))) }
            return id
        }
        viewersMeter.increment()
        continuation.onTermination = { [weak self] _ in self?.remove(id) }
        return stream
    }

    private func remove(_ id: UInt64) {
        let removed = state.withLock { s in
            let removed = s.viewers.removeValue(forKey: id) != nil
            if s.viewers.isEmpty && s.idleSince == nil { s.idleSince = .now }
            return removed
        }
        if removed { viewersMeter.decrement() }
    }

    /// Publishes a result table: the new current result, offered to every viewer.
    public func publishResult(json: String) {
        state.withLock { $0.currentJSON = json }
        deliver(.result(json), asCurrent: true)
    }

    /// Offers a message to every viewer without making it current (heartbeats, errors).
    public func broadcast(_ message: FeedMessage) {
        deliver(message, asCurrent: false)
    }

    /// Forgets the current result and failure: the feed's query was replaced.
    public func reset() {
        state.withLock { s in
            s.current = nil
            s.currentJSON = nil
            s.failure = nil
        }
    }

    public func fail(_ message: String) {
        state.withLock { $0.failure = message }
    }

    private func deliver(_ message: FeedMessage, asCurrent: Bool) {
        let (dropped, slow): (Int, [AsyncStream<FeedMessage>.Continuation]) = state.withLock { s in
            if asCurrent { s.current = message; s.published += 1 }
            var dropped = 0
            var slow: [AsyncStream<FeedMessage>.Continuation] = []
            for (id, viewer) in s.viewers {
                guard case .dropped = viewer.continuation.yield(message) else { continue }
                dropped += 1
                s.viewers[id]!.dropped += 1
                if s.viewers[id]!.dropped > dropLimit { slow.append(viewer.continuation) }
            }
            s.dropped += dropped
            s.disconnected += slow.count
            return (dropped, slow)
        }
        if asCurrent { emissionsCounter.increment() }
        if dropped > 0 { droppedCounter.increment(by: dropped) }
        if !slow.isEmpty { disconnectedCounter.increment(by: slow.count) }
        // Outside the lock: finishing runs onTermination, which takes it.
        for continuation in slow { continuation.finish() }
    }

    /// Ends every viewer's stream (shutdown, or the feed was removed).
    public func closeAll() {
        let viewers = state.withLock { s in s.viewers.values.map(\.continuation) }
        for continuation in viewers { continuation.finish() }
    }
}
