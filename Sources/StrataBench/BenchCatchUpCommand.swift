import ArgumentParser
import Foundation
import StrataCLI
import StrataCore
import StrataDims
import StrataGen
import StrataKafka

extension BenchCommand {
    /// Catching up on a backlog, checked for exactness: the case where read speed used to change
    /// the numbers.
    struct CatchUp: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "catch-up",
            abstract: "End-to-end events/s of `strata run` over a pre-loaded backlog, with the published DWS rows and ods.late checked against the input's own truth.",
            discussion: """
            Generates N reference events (out-of-order, very late and duplicate ones, unknown and invalid ids) spanning --event-minutes of event time, writes them unkeyed to a 4-partition ods.raw under a fresh prefix (line i to a seeded random partition, as many producers do), then starts `strata run --until-idle 10` on the backlog and samples its CPU and peak RSS. Afterwards it reads dws.content and ods.late to their ends and compares them with a computation from the input alone: each ods.raw partition in offset order, an event late when its partition's highest ts so far − out-of-orderness is past its minute's end + allowed lateness.

            Prints JSON lines: throughput (events / the seconds from the run's start until every DWS row's final numbers were published, by the records' Kafka timestamps: the idle waits at the end and the shutdown flush that only marks the last minute final do not count; group joins do), Strata CPU-seconds per event, peak RSS, and exactness (DWS rows missing, extra, differing; late events expected and published). `catch-up.stages` (one line per job) gives where each job's thread spent its time, per stage of its loop (the jobs' stage clocks: wall and CPU seconds, CPU µs per input event); `catch-up.cpu` the process's CPU by thread group (job threads, librdkafka's threads, the rest), the broker's CPU and resident size (before and after) with --broker-pid, and how many cores each kept busy. --run-binary runs another strata build on the same input (e.g. an earlier release), for a before/after in one run. Build with -c release.

            Examples:
              strata bench catch-up --events 2000000
              strata bench catch-up --events 300000 --event-minutes 10 --run-binary /tmp/strata-old
              strata bench catch-up --events 1000000 --run-args=--no-offline --broker-pid $(cat ~/.cache/strata/stack/broker.pid)
              strata bench catch-up --events 1000000 --keyed --run-args='--no-offline --read-raw'
            """)

        @OptionGroup var global: GlobalOptions
        @Option(help: "Events in the backlog.") var events = 2_000_000
        @Option(help: "Minutes of event time the backlog spans.") var eventMinutes = 20
        @Option(help: "Distinct contents.") var contents = 10_000
        @Option(help: "Distinct users.") var users = 100_000
        @Option(help: "Seed of the workload and of the partition choice.") var seed: UInt64 = 42
        @Option(help: "The strata binary to run (default: this one).") var runBinary: String?
        @Option(help: "Extra arguments for `strata run`, e.g. --run-args='--align-ms 0'.") var runArgs: String = ""
        @Option(help: "The broker's pid, to report its CPU over the run beside Strata's.") var brokerPid: Int32?
        @Flag(help: "Key ods.raw by content id (a content's events in one partition, as producers that follow the contract write it) instead of unkeyed; needed by --run-args=--read-raw.") var keyed = false

        func run() throws {
            let config = try global.resolve()
            let topology = try global.loadTopology(config)
            Shutdown.install()
            let prefix = "bench-\(UUID().uuidString.prefix(8))."
            let admin = try KafkaAdmin(config: KafkaConfig(["bootstrap.servers": config.brokers]).merging(config.kafka))
            for (name, e) in try admin.createTopics(topology.topics.map { NewTopic(name: prefix + $0.name, partitions: $0.partitions) }) {
                if let e { throw ValidationError("cannot create \(name): \(e)") }
            }
            let raw = try partitions(of: Topology.raw, in: topology)
            let storePath = NSTemporaryDirectory() + "strata-bench-catchup-\(prefix)db"
            defer { try? FileManager.default.removeItem(atPath: storePath) }
            try BenchDimensions.load(storePath: storePath, contents: contents, users: users)

            var w = EventWorkload()
            w.seed = seed; w.contents = contents; w.users = users
            w.eventsPerSecond = Double(events) / Double(eventMinutes * 60)
            var gen = EventGenerator(w)
            var rng = Xoshiro256(seed: seed &+ 1)
            var truth = CatchUpTruth(contents: contents, actions: topology.actions)
            let producer = try KafkaProducer(config: config.producerConfig(clientId: "strata-bench-catchup"))
            let rawTopic = producer.topic(prefix + Topology.raw)
            var line: [UInt8] = []
            var progress = Progress()
            let scanner = EventScanner()
            for i in 0..<events {
                line.removeAll(keepingCapacity: true)
                _ = gen.next(into: &line)
                var p = Int32(rng.below(raw))
                try line.withUnsafeBytes { l in
                    // Keyed: the content id's bytes pick the partition (lines without one stay where the seed put them).
                    guard keyed, let e = try? scanner.scan(l) else {
                        return try producer.produce(to: rawTopic, partition: p, key: nil, value: l, copy: true)
                    }
                    let key = EventScanner.decodeString(l, e.contentId)   // the id's value, escapes decoded
                    p = Int32(key.reduce(UInt32(17)) { $0 &* 31 &+ UInt32($1) } % UInt32(raw))
                    try key.withUnsafeBytes { try producer.produce(to: rawTopic, partition: p, key: $0, value: l, copy: true) }
                }
                truth.add(line, partition: p)
                if i % 10_000 == 0 { producer.poll(); progress.update("backlog: \(i)/\(events) events written") }
            }
            try producer.flush(timeoutMs: 300_000)
            progress.finish()

            let child = try startRun(config: config, prefix: prefix, storePath: storePath)
            var broker = BrokerSize(pid: brokerPid)
            let sampler = ProcessSampler(pid: child.processIdentifier)
            let started = ContinuousClock.now
            let startedMs = Int64(Date().timeIntervalSince1970 * 1000)
            stderrLine("strata run (pid \(child.processIdentifier)) catching up on \(events) events")
            // The summaries (stage clocks included) come on stdout at exit: read it while it runs.
            let childOut = (child.standardOutput as! Pipe).fileHandleForReading.readDataToEndOfFile()
            child.waitUntilExit()
            let elapsed = (ContinuousClock.now - started).seconds
            sampler.stop()
            broker.finish()
            if child.terminationStatus != 0 { throw ValidationError("strata run exited with \(child.terminationStatus)") }

            // Both outputs are keyed (by content id), so the state-topic reader reads them whole.
            let read = { (topic: String) throws -> [[UInt8]] in
                try TopicSnapshot.read(topic: topic, brokers: config.brokers, kafka: config.kafka,
                                       markerKey: "strata-bench-end", timeout: .seconds(600)).map(\.value)
            }
            let dws = try TopicSnapshot.readTimed(topic: prefix + Topology.dws, brokers: config.brokers, kafka: config.kafka,
                                                  markerKey: "strata-bench-end", timeout: .seconds(600))
            let late = try read(prefix + Topology.late)
            let check = truth.compare(dws: dws.map(\.value), late: late)
            // Complete: every row's final numbers published (the shutdown flush that only marks the
            // last minute final, and the idle wait before it, do not count).
            let complete = truth.completedAtMs(dws.map { ($0.value, $0.timestampMs) }).map { max(Double($0 - startedMs) / 1000, 0.001) }
            print("{\"bench\":\"catch-up\",\"events\":\(events),\"event_minutes\":\(eventMinutes),\"partitions\":\(raw),\"keyed\":\(keyed),\"binary\":\"\(runBinary ?? "self")\",\"run_args\":\"\(runArgs)\"}")
            print("{\"bench\":\"catch-up.speed\",\"wall_s\":\(fmt(elapsed)),\"complete_s\":\(complete.map(fmt) ?? "null"),"
                  + "\"events_per_s\":\(complete.map { String(Int(Double(events) / $0)) } ?? "null"),"
                  + "\"strata_cpu_s\":\(fmt(sampler.cpuSeconds)),\"strata_cpu_us_per_event\":\(fmt(sampler.cpuSeconds * 1e6 / Double(events))),"
                  + "\"peak_rss_mb\":\(sampler.peakRSSKiB / 1024)}")
            print("{\"bench\":\"catch-up.exactness\",\"dws_rows_expected\":\(truth.dwsRows),\"dws_rows_missing\":\(check.missing),"
                  + "\"dws_rows_extra\":\(check.extra),\"dws_rows_differing\":\(check.differing),\"late_expected\":\(truth.lateCount),"
                  + "\"late_published\":\(late.count),\"late_not_expected\":\(check.lateNotExpected),\"exact\":\(check.exact)}")
            printStages(String(decoding: childOut, as: UTF8.self), elapsed: elapsed, processCPU: sampler.cpuSeconds,
                        threads: sampler.threadCPUSeconds, brokerCPU: broker.cpuSeconds, brokerRSS: broker.fields)
        }

        /// Per job: each stage's wall and CPU seconds and CPU µs per input event (the job's summary
        /// line); then the process's CPU by thread group and the broker's, the cores they kept busy,
        /// and the broker's resident size before and after the run.
        private func printStages(_ childOut: String, elapsed: Double, processCPU: Double, threads: [String: Double], brokerCPU: Double?,
                                 brokerRSS: [String: Int]) {
            let n = Double(events)
            func round(_ x: Double, _ digits: Double = 100) -> Double { (x * digits).rounded() / digits }
            func line(_ o: [String: Any]) -> String {
                (try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
            }
            for l in childOut.split(separator: "\n") where l.hasPrefix("{") {
                guard let o = try? JSONSerialization.jsonObject(with: Data(l.utf8)) as? [String: Any], let job = o["job"] as? String,
                      let stages = o["stages"] as? [String: [String: Any]] else { continue }
                var out: [String: Any] = [:]
                for (name, t) in stages {
                    let cpu = t["cpu_s"] as? Double ?? 0, wall = t["wall_s"] as? Double ?? 0
                    out[name] = ["cpu_s": cpu, "wall_s": wall, "cpu_us_per_event": round(cpu * 1e6 / n), "laps": t["laps"] as? Int ?? 0]
                }
                let thread = o["thread"] as? [String: Any]
                print(line(["bench": "catch-up.stages", "job": job, "consumed": o["consumed"] as? Int ?? 0, "stages": out,
                            "thread_cpu_s": thread?["cpu_s"] as? Double ?? 0, "loop_wall_s": thread?["wall_s"] as? Double ?? 0]))
            }
            var cpu: [String: Any] = ["bench": "catch-up.cpu", "wall_s": round(elapsed), "strata_cpu_s": round(processCPU),
                                      "strata_cores_busy": round(processCPU / max(elapsed, 0.001)),
                                      "threads_cpu_s": threads.mapValues { round($0) },
                                      "threads_cpu_us_per_event": threads.mapValues { round($0 * 1e6 / n) }]
            if let b = brokerCPU {
                cpu["broker_cpu_s"] = round(b)
                cpu["broker_cores_busy"] = round(b / max(elapsed, 0.001))
                cpu["broker_cpu_us_per_event"] = round(b * 1e6 / n)
            }
            for (k, v) in brokerRSS { cpu[k] = v }
            print(line(cpu))
        }

        private func fmt(_ x: Double) -> String { String(format: "%.2f", x) }

        private func partitions(of name: String, in topology: Topology) throws -> Int {
            guard let t = topology.topic(named: name) else { throw ValidationError("topology has no \(name)") }
            return t.partitions
        }

        private func startRun(config: StrataConfig, prefix: String, storePath: String) throws -> Process {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: try runBinary ?? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            var args = ["run", "--topic-prefix", prefix, "--brokers", config.brokers, "--redis", config.redisURL,
                        "--store", "sqlite:" + storePath, "--until-idle", "10", "--log-format", "json"]
            if let t = config.topologyPath { args += ["--topology", t] }
            for (k, v) in config.kafka { args += ["-X", "\(k)=\(v)"] }
            args += runArgs.split(separator: " ").map(String.init)
            p.arguments = args
            p.standardOutput = Pipe()
            let log = NSTemporaryDirectory() + "strata-bench-catchup-\(prefix)log"
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            stderrLine("strata run logs: \(log)")
            try p.run()
            return p
        }
    }
}

