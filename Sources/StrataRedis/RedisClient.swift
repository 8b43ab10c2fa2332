import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
internal import CHiredis

/// Counters since the client was created. Read without waiting for a call in progress.
public struct RedisStats: Sendable, Equatable {
    /// Batches written and awaited (one per command or pipeline, including AUTH/SELECT on
    /// connect and retried attempts).
    public var roundTrips: Int
    /// Commands sent, counted the same way.
    public var commands: Int
    /// Connections made after the first one.
    public var reconnects: Int
    /// Failed attempts: each connection-level failure (retried or not) and each error thrown
    /// for an error reply or rejected AUTH.
    public var errors: Int

    public init(roundTrips: Int = 0, commands: Int = 0, reconnects: Int = 0, errors: Int = 0) {
        self.roundTrips = roundTrips
        self.commands = commands
        self.reconnects = reconnects
        self.errors = errors
    }
}

/// A blocking client over one hiredis connection.
///
/// Calls are serialised by a lock and block the calling thread (including reconnect backoff),
/// so call it from a thread you may block, not from a cooperative-pool task that must not wait.
///
/// Retries: when the connection fails (I/O error, EOF, timeout, protocol error, refused
/// connect) the connection is dropped and the *whole call* is retried after a reconnect, with
/// exponential backoff and jitter, up to `config.maxAttempts` attempts. A batch may therefore
/// reach the server more than once. `get`/`mget`/`set`/`del`/`ping` are idempotent;
/// `command` and `pipeline` are retried too, so only pass idempotent commands to them or accept
/// at-least-once execution (use `maxAttempts: 1` for a client that must not retry).
/// Error replies are not retried.
public final class RedisClient: Sendable {
    public let config: RedisConfig

    private struct State {
        var connection: Connection?
        var hasConnected = false
        var closed = false
    }

    private let state: Mutex<State>
    private let roundTrips = Atomic<Int>(0)
    private let commands = Atomic<Int>(0)
    private let reconnects = Atomic<Int>(0)
    private let errors = Atomic<Int>(0)

    /// Connects (with the same retry policy as calls), AUTHs and SELECTs `config.database`.
    public init(config: RedisConfig) throws(RedisError) {
        self.config = config
        self.state = Mutex(State())
        _ = try run { (_: Connection) throws(Failure) in () }
    }

    public var stats: RedisStats {
        RedisStats(
            roundTrips: roundTrips.load(ordering: .relaxed),
            commands: commands.load(ordering: .relaxed),
            reconnects: reconnects.load(ordering: .relaxed),
            errors: errors.load(ordering: .relaxed))
    }

    /// Drops the connection. Later calls throw ``RedisError/connectionFailed(_:)``.
    public func close() {
        state.withLock { s in
            s.connection = nil
            s.closed = true
        }
    }

    // MARK: Typed commands

    public func ping() throws(RedisError) {
        let reply = try single(["PING"])
        guard reply == .status("PONG") else { throw .protocolError("unexpected PING reply \(reply)") }
    }

    public func get(_ key: [UInt8]) throws(RedisError) -> [UInt8]? {
        switch try single([Array("GET".utf8), key]) {
        case .string(let value): return value
        case .null: return nil
        case let other: throw .protocolError("unexpected GET reply \(other)")
        }
    }

    public func get(_ key: String) throws(RedisError) -> [UInt8]? {
        try get(Array(key.utf8))
    }

    /// Values in the order of `keys`, `nil` for missing keys (and for non-string keys, as MGET
    /// does). Sends one MGET per `chunkSize` keys, all in one pipeline.
    public func mget(_ keys: [[UInt8]], chunkSize: Int = 500) throws(RedisError) -> [[UInt8]?] {
        precondition(chunkSize > 0, "chunkSize must be positive")
        if keys.isEmpty { return [] }
        let chunks = stride(from: 0, to: keys.count, by: chunkSize).map { keys[$0..<min($0 + chunkSize, keys.count)] }
        let batch = chunks.map { [Array("MGET".utf8)] + $0 }
        let replies = try pipelineThrowingOnError(batch)
        var values: [[UInt8]?] = []
        values.reserveCapacity(keys.count)
        for (chunk, reply) in zip(chunks, replies) {
            guard case .array(let items) = reply, items.count == chunk.count else {
                throw .protocolError("MGET of \(chunk.count) keys answered \(reply)")
            }
            for item in items {
                switch item {
                case .string(let v): values.append(v)
                case .null: values.append(nil)
                default: throw .protocolError("unexpected MGET element \(item)")
                }
            }
        }
        return values
    }

