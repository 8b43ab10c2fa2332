import Foundation
import Synchronization
import StrataTestSupport
import XCTest
@testable import StrataRedis

/// Every test runs against its own real redis-server child process.
final class RedisClientTests: XCTestCase {
    private var servers: [RedisServerProcess] = []

    override func tearDown() {
        for server in servers { server.stop() }
        servers = []
        super.tearDown()
    }

    private func startServer(password: String? = nil) throws -> RedisServerProcess {
        let server = try RedisServerProcess(password: password)
        servers.append(server)
        return server
    }

    private func client(_ server: RedisServerProcess, _ configure: (inout RedisConfig) -> Void = { _ in }) throws(RedisError) -> RedisClient {
        var config = RedisConfig(port: server.port, password: server.password,
                                 reconnectBackoffInitial: .milliseconds(10), reconnectBackoffMax: .milliseconds(100))
        configure(&config)
        return try RedisClient(config: config)
    }

    /// Runs `body`, which must throw; returns the error (nil and a test failure otherwise).
    private func thrownError<T>(_ body: () throws(RedisError) -> T, file: StaticString = #filePath, line: UInt = #line) -> RedisError? {
        do {
            let value = try body()
            XCTFail("expected an error, got \(value)", file: file, line: line)
            return nil
        } catch {
            return error
        }
    }

    private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    // MARK: Round trips

    func testSetWithTTLGetAndDel() throws {
        let c = try client(try startServer())
        try c.set([(key: bytes("a"), value: bytes("1"), ttlSeconds: 100),
                   (key: bytes("b"), value: bytes("2"), ttlSeconds: nil)])
        XCTAssertEqual(try c.get("a"), bytes("1"))
        XCTAssertEqual(try c.get("b"), bytes("2"))
        XCTAssertNil(try c.get("missing"))

        guard case .integer(let ttl) = try c.command(["TTL", "a"]) else { return XCTFail("TTL not an integer") }
        XCTAssertTrue((95...100).contains(ttl), "ttl \(ttl)")
        XCTAssertEqual(try c.command(["TTL", "b"]), .integer(-1)) // no EX -> no expiry

        XCTAssertEqual(try c.del(["a", "b", "missing"]), 2)
        XCTAssertNil(try c.get("a"))
        try c.ping()

        // NX: a present key keeps its value and TTL; absent ones are written. Binary and empty
        // values, long keys and a negative TTL's digits go through the RESP the client writes.
        let long = String(repeating: "k", count: 3_000), binary: [UInt8] = [0, 13, 10, 36, 42, 255]
        try c.set([(key: bytes("kept"), value: bytes("first"), ttlSeconds: nil)])
        try c.set([(key: bytes("kept"), value: bytes("second"), ttlSeconds: 50),
                   (key: bytes(long), value: binary, ttlSeconds: 70),
                   (key: bytes("empty"), value: [], ttlSeconds: nil)], onlyIfAbsent: true)
        XCTAssertEqual(try c.get("kept"), bytes("first"))
        XCTAssertEqual(try c.command(["TTL", "kept"]), .integer(-1))
        XCTAssertEqual(try c.get(long), binary)
        guard case .integer(let longTTL) = try c.command(["TTL", long]) else { return XCTFail("TTL not an integer") }
        XCTAssertTrue((65...70).contains(longTTL), "ttl \(longTTL)")
        XCTAssertEqual(try c.get("empty"), [])
        guard case .server(let negative) = thrownError({ () throws(RedisError) in
            try c.set([(key: bytes("negative"), value: bytes("1"), ttlSeconds: -5)], onlyIfAbsent: true)
        }) else { return XCTFail("SET EX -5 must throw .server") }
        XCTAssertTrue(negative.contains("invalid expire"), negative)
        XCTAssertNil(try c.get("negative"))
        try c.ping()
    }