/// The DWS rows and late events a backlog must produce, from the contract alone (Foundation's
/// JSON, not Strata's scanner): per ods.raw partition in offset order, late when the partition's
/// highest ts so far − 5 s is past the minute's end + 120 s; duplicates by event_id per cell.
struct CatchUpTruth {
    let contents: Int
    let actions: [String]
    private var running: [Int32: Int64] = [:]
    private var counted = Set<String>()
    private var dws: [String: [Int64]] = [:]        // minute|content → per action, then play_ms, then uv
    private var cells = Set<String>()
    private(set) var late: [[UInt8]: Int] = [:]
    var lateCount: Int { late.values.reduce(0, +) }
    var dwsRows: Int { dws.count }

    init(contents: Int, actions: [String]) { self.contents = contents; self.actions = actions }

    mutating func add(_ l: [UInt8], partition p: Int32) {
        guard let o = try? JSONSerialization.jsonObject(with: Data(l)) as? [String: Any],
              let id = o["event_id"] as? String, (1...64).contains(id.utf8.count), let ts = o["ts"] as? Int64,
              let action = o["action"] as? String, let c = o["content_id"] as? String, let u = o["user_id"] as? String else { return }
        running[p] = max(running[p] ?? .min, ts)
        guard let a = actions.firstIndex(of: action), c.utf8.count == 9, c.hasPrefix("c"),
              let n = Int(c.dropFirst()), c.dropFirst().allSatisfy({ ("0"..."9").contains($0) }), n < contents else { return }
        let minute = ts - ts % 60_000
        if running[p]! - 5_000 > minute + 60_000 + 120_000 { late[l, default: 0] += 1; return }
        let cell = "\(minute)|\(c)|\(u)"
        guard counted.insert(cell + "|" + id).inserted else { return }
        let key = "\(minute)|\(c)"
        var row = dws[key] ?? [Int64](repeating: 0, count: actions.count + 2)
        row[a] += 1
        if action == "play" { row[actions.count] += o["duration_ms"] as? Int64 ?? 0 }
        if cells.insert(cell).inserted { row[actions.count + 1] += 1 }
        dws[key] = row
    }