    /// MGET without copying values: `visit(index, value)` sees each value (nil for a missing key)
    /// as a view valid only during the call. One pipeline of `chunkSize`-key MGETs. After a
    /// transient failure the whole call is retried, so `visit` may see an index again: make it
    /// overwrite by index.
    public func mget(_ keys: [[UInt8]], chunkSize: Int = 500, visit: (Int, UnsafeRawBufferPointer?) -> Void) throws(RedisError) {
        precondition(chunkSize > 0, "chunkSize must be positive")
        if keys.isEmpty { return }
        _ = try run { (conn: Connection) throws(Failure) -> Bool in
            self.countRoundTrip((keys.count + chunkSize - 1) / chunkSize)
            try conn.mget(keys, chunkSize: chunkSize, visit: visit)
            return true
        }
    }

    /// The same for the keys `prefix + id` of `ids`, written to the connection straight from the
    /// ids (no key array per id); `visit` gets the slice's indices.
    public func mget(prefix: [UInt8], ids: ArraySlice<String>, chunkSize: Int = 500,
                     visit: (Int, UnsafeRawBufferPointer?) -> Void) throws(RedisError) {
        precondition(chunkSize > 0, "chunkSize must be positive")
        if ids.isEmpty { return }
        _ = try run { (conn: Connection) throws(Failure) -> Bool in
            self.countRoundTrip((ids.count + chunkSize - 1) / chunkSize)
            try conn.mget(prefix: prefix, ids: ids, chunkSize: chunkSize, visit: visit)
            return true
        }
    }

    public func mget(_ keys: [String], chunkSize: Int = 500) throws(RedisError) -> [[UInt8]?] {
        try mget(keys.map { Array($0.utf8) }, chunkSize: chunkSize)
    }

    /// `SET key value [EX ttlSeconds]` for every entry, in one pipeline; with `onlyIfAbsent`,
    /// `SET … NX`: a key already present keeps its value. Throws ``RedisError/server(_:)`` for the
    /// first error reply (e.g. a TTL ≤ 0), after every reply was read; the other entries are
    /// still written. Retried as a whole on connection failures, which is harmless: a SET again
    /// writes the same value, a SET NX again finds it.
    public func set(_ entries: [(key: [UInt8], value: [UInt8], ttlSeconds: Int?)], onlyIfAbsent: Bool = false) throws(RedisError) {
        if entries.isEmpty { return }
        let error = try run { (conn: Connection) throws(Failure) -> String? in
            self.countRoundTrip(entries.count)
            return try conn.set(entries[...], onlyIfAbsent: onlyIfAbsent)
        }
        if let error { throw RedisError.fromReply(error) }
    }

    public func set(_ key: [UInt8], _ value: [UInt8], ttlSeconds: Int? = nil) throws(RedisError) {
        try set([(key: key, value: value, ttlSeconds: ttlSeconds)])
    }

    public func set(_ key: String, _ value: [UInt8], ttlSeconds: Int? = nil) throws(RedisError) {
        try set([(key: Array(key.utf8), value: value, ttlSeconds: ttlSeconds)])
    }

    /// Deletes `keys` (one DEL per 500 keys, pipelined); returns how many existed.
    public func del(_ keys: [[UInt8]]) throws(RedisError) -> Int {
        if keys.isEmpty { return 0 }
        let batch = stride(from: 0, to: keys.count, by: 500).map {
            [Array("DEL".utf8)] + keys[$0..<min($0 + 500, keys.count)]
        }
        var deleted = 0
        for reply in try pipelineThrowingOnError(batch) {
            guard case .integer(let n) = reply else { throw .protocolError("unexpected DEL reply \(reply)") }
            deleted += Int(n)
        }
        return deleted
    }

    public func del(_ keys: [String]) throws(RedisError) -> Int {
        try del(keys.map { Array($0.utf8) })
    }

