import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import StrataCLI
import StrataCore
import StrataKafka
import Synchronization

/// `strata bench serve`: dashboard fan-out. A `strata serve` process over a fresh DWS topic fed
/// at a steady rate; 1, 100, 1 000 … SSE viewers of the `totals` feed. For each viewer count: the
/// server's CPU per second of input and its RSS, and the latency from a DWS row's `emitted_at` to
/// a viewer receiving the result that includes it (p50/p99), beside the broker's own
/// produce → consume latency for the same rows, measured in the same run by a plain consumer.
struct BenchServe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Dashboard fan-out: server CPU, RSS and emitted_at → viewer latency for 1…N SSE viewers, beside the broker's produce → consume latency.",
        discussion: """
        Starts `strata serve` (this binary) as a child process with the feeds of --feeds, over a fresh
        topic prefix, and a producer of DWS rows for --contents contents of the current minute at
        --rate rows/s (each row stamped with emitted_at = now). Viewers are plain sockets read by
        one thread with poll(2). Build with -c release.
        """)

    @OptionGroup var global: GlobalOptions
    @Option(help: "Viewer counts to measure, comma-separated.") var viewers = "1,100,1000"
    @Option(help: "DWS rows produced per second.") var rate = 200
    @Option(help: "Contents the rows are spread over.") var contents = 500
    @Option(help: "Seconds measured per viewer count.") var seconds = 20
    @Option(help: "Feed directory for the server.") var feeds = "sql/dashboard"

    func run() throws {
        let config = try global.resolve()
        let counts = viewers.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !counts.isEmpty, counts.allSatisfy({ $0 > 0 }) else { throw ValidationError("--viewers expects counts like 1,100,1000") }
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        if limit.rlim_cur < rlim_t(counts.max()! + 256) {
            limit.rlim_cur = min(limit.rlim_max, rlim_t(counts.max()! + 256))
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }

        let prefix = "bench-serve-\(UInt32.random(in: 0...UInt32.max))."
        let admin = try KafkaAdmin(config: KafkaConfig(["bootstrap.servers": config.brokers]))
        for (topic, error) in try admin.createTopics([NewTopic(name: prefix + "dws.content", partitions: 2),
                                                      NewTopic(name: prefix + "dwm.content_user", partitions: 2)]) {
            if let error { throw ValidationError("create \(topic): \(error)") }
        }
        let server = try ServerProcess(brokers: config.brokers, prefix: prefix, feeds: feeds)
        defer { server.stop() }
        print("{\"bench\":\"serve.fanout\",\"rate\":\(rate),\"contents\":\(contents),\"seconds\":\(seconds),\"server_pid\":\(server.pid),\"port\":\(server.port)}")

        let feeder = Feeder(brokers: config.brokers, topic: prefix + "dws.content", rate: rate, contents: contents)
        feeder.start()
        defer { feeder.stop() }
        let broker = BrokerLatency(brokers: config.brokers, topic: prefix + "dws.content")
        broker.start()
        defer { broker.stop() }
        Thread.sleep(forTimeInterval: 3)  // the server's consumers reach the live end

        for count in counts {
            let clients = try ViewerPool(port: server.port, path: "/api/feeds/totals", count: count)
            Thread.sleep(forTimeInterval: 2)  // connected, first results in
            clients.reset()
            broker.reset()
            let cpu0 = server.cpuSeconds, rows0 = feeder.produced
            let t0 = ContinuousClock.now
            clients.run(for: .seconds(seconds))
            let elapsed = (ContinuousClock.now - t0).seconds
            let cpu = server.cpuSeconds - cpu0
            let rows = feeder.produced - rows0
            let latency = clients.latencies.sorted()
            let brokerLatency = broker.latencies.sorted()
            print("{\"bench\":\"serve.fanout\",\"viewers\":\(count),\"connected\":\(clients.connected),\"rows_in\":\(rows),\"seconds\":\(Self.r(elapsed))"
                  + ",\"server_cpu_per_s\":\(Self.r(cpu / elapsed)),\"server_rss_mb\":\(server.rssMB)"
                  + ",\"results_received\":\(latency.count),\"latency_p50_ms\":\(Self.pct(latency, 0.5)),\"latency_p99_ms\":\(Self.pct(latency, 0.99))"
                  + ",\"broker_latency_p50_ms\":\(Self.pct(brokerLatency, 0.5)),\"broker_latency_p99_ms\":\(Self.pct(brokerLatency, 0.99))}")
            clients.close()
        }
    }

    static func r(_ x: Double) -> String { String(format: "%.3f", x) }
    static func pct(_ sorted: [Int64], _ p: Double) -> String {
        sorted.isEmpty ? "null" : String(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))])
    }
    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// `strata serve` as a child process on a free port.
    final class ServerProcess {
        let process = Process()
        let pid: Int32
        let port: Int

        init(brokers: String, prefix: String, feeds: String) throws {
            process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            process.arguments = ["serve", "--brokers", brokers, "--listen", "127.0.0.1:0", "--topic-prefix", prefix,
                                 "--feeds", feeds, "--viewer-buffer", "64", "--log-level", "warning"]
            let pipe = Pipe()
            process.standardError = pipe
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            pid = process.processIdentifier
            // "strata serve: http://127.0.0.1:PORT/ · …"
            var text = ""
            let deadline = Date().addingTimeInterval(30)
            var found: Int?
            while found == nil && Date() < deadline {
                let data = pipe.fileHandleForReading.availableData
                if data.isEmpty { break }
                text += String(decoding: data, as: UTF8.self)
                if let range = text.range(of: "http://127.0.0.1:") {
                    found = Int(text[range.upperBound...].prefix { $0.isNumber })
                }
            }
            guard let found else {
                process.terminate()
                throw ValidationError("strata serve did not start: \(text)")
            }
            port = found
            // Keep draining its stderr so it never blocks on a full pipe.
            let handle = pipe.fileHandleForReading
            Thread { while !handle.availableData.isEmpty {} }.start()
        }

        var cpuSeconds: Double { ProcessStats.read(pid: pid)?.cpuSeconds ?? 0 }

        var rssMB: Int { (ProcessStats.read(pid: pid)?.rssKiB ?? 0) / 1024 }

        func stop() {
            process.terminate()
            process.waitUntilExit()
        }
    }

    /// DWS rows at a steady rate: contents in turn, each with a higher rev, stamped emitted_at = now.
    final class Feeder: Sendable {
        let brokers: String, topic: String, rate: Int, contents: Int
        private let stopFlag = Atomic<Bool>(false)
        private let count = Atomic<Int>(0)
        var produced: Int { count.load(ordering: .relaxed) }

        init(brokers: String, topic: String, rate: Int, contents: Int) {
            (self.brokers, self.topic, self.rate, self.contents) = (brokers, topic, rate, contents)
        }

        func start() {
            Thread { [self] in
                guard let producer = try? KafkaProducer(config: KafkaConfig.producer(bootstrapServers: brokers).merging(["linger.ms": "1"])) else { return }
                let started = ContinuousClock.now
                var i = 0
                while !stopFlag.load(ordering: .relaxed) {
                    let due = Int((ContinuousClock.now - started).seconds * Double(rate))
                    while i < due {
                        let now = BenchServe.nowMs()
                        let content = String(format: "c%08d", i % contents)
                        let row = #"{"minute":\#(now / 60_000 * 60_000),"content_id":"\#(content)","expose":\#(i % 7 + 1),"click":\#(i % 3),"play":1,"play_ms":1000,"like":0,"share":0,"comment":0,"report":0,"uv":1,"final":false,"rev":\#(i + 1),"emitted_at":\#(now)}"#
                        try? producer.produce(topic: topic, key: Array(content.utf8), value: Array(row.utf8))
                        i += 1
                        count.store(i, ordering: .relaxed)
                    }
                    producer.poll(timeoutMs: 0)
                    Thread.sleep(forTimeInterval: 0.005)
                }
                try? producer.flush(timeoutMs: 5_000)
            }.start()
        }

        func stop() { stopFlag.store(true, ordering: .relaxed) }
    }

    /// The baseline: a plain consumer of the same topic, latency now − emitted_at per row.
    final class BrokerLatency: Sendable {
        let brokers: String, topic: String
        private let stopFlag = Atomic<Bool>(false)
        private let samples = Mutex<[Int64]>([])
        var latencies: [Int64] { samples.withLock { $0 } }
        func reset() { samples.withLock { $0 = [] } }

        init(brokers: String, topic: String) { (self.brokers, self.topic) = (brokers, topic) }

        func start() {
            Thread { [self] in
                guard let consumer = try? KafkaConsumer(config: .consumer(bootstrapServers: brokers, groupId: nil)),
                      let partitions = try? consumer.partitionCount(topic: topic) else { return }
                defer { consumer.close() }
                try? consumer.assign((0..<partitions).map { TopicPartitionOffset(topic: topic, partition: Int32($0), offset: TopicPartitionOffset.end) })
                while !stopFlag.load(ordering: .relaxed) {
                    guard let batch = try? consumer.poll(maxMessages: 1000, timeoutMs: 100) else { continue }
                    let now = BenchServe.nowMs()
                    var got: [Int64] = []
                    for message in batch where message.error == nil {
                        if let at = BenchServe.number(after: Array(#""emitted_at":"#.utf8), in: message.value) { got.append(now - at) }
                    }
                    if !got.isEmpty { samples.withLock { $0 += got } }
                }
            }.start()
        }

        func stop() { stopFlag.store(true, ordering: .relaxed) }
    }

    /// The integer after `key` in `bytes`.
    static func number(after key: [UInt8], in bytes: UnsafeRawBufferPointer) -> Int64? {
        guard bytes.count >= key.count else { return nil }
        var i = 0
        outer: while i + key.count <= bytes.count {
            for j in 0..<key.count where bytes[i + j] != key[j] { i += 1; continue outer }
            var k = i + key.count, value: Int64 = 0, digits = 0
            while k < bytes.count, bytes[k] >= 48, bytes[k] <= 57 { value = value * 10 + Int64(bytes[k] - 48); k += 1; digits += 1 }
            return digits > 0 ? value : nil
        }
        return nil
    }

    /// N SSE connections read by one thread with poll(2): each `newest_emitted_at` received
    /// gives a latency sample (now − emitted_at).
    final class ViewerPool {
        var fds: [Int32] = []
        var latencies: [Int64] = []
        var tails: [[UInt8]]
        var connected: Int { fds.count }

        init(port: Int, path: String, count: Int) throws {
            tails = Array(repeating: [], count: count)
            for _ in 0..<count {
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                var addr = sockaddr_in()
                addr.sin_family = sa_family_t(AF_INET)
                addr.sin_port = in_port_t(UInt16(port).bigEndian)
                addr.sin_addr.s_addr = inet_addr("127.0.0.1")
                let rc = withUnsafePointer(to: &addr) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
                guard rc == 0 else { Glibc.close(fd); throw ValidationError("connect failed after \(fds.count) viewers") }
                let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".utf8)
                _ = request.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                fds.append(fd)
            }
        }

        func reset() {
            run(for: .milliseconds(300))
            latencies = []
        }

        func run(for duration: Duration) {
            let deadline = ContinuousClock.now + duration
            var pollfds = fds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            var buffer = [UInt8](repeating: 0, count: 65536)
            let key = Array(#""newest_emitted_at":"#.utf8)
            while ContinuousClock.now < deadline {
                let ready = poll(&pollfds, nfds_t(pollfds.count), 100)
                guard ready > 0 else { continue }
                let now = BenchServe.nowMs()
                for i in pollfds.indices where pollfds[i].revents != 0 {
                    while true {
                        let n = buffer.withUnsafeMutableBytes { recv(pollfds[i].fd, $0.baseAddress, $0.count, 0) }
                        guard n > 0 else { break }
                        // Results are small; keep what is after the last complete event.
                        tails[i] += buffer[0..<n]
                        while let end = Self.find([10, 10], in: tails[i]) {
                            let event = Array(tails[i][0..<end])
                            tails[i].removeFirst(end + 2)
                            let found: Int64? = event.withUnsafeBytes { BenchServe.number(after: key, in: $0) }
                            if let at = found { latencies.append(now - at) }
                        }
                    }
                }
            }
        }

        static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
            guard haystack.count >= needle.count else { return nil }
            for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] && haystack[i + 1] == needle[1] { return i }
            return nil
        }

        func close() { for fd in fds { Glibc.close(fd) } }
    }
}