    func testMGetOverManyKeysKeepsOrderAndNilsInOneRoundTrip() throws {
        let c = try client(try startServer())
        let keys = (0..<2500).map { "dim:content:\($0)" }
        // Every 7th key is left unset so the nils land in every chunk at varying offsets.
        let present = keys.indices.filter { $0 % 7 != 0 }
        try c.set(present.map { (key: bytes(keys[$0]), value: bytes("v\($0)"), ttlSeconds: 600) })

        let before = c.stats
        let values = try c.mget(keys, chunkSize: 500)
        let after = c.stats

        XCTAssertEqual(values.count, keys.count)
        for (i, value) in values.enumerated() {
            XCTAssertEqual(value, i % 7 == 0 ? nil : bytes("v\(i)"), "key \(i)")
        }
        XCTAssertEqual(after.roundTrips - before.roundTrips, 1, "all chunks share one round trip")
        XCTAssertEqual(after.commands - before.commands, 5, "2 500 keys / 500 per MGET")
        XCTAssertEqual(try c.mget([String]()), [])

        // The zero-copy form sees the same values, by index, in one round trip.
        var seen = [[UInt8]?](repeating: [0xEE], count: keys.count)
        let beforeVisit = c.stats
        try c.mget(keys.map(bytes), chunkSize: 500) { i, v in seen[i] = v.map { Array($0) } }
        XCTAssertEqual(seen, values)
        XCTAssertEqual(c.stats.roundTrips - beforeVisit.roundTrips, 1)

        // The prefix form (keys written from the ids): same values, by the slice's indices.
        let ids = keys.map { String($0.dropFirst("dim:".count)) }
        var byPrefix = [[UInt8]?](repeating: [0xEE], count: keys.count)
        let beforePrefix = c.stats
        try c.mget(prefix: bytes("dim:"), ids: ids[100..<2_300], chunkSize: 300) { i, v in byPrefix[i] = v.map { Array($0) } }
        XCTAssertEqual(Array(byPrefix[100..<2_300]), Array(values[100..<2_300]))
        XCTAssertEqual(byPrefix[99], [0xEE], "indices outside the slice are not visited")
        XCTAssertEqual(c.stats.roundTrips - beforePrefix.roundTrips, 1)
        XCTAssertEqual(try c.get("dim:content:1"), bytes("v1"), "the connection is usable after the custom reader")
        XCTAssertEqual(try c.del(keys), present.count) // > 500 keys: chunked DEL, summed
    }

    func testBinarySafeKeysAndValues() throws {
        let c = try client(try startServer())
        let key: [UInt8] = [0x6b, 0x00, 0x0d, 0x0a, 0xff]
        let value = (0...255).map(UInt8.init) + [0, 0]
        try c.set(key, value)
        try c.set(bytes("empty"), [])

        XCTAssertEqual(try c.get(key), value)
        XCTAssertEqual(try c.get("empty"), [])
        XCTAssertEqual(try c.mget([key, [0x6b], bytes("empty")]), [value, nil, []])
        var seen: [[UInt8]?] = [[1], [1], [1]]
        try c.mget([key, [0x6b], bytes("empty")]) { i, v in seen[i] = v.map { Array($0) } }
        XCTAssertEqual(seen, [value, nil, []], "an empty value is not a missing key")
        XCTAssertEqual(try c.command([bytes("STRLEN"), key]), .integer(258))
        XCTAssertNil(try c.get([0x6b]), "the key must not be truncated at its zero byte")
    }

    func testSelectedDatabaseIsolatesKeys() throws {
        let server = try startServer()
        let db3 = try client(server) { $0.database = 3 }
        let db0 = try client(server)
        try db3.set("k", bytes("in-3"))
        XCTAssertNil(try db0.get("k"))
        XCTAssertEqual(try db3.get("k"), bytes("in-3"))
    }

    // MARK: Authentication

    func testAuthentication() throws {
        let server = try startServer(password: "s3cret")

        let ok = try client(server)
        try ok.ping()
        try ok.set("k", bytes("v"))
        XCTAssertEqual(try ok.get("k"), bytes("v"))

        let withUser = try client(server) { $0.username = "default" } // AUTH default s3cret
        XCTAssertEqual(try withUser.get("k"), bytes("v"))

        let wrong = thrownError { () throws(RedisError) in try self.client(server) { $0.password = "nope" } }
        guard case .authenticationFailed(let message) = wrong else { return XCTFail("got \(String(describing: wrong))") }
        XCTAssertTrue(message.contains("WRONGPASS"), message)

        let anonymous = try client(server) { $0.password = nil } // connects; the first command is refused
        guard case .authenticationFailed = thrownError({ () throws(RedisError) in try anonymous.get("k") }) else {
            return XCTFail("NOAUTH must map to .authenticationFailed")
        }
    }

    // MARK: Error replies

