public import Foundation

/// A query over an async sequence of row batches, as an async sequence of result tables.
///
///     for try await result in QuerySubscription(query: q, rows: batches) { render(result) }
///
/// Each upstream batch is ingested; its emissions are delivered in order. An empty batch is a
/// heartbeat: it only advances the clock (EMIT EVERY, idle partitions). When the upstream ends,
/// the final table of every open window is delivered and the sequence ends. Any failure — a limit,
/// or the upstream throwing — ends the sequence with a `QueryError`; nothing traps.
public struct QuerySubscription<Rows: AsyncSequence>: AsyncSequence where Rows.Element == [[String: Value]] {
    public typealias Element = QueryResult
    public typealias Failure = QueryError

    public let query: Query
    public let limits: QueryLimits
    public let options: QueryOptions
    let rows: Rows
    let clock: @Sendable () -> Int64

    /// `clock` gives epoch milliseconds for EMIT EVERY and idle-partition detection (wall clock by default).
    public init(query: Query, rows: Rows, limits: QueryLimits = .init(), options: QueryOptions = .init(),
                clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }) {
        self.query = query
        self.rows = rows
        self.limits = limits
        self.options = options
        self.clock = clock
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(upstream: rows.makeAsyncIterator(), engine: QueryEngine(query, limits: limits, options: options), clock: clock)
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var upstream: Rows.AsyncIterator
        let engine: QueryEngine
        let clock: @Sendable () -> Int64
        var pending: [QueryResult] = []
        var cursor = 0
        var done = false

        public mutating func next() async throws(QueryError) -> QueryResult? {
            while true {
                if cursor < pending.count {
                    defer { cursor += 1 }
                    return pending[cursor]
                }
                pending = []
                cursor = 0
                if done { return nil }
                let batch: [[String: Value]]?
                do {
                    batch = try await upstream.next()
                } catch let e as QueryError {
                    done = true
                    throw e
                } catch {
                    done = true
                    throw .source(String(describing: error))
                }
                guard let batch else {
                    done = true
                    pending = engine.finish()
                    continue
                }
                do throws(QueryError) {
                    if !batch.isEmpty { pending = try engine.ingest(batch) }
                    pending += engine.tick(nowMs: clock())
                } catch {
                    done = true
                    throw error
                }
            }
        }
    }
}

extension QuerySubscription: Sendable where Rows: Sendable {}