    // MARK: Generic commands

    /// Sends any command (binary safe). An error reply is returned as ``RedisReply/error(_:)``.
    /// Retried on connection failures: see the type's documentation.
    public func command(_ args: [[UInt8]]) throws(RedisError) -> RedisReply {
        try pipeline([args])[0]
    }

    public func command(_ args: [String]) throws(RedisError) -> RedisReply {
        try command(args.map { Array($0.utf8) })
    }

    /// Sends all commands in one round trip; one reply per command, error replies included as
    /// ``RedisReply/error(_:)``. Retried as a whole on connection failures: see the type's
    /// documentation.
    public func pipeline(_ commands: [[[UInt8]]]) throws(RedisError) -> [RedisReply] {
        if commands.isEmpty { return [] }
        for args in commands where args.isEmpty || args.count > Int(Int32.max) {
            throw .protocolError("a command needs 1...\(Int32.max) arguments, got \(args.count)")
        }
        return try run { (conn: Connection) throws(Failure) -> [RedisReply] in
            self.countRoundTrip(commands.count)
            return try conn.roundTrip(commands)
        }
    }

    // MARK: Internals

    private func single(_ args: [[UInt8]]) throws(RedisError) -> RedisReply {
        try pipelineThrowingOnError([args])[0]
    }

    private func single(_ args: [String]) throws(RedisError) -> RedisReply {
        try single(args.map { Array($0.utf8) })
    }

    /// Like `pipeline`, but the first error reply is thrown (after all replies were read, so the
    /// connection stays usable).
    private func pipelineThrowingOnError(_ commands: [[[UInt8]]]) throws(RedisError) -> [RedisReply] {
        return try run { (conn: Connection) throws(Failure) -> [RedisReply] in
            self.countRoundTrip(commands.count)
            let replies = try conn.roundTrip(commands)
            for case .error(let message) in replies { throw .fatal(.fromReply(message)) }
            return replies
        }
    }

    private func countRoundTrip(_ commandCount: Int) {
        roundTrips.add(1, ordering: .relaxed)
        commands.add(commandCount, ordering: .relaxed)
    }

    /// Runs `body` on a live connection under the lock, reconnecting and retrying on transient
    /// failures as documented on the type.
    private func run<T: Sendable>(_ body: (Connection) throws(Failure) -> T) throws(RedisError) -> T {
        try state.withLock { (s: inout State) throws(RedisError) -> T in
            if s.closed { throw .connectionFailed("client is closed") }
            let attempts = max(1, config.maxAttempts)
            var attempt = 1
            while true {
                do throws(Failure) {
                    let conn: Connection
                    if let existing = s.connection {
                        conn = existing
                    } else {
                        conn = try Connection.open(config) { self.countRoundTrip($0) }
                        if s.hasConnected { reconnects.add(1, ordering: .relaxed) }
                        s.hasConnected = true
                        s.connection = conn
                    }
                    return try body(conn)
                } catch {
                    errors.add(1, ordering: .relaxed)
                    switch error {
                    case .fatal(let e):
                        throw e
                    case .transient(let e):
                        s.connection = nil // frees the hiredis context; its reply stream is unusable
                        if attempt >= attempts { throw e }
                        sleep(backoff(afterFailure: attempt))
                        attempt += 1
                    }
                }
            }
        }
    }

    /// Exponential backoff with "equal jitter": half the step is fixed, half random, so
    /// clients that failed together do not reconnect in lockstep.
    private func backoff(afterFailure n: Int) -> Duration {
        let initial = seconds(config.reconnectBackoffInitial)
        let cap = max(initial, seconds(config.reconnectBackoffMax))
        let step = min(cap, initial * pow(2, Double(min(n - 1, 62))))
        return .nanoseconds(Int64((step / 2 + Double.random(in: 0...(step / 2))) * 1e9))
    }

    private func seconds(_ d: Duration) -> Double {
        let (s, atto) = d.components
        return max(0, Double(s) + Double(atto) / 1e18)
    }

    private func sleep(_ d: Duration) {
        var ts = timespec(tv_sec: .init(d.components.seconds), tv_nsec: .init(d.components.attoseconds / 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&ts, &remaining) == -1 && errno == EINTR { ts = remaining }
    }
}
