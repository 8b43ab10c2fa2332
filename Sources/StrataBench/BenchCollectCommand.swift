import ArgumentParser
import Foundation
import Hummingbird
import StrataCLI
import StrataCollect
import StrataCore
import StrataGen
import StrataKafka
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

extension BenchCommand {
    struct Collect: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "collect",
            abstract: "The collection gateway's events/s and latency, beside a Hummingbird route that answers 204 without work.",
            discussion: """
            Three servers in turn, each a child process pinned to CPU 0 (taskset), loaded from this
            process (pinned to CPU 1) by --connections keep-alive connections posting JSON arrays of
            --batch generated events for --seconds (closed loop, after a warm-up):
              baseline  POST /v1/events reads the body and answers 204
              broker    strata collect with the broker (--brokers): 202 after every event is acknowledged
              spool     strata collect with no broker reachable: 202 after the spool's group-commit fsync
            Reports events/s, request latency p50/p99 and the server's CPU-seconds per million events
            (from /proc). The broker shares the machine. Build with -c release.
            """)

        @OptionGroup var global: GlobalOptions
        @Option(help: "Events per request.") var batch = 20
        @Option(help: "Concurrent connections.") var connections = 16
        @Option(help: "Seconds measured per server.") var seconds = 10.0
        @Option(help: "Seconds of warm-up per server (not measured).") var warmup = 2.0
        @Option(help: "CPU the server is pinned to (the load runs on the others).") var serverCpu = 0
        @Option(help: "Which servers: baseline, broker, spool (comma-separated).") var servers = "baseline,broker,spool"

        func run() throws {
            let config = try global.resolve()
            let topology = try global.loadTopology(config)
            let bodies = Self.bodies(batch: batch, count: 2_000, actions: topology.actions)
            let me = URL(fileURLWithPath: CommandLine.arguments[0]).path
            Self.pinSelf(excluding: serverCpu)
            let prefix = "bench\(UUID().uuidString.prefix(6).lowercased())."
            let spool = NSTemporaryDirectory() + "strata-bench-spool-\(UUID().uuidString.prefix(8))"
            defer { try? FileManager.default.removeItem(atPath: spool) }
            print("{\"bench\":\"collect.setup\",\"batch\":\(batch),\"connections\":\(connections),\"seconds\":\(seconds),\"server_cpu\":\(serverCpu),\"bytes_per_request\":\(bodies[0].count)}")

            for server in servers.split(separator: ",").map({ String($0) }) {
                let port = try Self.freePort()
                var args: [String]
                switch server {
                case "baseline":
                    args = ["bench", "collect-baseline", "--listen", "127.0.0.1:\(port)"]
                case "broker":
                    let admin = try KafkaAdmin(config: KafkaConfig(["bootstrap.servers": config.brokers]).merging(config.kafka))
                    _ = try admin.createTopics([NewTopic(name: prefix + Topology.raw, partitions: 4)])
                    args = ["collect", "--listen", "127.0.0.1:\(port)", "--brokers", config.brokers, "--topic-prefix", prefix,
                            "--spool-dir", spool + "-broker", "--log-level", "warning"]
                case "spool":
                    args = ["collect", "--listen", "127.0.0.1:\(port)", "--brokers", "127.0.0.1:\(try Self.freePort())",
                            "--topic-prefix", prefix, "--spool-dir", spool, "--spool-quota", "20GB", "--ack-timeout", "100ms",
                            "--log-level", "error"]
                default:
                    throw ValidationError("unknown server \(server): baseline, broker or spool")
                }
                if let topologyPath = config.topologyPath { args += ["--topology", topologyPath] }
                let child = Process()
                child.executableURL = URL(fileURLWithPath: "/usr/bin/taskset")
                child.arguments = ["-c", String(serverCpu), me] + args
                child.standardOutput = FileHandle.nullDevice
                try child.run()
                defer {
                    child.terminate()
                    child.waitUntilExit()
                    try? FileManager.default.removeItem(atPath: spool + "-broker")
                }
                try Self.waitForServer(port: port)
                let url = "http://127.0.0.1:\(port)/v1/events"
                _ = Self.load(url: url, bodies: bodies, connections: connections, seconds: warmup)
                let cpu0 = Self.cpuSeconds(pid: child.processIdentifier)
                let r = Self.load(url: url, bodies: bodies, connections: connections, seconds: seconds)
                let cpu = Self.cpuSeconds(pid: child.processIdentifier) - cpu0
                let events = r.requests * batch
                let rate = Double(events) / r.seconds
                let cpuPerMillion = events > 0 ? cpu / Double(events) * 1e6 : 0
                print("{\"bench\":\"collect.\(server)\",\"events\":\(events),\"events_per_s\":\(Int(rate)),\"requests\":\(r.requests),"
                      + "\"p50_ms\":\(Self.ms(r.p50)),\"p99_ms\":\(Self.ms(r.p99)),\"max_ms\":\(Self.ms(r.max)),"
                      + "\"server_cpu_s\":\(String(format: "%.2f", cpu)),\"server_cpu_s_per_million_events\":\(String(format: "%.2f", cpuPerMillion)),"
                      + "\"events_per_server_cpu_s\":\(cpu > 0 ? Int(Double(events) / cpu) : 0),\"statuses\":\(Self.json(r.statuses))}")
            }
        }

        static func ms(_ ns: UInt64) -> String { String(format: "%.2f", Double(ns) / 1e6) }

        static func json(_ statuses: [Int: Int]) -> String {
            "{" + statuses.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",") + "}"
        }

        /// `count` JSON-array bodies of `batch` generated events (no malformed ones).
        static func bodies(batch: Int, count: Int, actions: [String]) -> [[UInt8]] {
            var w = EventWorkload()
            w.actions = actions
            w.malformedShare = 0
            w.startMs = Int64(Date().timeIntervalSince1970 * 1000)
            var gen = EventGenerator(w)
            var line: [UInt8] = []
            return (0..<count).map { _ in
                var body: [UInt8] = [UInt8(ascii: "[")]
                for i in 0..<batch {
                    line.removeAll(keepingCapacity: true)
                    _ = gen.next(into: &line)
                    if i > 0 { body.append(UInt8(ascii: ",")) }
                    body += line
                }
                body.append(UInt8(ascii: "]"))
                return body
            }
        }

        struct Result {
            var requests = 0
            var seconds = 0.0
            var p50: UInt64 = 0, p99: UInt64 = 0, max: UInt64 = 0
            var statuses: [Int: Int] = [:]
        }

        /// Closed loop: each connection posts, waits for the answer, posts again, until the time is up.
        static func load(url: String, bodies: [[UInt8]], connections: Int, seconds: Double) -> Result {
            let latencies = Mutex<[UInt64]>([])
            let statuses = Mutex<[Int: Int]>([:])
            let group = DispatchGroup()
            let start = ContinuousClock.now
            let end = start + .milliseconds(Int64(seconds * 1000))
            for c in 0..<connections {
                group.enter()
                let thread = Thread {
                    defer { group.leave() }
                    guard let client = try? EventPoster(url: url, timeout: .seconds(30)) else { return }
                    var mine: [UInt64] = []
                    var codes: [Int: Int] = [:]
                    mine.reserveCapacity(100_000)
                    var i = c * 7
                    while ContinuousClock.now < end {
                        let t0 = ContinuousClock.now
                        guard let r = try? client.post(bodies[i % bodies.count]) else { codes[0, default: 0] += 1; continue }
                        let d = ContinuousClock.now - t0
                        mine.append(UInt64(d.components.seconds) * 1_000_000_000 + UInt64(d.components.attoseconds / 1_000_000_000))
                        codes[r.status, default: 0] += 1
                        i += 1
                    }
                    latencies.withLock { $0 += mine }
                    statuses.withLock { s in for (k, v) in codes { s[k, default: 0] += v } }
                }
                thread.start()
            }
            group.wait()
            let elapsed = ContinuousClock.now - start
            var r = Result()
            let all = latencies.withLock { $0 }.sorted()
            r.requests = all.count
            r.seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            if !all.isEmpty {
                r.p50 = all[all.count / 2]
                r.p99 = all[min(all.count - 1, Int(Double(all.count) * 0.99))]
                r.max = all[all.count - 1]
            }
            r.statuses = statuses.withLock { $0 }
            return r
        }

        static func waitForServer(port: Int) throws {
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                if let c = try? EventPoster(url: "http://127.0.0.1:\(port)/"), (try? c.get("/healthz")) != nil { return }
                Thread.sleep(forTimeInterval: 0.1)
            }
            throw ValidationError("the server on port \(port) did not answer within 30 s")
        }

        /// utime + stime of a process, from /proc/PID/stat.
        static func cpuSeconds(pid: Int32) -> Double {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return 0 }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            // After the command: state is field 3, utime 14 and stime 15 (1-based in proc(5)).
            guard fields.count > 13, let u = Double(fields[11]), let s = Double(fields[12]) else { return 0 }
            return (u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
        }

        /// Keeps this process's main thread (and so the load threads it starts) off the server's CPU,
        /// when there is another one.
        static func pinSelf(excluding cpu: Int) {
            let n = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
            guard n > 1 else { return }
            let others = (0..<n).filter { $0 != cpu }.map(String.init).joined(separator: ",")
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/taskset")
            p.arguments = ["-p", "-c", others, String(getpid())]
            p.standardOutput = FileHandle.nullDevice
            try? p.run()
            p.waitUntilExit()
        }

        static func freePort() throws -> Int {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let ok = withUnsafeMutablePointer(to: &addr) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
            }
            guard ok else { throw ValidationError("no free port") }
            return Int(UInt16(bigEndian: addr.sin_port))
        }
    }

    /// The baseline server of `bench collect`: the same Hummingbird stack, no work (hidden).
    struct CollectBaseline: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "collect-baseline", abstract: "The baseline server of `bench collect`: POST /v1/events → 204.",
            shouldDisplay: false)

        @Option var listen = "127.0.0.1:8091"

        func run() throws {
            guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]) else {
                throw ValidationError("--listen expects HOST:PORT")
            }
            let host = String(listen[..<colon])
            let router = Router()
            router.post("/v1/events") { request, _ -> Response in
                // Read the body as the gateway does, then answer without work.
                var size = 0
                for try await chunk in request.body { size += chunk.readableBytes }
                return Response(status: size >= 0 ? .noContent : .badRequest)
            }
            router.get("/healthz") { _, _ in Response(status: .ok) }
            let app = Application(router: router, configuration: .init(address: .hostname(host, port: port)))
            let done = DispatchSemaphore(value: 0)
            Task {
                try? await app.runService()
                done.signal()
            }
            done.wait()
        }
    }
}
