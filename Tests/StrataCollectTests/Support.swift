import Foundation
import Logging
import StrataCollect
import StrataCore
import StrataKafka
import StrataTestSupport
import Synchronization
import XCTest

/// The package root (for topology/ and the strata binary).
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

func loadTopology() throws -> Topology {
    try Topology.load(path: packageRoot.appendingPathComponent("topology/topology.yaml").path)
}

/// A unique topic prefix with its raw topic created on `brokers`.
struct RawTopic {
    let brokers: String
    let prefix = "t\(UUID().uuidString.prefix(8).lowercased())."
    var name: String { prefix + Topology.raw }

    init(brokers: String, partitions: Int = 2) throws {
        self.brokers = brokers
        let admin = try KafkaAdmin(config: KafkaConfig(["bootstrap.servers": brokers]))
        let results = try admin.createTopics([NewTopic(name: prefix + Topology.raw, partitions: partitions)])
        for (_, error) in results { if let error { throw error } }
    }

    /// Every record of the topic, as (key, JSON object).
    func read(timeout: Duration = .seconds(60)) throws -> [(key: String, event: [String: Any])] {
        try readToEndMarkers(brokers: brokers, topic: name, timeout: timeout).map { r in
            (String(decoding: r.key ?? [], as: UTF8.self),
             (try JSONSerialization.jsonObject(with: Data(r.value)) as? [String: Any]) ?? [:])
        }
    }

    func eventIds(timeout: Duration = .seconds(60)) throws -> [String] {
        try read(timeout: timeout).compactMap { $0.event["event_id"] as? String }
    }
}

/// Well-formed raw events with unique ids.
struct EventFactory {
    let run = UUID().uuidString.prefix(8)
    var next = 0

    mutating func event(action: String = "click") -> (id: String, json: String) {
        next += 1
        let id = "\(run)-\(next)"
        let json = #"{"event_id":"\#(id)","ts":\#(Int64(Date().timeIntervalSince1970 * 1000)),"action":"\#(action)","content_id":"c\#(String(format: "%08d", next % 1000))","user_id":"u\#(next % 77)","page":"/feed"}"#
        return (id, json)
    }

    mutating func batch(_ n: Int) -> (ids: [String], body: [UInt8]) {
        let events = (0..<n).map { _ in event() }
        return (events.map(\.id), Array(("[" + events.map(\.json).joined(separator: ",") + "]").utf8))
    }
}

/// A `CollectServer` running in this process on a free port, until `stop()`.
final class Gateway: @unchecked Sendable {
    let server: CollectServer
    let port: Int
    let registry: MetricsRegistry
    private let task: Task<Void, any Error>
    var url: String { "http://127.0.0.1:\(port)/v1/events" }

    init(options base: CollectOptions, brokers: String, kafka: [String: String] = [:]) throws {
        var options = base
        options.port = 0
        registry = MetricsRegistry()
        var config = KafkaConfig.producer(bootstrapServers: brokers, clientId: "strata-collect-test").merging(kafka)
        if config["message.timeout.ms"] == nil { config["message.timeout.ms"] = "5000" }
        var logger = Logger(label: "strata.collect.test")
        logger.logLevel = .warning
        let server = try CollectServer(options: options, topology: try loadTopology(), producerConfig: config, registry: registry, logger: logger)
        self.server = server
        let bound = Mutex<Int?>(nil)
        let ready = DispatchSemaphore(value: 0)
        task = Task {
            try await server.run(handleSignals: false) { port in
                bound.withLock { $0 = port }
                ready.signal()
            }
        }
        guard ready.wait(timeout: .now() + 30) == .success, let port = bound.withLock({ $0 }) else {
            task.cancel()
            throw TestFailure(description: "the gateway did not start within 30 s")
        }
        self.port = port
    }

    func poster() throws -> EventPoster { try EventPoster(url: url, timeout: .seconds(30)) }

    /// Stops serving; closes the spool and the producer.
    func stop() {
        let done = DispatchSemaphore(value: 0)
        let t = task
        let s = server
        Task {
            await s.shutdown()
            _ = try? await t.value
            done.signal()
        }
        if done.wait(timeout: .now() + 60) == .timedOut { task.cancel() }
    }

    func metric(_ name: String) -> Double { registry.snapshot()[name] ?? 0 }

    /// Waits until the spool is empty (the drainer delivered everything), up to `timeout`.
    func waitForEmptySpool(timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if server.collector.spool.isEmpty { return true }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return false
    }
}

func temporaryDirectory(_ name: String) -> String {
    NSTemporaryDirectory() + "strata-\(name)-\(UUID().uuidString.prefix(8))"
}

/// A TCP port nothing listens on (bound, then released).
func unusedPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    guard ok else { throw TestFailure(description: "cannot bind a port") }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// A bare client socket, for what a well-behaved client would not do (slow bodies, idling).
final class RawSocket {
    let fd: Int32

    init(port: Int) throws {
        fd = try LoopbackSocket.connect(port: port)
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) throws {
        let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
        guard n == bytes.count else { throw TestFailure(description: "send failed") }
    }

    /// The status code of the first answer, or nil if none came in time.
    func readStatus(timeout: Duration) -> Int? {
        var got: [UInt8] = []
        let deadline = ContinuousClock.now + timeout
        var chunk = [UInt8](repeating: 0, count: 4096)
        while ContinuousClock.now < deadline {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n > 0 { got += chunk[0..<n] } else if n == 0 { break }
            let text = String(decoding: got, as: UTF8.self)
            if let line = text.components(separatedBy: "\r\n").first, text.contains("\r\n") {
                let parts = line.split(separator: " ")
                return parts.count >= 2 ? Int(parts[1]) : nil
            }
        }
        return nil
    }

    /// True once the server closes the connection (within `timeout`).
    func waitForClose(timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        var chunk = [UInt8](repeating: 0, count: 4096)
        while ContinuousClock.now < deadline {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n == 0 { return true }
            if n < 0, errno != EAGAIN, errno != EWOULDBLOCK, errno != EINTR { return true }
        }
        return false
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
}