    /// When the last row's final numbers were first published (the earliest timestamp of a record
    /// of the row carrying them; the latest such over all rows); nil when some row never had them.
    func completedAtMs(_ published: [(value: [UInt8], timestampMs: Int64)]) -> Int64? {
        var first: [String: Int64] = [:]
        for (v, ts) in published {
            guard let o = try? JSONSerialization.jsonObject(with: Data(v)) as? [String: Any],
                  let minute = o["minute"] as? Int64, let c = o["content_id"] as? String else { continue }
            let key = "\(minute)|\(c)"
            guard let want = dws[key], numbers(o) == want else { continue }
            first[key] = min(first[key] ?? .max, ts)
        }
        guard first.count == dws.count else { return nil }
        return first.values.max()
    }

    private func numbers(_ o: [String: Any]) -> [Int64] {
        actions.map { Int64(o[$0] as? Int ?? -1) } + [Int64(o["play_ms"] as? Int ?? -1), Int64(o["uv"] as? Int ?? -1)]
    }

    func compare(dws published: [[UInt8]], late publishedLate: [[UInt8]]) -> (missing: Int, extra: Int, differing: Int, lateNotExpected: Int, exact: Bool) {
        var best: [String: (rev: Int, row: [Int64])] = [:]
        for v in published {
            guard let o = try? JSONSerialization.jsonObject(with: Data(v)) as? [String: Any],
                  let minute = o["minute"] as? Int64, let c = o["content_id"] as? String, let rev = o["rev"] as? Int else { continue }
            let key = "\(minute)|\(c)"
            if (best[key]?.rev ?? -1) >= rev { continue }
            best[key] = (rev, numbers(o))
        }
        let missing = dws.keys.filter { best[$0] == nil }.count
        let extra = best.keys.filter { dws[$0] == nil }.count
        let differing = dws.filter { k, row in best[k].map { $0.row != row } ?? false }.count
        var got: [[UInt8]: Int] = [:]
        for l in publishedLate { got[l, default: 0] += 1 }
        let lateNotExpected = got.filter { late[$0.key] == nil }.values.reduce(0, +)
        return (missing, extra, differing, lateNotExpected, missing == 0 && extra == 0 && differing == 0 && got == late)
    }
}
