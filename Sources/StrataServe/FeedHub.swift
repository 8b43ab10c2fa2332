import CoreMetrics
import Foundation
public import StrataCore
import Synchronization

/// The fan-out point of one feed: its current result (an encoded SSE payload) and its viewers.
///
/// Publishing never waits for a viewer: each viewer has a bounded buffer; when it is full the
/// oldest message is dropped (and counted), so a slow client only loses its own backlog.
public final class FeedHub: Sendable {
    public let name: String
    public let bufferCapacity: Int

    struct State {
        var current: String?
        var currentJSON: String?
        var viewers: [UInt64: AsyncStream<String>.Continuation] = [:]
        var nextId: UInt64 = 0
        var dropped = 0
        var published = 0
        var failure: String?
    }
    private let state = Mutex(State())
    private let droppedCounter: Counter
    private let emissionsCounter: Counter
    private let viewersMeter: Meter

    public init(name: String, bufferCapacity: Int = 64, metrics: MetricsRegistry = .shared) {
        self.name = name
        self.bufferCapacity = max(1, bufferCapacity)
        droppedCounter = metrics.counter("strata_serve_dropped_messages_total",
                                         help: "Messages dropped from full viewer buffers (drop-oldest).", labels: ["feed": name])
        emissionsCounter = metrics.counter("strata_serve_feed_emissions_total",
                                           help: "New current results published by a feed.", labels: ["feed": name])
        viewersMeter = metrics.meter("strata_serve_viewers", help: "Connected SSE viewers.", labels: ["feed": name])
    }

    /// The current result as an SSE message, if the feed has one yet.
    public var current: String? { state.withLock { $0.current } }
    /// The current result table as JSON (see `publishResult(json:)`).
    public var currentJSON: String? { state.withLock { $0.currentJSON } }
    public var viewerCount: Int { state.withLock { $0.viewers.count } }
    /// Messages dropped from full viewer buffers since start.
    public var droppedCount: Int { state.withLock { $0.dropped } }
    public var publishedCount: Int { state.withLock { $0.published } }
    /// Set when the feed's query failed (a limit); the feed no longer changes.
    public var failure: String? { state.withLock { $0.failure } }

    /// A new viewer: the stream starts with the current result (if any), then each new one.
    /// The viewer is removed when the stream's consumer goes away or `closeAll()` is called.
    public func subscribe() -> AsyncStream<String> {
        let (stream, continuation) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(bufferCapacity))
        let id: UInt64 = state.withLock { s in
            let id = s.nextId
            s.nextId += 1
            s.viewers[id] = continuation
            if let current = s.current { _ = continuation.yield(current) }
            return id
        }
        viewersMeter.increment()
        continuation.onTermination = { [weak self] _ in self?.remove(id) }
        return stream
    }

    private func remove(_ id: UInt64) {
        let removed = state.withLock { $0.viewers.removeValue(forKey: id) != nil }
        if removed { viewersMeter.decrement() }
    }

    /// Makes `payload` the current result and offers it to every viewer.
    public func publish(_ payload: String) {
        deliver(payload, asCurrent: true)
    }

    /// Publishes a result table: `event: result` with the JSON as its data.
    public func publishResult(json: String) {
        state.withLock { $0.currentJSON = json }
        publish("event: result\ndata: \(json)\n\n")
    }

    /// Offers a message to every viewer without making it current (heartbeats, errors).
    public func broadcast(_ message: String) {
        deliver(message, asCurrent: false)
    }

    public func fail(_ message: String) {
        state.withLock { $0.failure = message }
    }

    private func deliver(_ payload: String, asCurrent: Bool) {
        let dropped: Int = state.withLock { s in
            if asCurrent { s.current = payload; s.published += 1 }
            var dropped = 0
            for continuation in s.viewers.values {
                if case .dropped = continuation.yield(payload) { dropped += 1 }
            }
            s.dropped += dropped
            return dropped
        }
        if asCurrent { emissionsCounter.increment() }
        if dropped > 0 { droppedCounter.increment(by: dropped) }
    }

    /// Ends every viewer's stream (shutdown).
    public func closeAll() {
        let viewers = state.withLock { s in
            let v = Array(s.viewers.values)
            return v
        }
        for continuation in viewers { continuation.finish() }
    }
}