    func testPipelineReturnsErrorRepliesAsValues() throws {
        let c = try client(try startServer())
        let replies = try c.pipeline([
            [bytes("SET"), bytes("s"), bytes("text")],
            [bytes("INCR"), bytes("s")],
            [bytes("RPUSH"), bytes("l"), bytes("x"), bytes("y")],
            [bytes("LRANGE"), bytes("l"), bytes("0"), bytes("-1")],
            [bytes("GET"), bytes("nothing")],
            [bytes("NOSUCHCOMMAND")],
            [bytes("GET"), bytes("s")],
        ])
        XCTAssertEqual(replies.count, 7)
        XCTAssertEqual(replies[0], .status("OK"))
        guard case .error(let incr) = replies[1] else { return XCTFail("INCR: \(replies[1])") }
        XCTAssertTrue(incr.hasPrefix("ERR"), incr)
        XCTAssertEqual(replies[2], .integer(2))
        XCTAssertEqual(replies[3], .array([.string(bytes("x")), .string(bytes("y"))]))
        XCTAssertEqual(replies[4], .null)
        guard case .error = replies[5] else { return XCTFail("unknown command: \(replies[5])") }
        XCTAssertEqual(replies[6], .string(bytes("text")), "replies after an error stay in step")
    }

    func testTypedCommandsThrowServerErrorsAndStayUsable() throws {
        let c = try client(try startServer())
        _ = try c.command(["RPUSH", "list", "x"])

        guard case .server(let wrongType) = thrownError({ () throws(RedisError) in try c.get("list") }) else {
            return XCTFail("GET on a list must throw .server")
        }
        XCTAssertTrue(wrongType.hasPrefix("WRONGTYPE"), wrongType)

        // A bad TTL fails its entry; the other entry in the pipeline is still written.
        guard case .server(let ttl) = thrownError({ () throws(RedisError) in
            try c.set([(key: bytes("bad"), value: bytes("1"), ttlSeconds: 0),
                       (key: bytes("good"), value: bytes("2"), ttlSeconds: 60)])
        }) else { return XCTFail("SET EX 0 must throw .server") }
        XCTAssertTrue(ttl.contains("invalid expire"), ttl)
        XCTAssertEqual(try c.get("good"), bytes("2"))
        XCTAssertEqual(c.stats.reconnects, 0, "error replies must not drop the connection")
    }

    // MARK: Timeouts and faults

    func testCommandTimeoutThrowsTimeoutAndClientRecovers() throws {
        let server = try startServer()
        let c = try client(server) { $0.commandTimeout = .milliseconds(200); $0.maxAttempts = 2 }
        try c.set("k", bytes("v"))
        let admin = try client(server)
        // The server stops answering for 3 s: far longer than both attempts, so a client that
        // waited for the pause to end would get "v" back instead of a timeout.
        _ = try admin.command(["CLIENT", "PAUSE", "3000"])

        let before = c.stats
        let error = thrownError { () throws(RedisError) in try c.get("k") }
        guard case .timeout = error else { return XCTFail("expected .timeout, got \(String(describing: error))") }
        XCTAssertEqual(c.stats.errors - before.errors, 2, "two attempts, each timed out")
        XCTAssertEqual(c.stats.commands - before.commands, 2, "the GET was sent once per attempt")
        XCTAssertEqual(c.stats.reconnects - before.reconnects, 1, "the second attempt used a fresh connection")

        // Once the pause ends, the same client reconnects on its own.
        var value: [UInt8]?
        let deadline = ContinuousClock.now + .seconds(15)
        while value == nil && ContinuousClock.now < deadline {
            value = try? c.get("k")
        }
        XCTAssertEqual(value, bytes("v"), "the client did not read k back within 15 s of the pause")
        XCTAssertGreaterThan(c.stats.reconnects, before.reconnects + 1)
    }

    /// A server that answers an MGET with the start of its reply and hangs up: the read is cut
    /// short inside the reader's reply functions, the call fails, and dropping the connection
    /// must not hand the unfinished reply to hiredis's own free (it is not a hiredis object).
    func testMGetReplyCutShortFailsAndFreesNothingForeign() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, len) == 0 && getsockname(listener, $0, &len) == 0 }
        }
        XCTAssertTrue(bound && listen(listener, 8) == 0)
        defer { close(listener) }
        let port = Int(UInt16(bigEndian: addr.sin_port))
        final class Served: Sendable { let count = Atomic<Int>(0) }
        let served = Served()
        let server = Thread {
            while served.count.load(ordering: .relaxed) < 2 {
                let fd = accept(listener, nil, nil)
                guard fd >= 0 else { return }
                var buffer = [UInt8](repeating: 0, count: 65_536)
                _ = read(fd, &buffer, buffer.count)
                let partial = Array("*3\r\n$1\r\na\r\n$1\r\n".utf8)
                _ = partial.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                usleep(50_000)
                // Counted before the hang-up: the client can return as soon as it sees the close.
                served.count.add(1, ordering: .relaxed)
                close(fd)
            }
        }
        server.start()
        let config = RedisConfig(port: port, reconnectBackoffInitial: .milliseconds(10), reconnectBackoffMax: .milliseconds(10), maxAttempts: 2)
        let c = try RedisClient(config: config)
        var first: [UInt8]?
        _ = thrownError { () throws(RedisError) in
            try c.mget(prefix: bytes("k:"), ids: ["x", "y", "z"][...]) { i, v in if i == 0 { first = v.map { Array($0) } } }
        }
        XCTAssertEqual(first, bytes("a"), "the values read before the cut were handed over")
        c.close()
        XCTAssertEqual(served.count.load(ordering: .relaxed), 2, "both attempts reached the server")
    }

    func testDroppedConnectionIsRetriedTransparently() throws {
        let server = try startServer()
        let c = try client(server)
        try c.set("k", bytes("v"))
        let admin = try client(server)
        guard case .integer(let killed) = try admin.command(["CLIENT", "KILL", "TYPE", "normal"]), killed >= 1 else {
            return XCTFail("CLIENT KILL did not kill the client")
        }
        // The first attempt hits the dead socket; the call succeeds on a fresh connection.
        XCTAssertEqual(try c.get("k"), bytes("v"))
        XCTAssertEqual(c.stats.reconnects, 1)
        XCTAssertGreaterThanOrEqual(c.stats.errors, 1)
    }

    func testServerKilledThenRestartedOnSamePort() throws {
        let server = try startServer()
        let c = try client(server) { $0.maxAttempts = 3 }
        try c.set("k", bytes("before"))

        server.stop() // SIGKILL mid-use
        let before = c.stats
        guard case .connectionFailed = thrownError({ () throws(RedisError) in try c.get("k") }) else {
            return XCTFail("expected .connectionFailed")
        }
        XCTAssertEqual(c.stats.errors - before.errors, 3, "one failure per attempt")
        // Still down: the next call also fails (it reconnects and is refused), without crashing on SIGPIPE.
        guard case .connectionFailed = thrownError({ () throws(RedisError) in try c.set("k", bytes("x")) }) else {
            return XCTFail("expected .connectionFailed")
        }

        try server.start() // same port, empty dataset
        XCTAssertNil(try c.get("k"), "fresh server, no data")
        try c.set("k", bytes("after"))
        XCTAssertEqual(try c.get("k"), bytes("after"))
        XCTAssertGreaterThan(c.stats.reconnects, 0)
    }

    func testLargeWriteToDeadServerIsAnErrorNotSIGPIPE() throws {
        let server = try startServer()
        let c = try client(server) { $0.maxAttempts = 1 }
        try c.ping()
        server.stop()
        // Megabytes to a closed peer: the first write gets an RST back, later writes hit EPIPE,
        // whose SIGPIPE would kill the test process if the client did not suppress it.
        let big = [UInt8](repeating: 0x61, count: 8 << 20)
        guard case .connectionFailed = thrownError({ () throws(RedisError) in try c.set("big", big) }) else {
            return XCTFail("expected .connectionFailed")
        }
    }

    func testConnectToNothingFailsAfterMaxAttempts() throws {
        let port = try RedisServerProcess.freePort() // nobody listens here
        let config = RedisConfig(port: port, reconnectBackoffInitial: .milliseconds(10), maxAttempts: 2)
        let error = thrownError { () throws(RedisError) in try RedisClient(config: config) }
        guard case .connectionFailed(let message) = error else { return XCTFail("got \(String(describing: error))") }
        XCTAssertTrue(message.contains("\(port)"), message)
    }

    func testCloseRejectsLaterCalls() throws {
        let c = try client(try startServer())
        try c.ping()
        c.close()
        guard case .connectionFailed = thrownError({ () throws(RedisError) in try c.ping() }) else {
            return XCTFail("a closed client must not reconnect")
        }
    }

    func testConcurrentCallersShareOneClient() throws {
        let c = try client(try startServer())
        let mismatches = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            for i in 0..<50 {
                let key = Array("w\(worker):\(i)".utf8)
                do {
                    try c.set(key, key)
                    if try c.get(key) != key { mismatches.add(1, ordering: .relaxed) }
                } catch {
                    mismatches.add(1, ordering: .relaxed)
                }
            }
        }
        XCTAssertEqual(mismatches.load(ordering: .relaxed), 0)
        XCTAssertEqual(try c.command(["DBSIZE"]), .integer(400))
    }
}
