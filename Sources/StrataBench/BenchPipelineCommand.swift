import ArgumentParser
import Foundation
import StrataCLI
import StrataCore
import StrataDims
import StrataGen
import StrataJobs
import StrataKafka
import Synchronization

extension BenchCommand {
    /// Freshness and memory of the whole pipeline: a real `strata run` process fed at a steady
    /// rate, watched from outside.
    struct Pipeline: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Freshness (p50/p99 of early and final DWS rows) and RSS of `strata run` at a steady input rate.",
            discussion: """
            Creates topics under a fresh prefix and a temporary SQLite store with the dimensions, starts `strata run` (split + dwm + changelog follower) as a child process, and produces reference-shaped events to ods.raw at --rate for --seconds, event time = wall clock, keyed by content.

            Every event is clean (no duplicates or bad ids), so a DWS row's per-action counts say exactly which events of its (minute, content, action) it includes: an event's freshness is the arrival of the first DWS row that includes it minus its produce time. Final rows are measured from minute end + out-of-orderness. The baseline, measured side by side, is the broker's own produce→consume latency on ods.raw. The child's peak RSS (VmHWM) and CPU time are sampled every 250 ms. Build with -c release; docs/benchmarks.md has the reference numbers.

            Examples:
              strata bench pipeline --rate 5000 --seconds 150
              strata bench pipeline --rate 18000 --seconds 150 --users 200000   # ≈ 1 M cells per minute
              strata bench pipeline --rate 5000 --early-interval-ms 5000 --run-log-level debug   # the earlier default
              strata bench pipeline --broker-pid $(cat ~/.cache/strata/stack/broker.pid)   # and the broker's size
            """)

        @OptionGroup var global: GlobalOptions
        @Option(help: "Events per second.") var rate = 5_000
        @Option(help: "Seconds of input.") var seconds = 150
        @Option(help: "Distinct contents (chosen uniformly).") var contents = 10_000
        @Option(help: "Distinct users (chosen uniformly); with users ≫ events per minute nearly every event is its own cell.") var users = 100_000
        @Option(help: "Early-revision interval of the dwm job, ms.") var earlyIntervalMs: Int64 = 2_000
        @Option(help: "Out-of-orderness of the dwm job, ms.") var outOfOrdernessMs: Int64 = 5_000
        @Option(help: "Log level of `strata run` (debug shows each transaction's lookup/produce/commit time).") var runLogLevel = "info"
        @Option(help: "The broker's pid, to report its resident size before and after the run (a broker that keeps its log in memory slows as it grows).") var brokerPid: Int32?
        @Flag(help: "Run with --finals-together: a minute's DWM and DWS finals in one transaction (the comparison for DWS finals first).") var finalsTogether = false
        @Option(help: "DWM finals per transaction of the dwm job (0: a minute's in one).") var dwmFinalsPerTransaction = DWMJob.Options(brokers: "").dwmFinalsPerTransaction
        @Flag(help: "Run with --read-raw: the dwm job reads ods.raw (keyed by content id here) instead of the micro-queues.") var readRaw = false

        func run() throws {
            let config = try global.resolve()
            let topology = try global.loadTopology(config)
            Shutdown.install()
            let prefix = "bench-\(UUID().uuidString.prefix(8))."
            let admin = try KafkaAdmin(config: KafkaConfig(["bootstrap.servers": config.brokers]).merging(config.kafka))
            for (name, e) in try admin.createTopics(topology.topics.map { NewTopic(name: prefix + $0.name, partitions: $0.partitions) }) {
                if let e { throw ValidationError("cannot create \(name): \(e)") }
            }
            let storePath = NSTemporaryDirectory() + "strata-bench-pipeline-\(prefix)db"
            defer { try? FileManager.default.removeItem(atPath: storePath) }
            try BenchDimensions.load(storePath: storePath, contents: contents, users: users)

            let clock = EventClock(capacity: rate * (seconds + 5), actions: topology.actions.count)
            let rawWatch = try LatencyWatcher(config: config, topic: prefix + Topology.raw) { value, arrival in
                clock.rawArrived(value, at: arrival)
            }
            let dwsWatch = try LatencyWatcher(config: config, topic: prefix + Topology.dws) { value, arrival in
                clock.dwsArrived(value, at: arrival, actions: topology.actions, outOfOrdernessMs: outOfOrdernessMs)
            }
            var broker = BrokerSize(pid: brokerPid)
            let child = try startRun(config: config, prefix: prefix, storePath: storePath)
            let sampler = ProcessSampler(pid: child.processIdentifier)
            stderrLine("strata run started (pid \(child.processIdentifier)); waiting for it to join its groups")
            Thread.sleep(forTimeInterval: 8)

            let sent = try produce(config: config, prefix: prefix, topology: topology, clock: clock)
            stderrLine("produced \(sent) events; waiting for strata run to finish (it flushes after 10 s without input)")
            child.waitUntilExit()
            sampler.stop()
            broker.finish()
            Thread.sleep(forTimeInterval: 2)
            rawWatch.stop(); dwsWatch.stop()

            let r = clock.report(outOfOrdernessMs: outOfOrdernessMs)
            let childOut = String(decoding: (child.standardOutput as! Pipe).fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            print("{\"bench\":\"pipeline\",\"rate\":\(rate),\"seconds\":\(seconds),\"sent\":\(sent),\"contents\":\(contents),\"users\":\(users),"
                  + "\"early_interval_ms\":\(earlyIntervalMs),\"out_of_orderness_ms\":\(outOfOrdernessMs),\"finals_together\":\(finalsTogether),\"read_raw\":\(readRaw),"
                  + "\"dwm_finals_per_transaction\":\(dwmFinalsPerTransaction)}")
            print("{\"bench\":\"pipeline.freshness\",\"broker_baseline_ms\":\(r.raw.json),\"dws_early_ms\":\(r.early.json),"
                  + "\"dws_final_after_minute_end_plus_ooo_ms\":\(r.final.json),\"early_p99_over_baseline_p99\":\(String(format: "%.1f", r.early.p99 / max(r.raw.p99, 0.001))),"
                  + "\"events_visible_in_dws\":\(r.early.count),\"target_early_p99_ms\":5000,\"target_final_ms\":2000}")
            print("{\"bench\":\"pipeline.memory\",\"max_cells_per_minute\":\(r.maxCellsPerMinute),\"run_peak_rss_mb\":\(sampler.peakRSSKiB / 1024),"
                  + "\"run_cpu_s\":\(String(format: "%.1f", sampler.cpuSeconds)),\"target_rss_mb_at_1m_cells\":1024"
                  + broker.fields.sorted { $0.key < $1.key }.map { ",\"\($0.key)\":\($0.value)" }.joined() + "}")
            for line in childOut.split(separator: "\n") where line.hasPrefix("{") { print("{\"bench\":\"pipeline.accounting\",\"run\":\(line)}") }
            if child.terminationStatus != 0 { throw ValidationError("strata run exited with \(child.terminationStatus)") }
        }

        private func startRun(config: StrataConfig, prefix: String, storePath: String) throws -> Process {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: try ownExecutable())
            var args = finalsTogether ? ["run", "--finals-together"] : ["run"]
            if readRaw { args.append("--read-raw") }
            args += ["--topic-prefix", prefix, "--brokers", config.brokers, "--redis", config.redisURL,
                        "--store", "sqlite:" + storePath, "--until-idle", "10", "--log-format", "json", "--log-level", runLogLevel,
                        "--early-interval-ms", "\(earlyIntervalMs)", "--out-of-orderness-ms", "\(outOfOrdernessMs)",
                        "--dwm-finals-per-transaction", "\(dwmFinalsPerTransaction)"]
            if let t = config.topologyPath { args += ["--topology", t] }
            for (k, v) in config.kafka { args += ["-X", "\(k)=\(v)"] }
            p.arguments = args
            p.standardOutput = Pipe()
            let log = NSTemporaryDirectory() + "strata-bench-pipeline-\(prefix)log"
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            stderrLine("strata run logs: \(log)")
            try p.run()
            return p
        }

        /// Paced production: every 10 ms the events due by then, each stamped with the wall clock.
        private func produce(config: StrataConfig, prefix: String, topology: Topology, clock: EventClock) throws -> Int {
            let producer = try KafkaProducer(config: config.producerConfig(clientId: "strata-bench-pipeline"))
            let raw = producer.topic(prefix + Topology.raw)
            let actions = topology.actions
            let mix: [String: Double] = ["expose": 60, "click": 15, "play": 15, "like": 5, "share": 2, "comment": 2, "report": 1]
            let weights = actions.map { mix[$0] ?? 1 }
            let cumulative = weights.reduce(into: [Double]()) { $0.append(($0.last ?? 0) + $1) }
            var rng = SystemRandomNumberGenerator()
            var line: [UInt8] = []
            line.reserveCapacity(256)
            var progress = Progress()
            let started = ContinuousClock.now
            var n = 0
            let total = rate * seconds
            while n < total && !Shutdown.isRequested {
                let due = min(total, Int((ContinuousClock.now - started).seconds * Double(rate)) + 1)
                while n < due {
                    let ms = wallMs()
                    let content = Int.random(in: 0..<contents, using: &rng), user = Int.random(in: 0..<users, using: &rng)
                    let x = Double.random(in: 0..<cumulative.last!, using: &rng)
                    let action = cumulative.firstIndex { x < $0 } ?? 0
                    let contentId = DimensionGenerator.contentId(content)
                    line.removeAll(keepingCapacity: true)
                    line.append(contentsOf: "{\"event_id\":\"b\(n)\",\"ts\":\(ms),\"action\":\"\(actions[action])\",\"content_id\":\"\(contentId)\",".utf8)
                    line.append(contentsOf: "\"user_id\":\"\(DimensionGenerator.userId(user))\",\"strategy\":\"s\(n % 4)\",".utf8)
                    line.append(contentsOf: "\"device\":{\"os\":\"android\",\"app_ver\":\"8.2.1\"},\"page\":\"feed\"".utf8)
                    if actions[action] == "play" { line.append(contentsOf: ",\"duration_ms\":\(1_000 + n % 30_000)".utf8) }
                    line.append(UInt8(ascii: "}"))
                    clock.sent(seq: n, at: ms, minute: ms - ms % 60_000, content: content, action: action)
                    var key = contentId
                    try key.withUTF8 { k in try line.withUnsafeBytes { v in try producer.produce(to: raw, key: UnsafeRawBufferPointer(k), value: v, copy: true) } }
                    n += 1
                }
                producer.poll()
                progress.update("produced \(n)/\(total) events")
                Thread.sleep(forTimeInterval: 0.01)
            }
            progress.finish()
            try producer.flush(timeoutMs: 60_000)
            return n
        }

        private func ownExecutable() throws -> String {
            let path = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
            return path
        }
    }
}

func wallMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

/// Produce times of the benchmark's events, by sequence number and by (minute, content, action)
/// in produce order, and the latencies observed by the watchers.
final class EventClock: Sendable {
    struct Key: Hashable { let minute: Int64; let content: Int32; let action: Int8 }
    struct Distribution {
        var values: [Double]
        var count: Int { values.count }
        var p50: Double { percentile(0.50) }
        var p99: Double { percentile(0.99) }
        func percentile(_ q: Double) -> Double { values.isEmpty ? 0 : values[min(values.count - 1, Int(Double(values.count) * q))] }
        var json: String {
            "{\"p50\":\(Int(p50)),\"p90\":\(Int(percentile(0.9))),\"p99\":\(Int(p99)),\"max\":\(Int(values.last ?? 0)),\"n\":\(count)}"
        }
    }
    struct State {
        var sentAt: [Int64]
        var sequences: [Key: [Int32]] = [:]
        var included: [Key: Int] = [:]
        var raw: [Double] = [], early: [Double] = []
        /// Per DWS final: its minute and how long after minute end + out-of-orderness it arrived.
        var final: [(minute: Int64, ms: Double)] = []
        var finals: Set<String> = []
        var uvByMinute: [Int64: Int] = [:]
        var lastSentMs: Int64 = 0
    }
    private let state: Mutex<State>

    init(capacity: Int, actions: Int) {
        state = Mutex(State(sentAt: [Int64](repeating: 0, count: capacity)))
    }

    func sent(seq: Int, at ms: Int64, minute: Int64, content: Int, action: Int) {
        state.withLock {
            if seq < $0.sentAt.count { $0.sentAt[seq] = ms }
            $0.sequences[Key(minute: minute, content: Int32(content), action: Int8(action)), default: []].append(Int32(seq))
            $0.lastSentMs = ms
        }
    }

    /// A raw event read back from ods.raw: the broker's own latency.
    func rawArrived(_ value: UnsafeRawBufferPointer, at arrival: Int64) {
        // "event_id":"b<seq>" is the first field.
        let prefix = Array("{\"event_id\":\"b".utf8)
        guard value.count > prefix.count, zip(value, prefix).allSatisfy({ $0 == $1 }) else { return }
        var seq = 0
        for byte in value[prefix.count...] {
            guard byte >= 0x30, byte <= 0x39 else { break }
            seq = seq * 10 + Int(byte - 0x30)
        }
        state.withLock { if seq < $0.sentAt.count, $0.sentAt[seq] > 0 { $0.raw.append(Double(arrival - $0.sentAt[seq])) } }
    }

    /// A DWS row: every event of its (minute, content, action) sequences up to the row's counts
    /// that no earlier row included is visible now.
    func dwsArrived(_ value: UnsafeRawBufferPointer, at arrival: Int64, actions: [String], outOfOrdernessMs: Int64) {
        guard let o = try? JSONSerialization.jsonObject(with: Data(value)) as? [String: Any],
              let minute = (o["minute"] as? NSNumber)?.int64Value, let cid = o["content_id"] as? String,
              let content = Int32(cid.dropFirst()) else { return }
        let isFinal = o["final"] as? Bool ?? false
        state.withLock { s in
            for (a, name) in actions.enumerated() {
                let k = (o[name] as? NSNumber)?.intValue ?? 0
                let key = Key(minute: minute, content: content, action: Int8(a))
                let before = s.included[key] ?? 0
                guard k > before, let seqs = s.sequences[key] else { continue }
                for i in before..<min(k, seqs.count) { s.early.append(Double(arrival - s.sentAt[Int(seqs[i])])) }
                s.included[key] = k
            }
            if isFinal, s.finals.insert("\(minute)|\(cid)").inserted {
                s.uvByMinute[minute, default: 0] += (o["uv"] as? NSNumber)?.intValue ?? 0
                s.final.append((minute, Double(arrival - (minute + 60_000 + outOfOrdernessMs))))
            }
        }
    }

    func report(outOfOrdernessMs: Int64) -> (raw: Distribution, early: Distribution, final: Distribution, maxCellsPerMinute: Int) {
        state.withLock { s in
            // Only whole minutes of input count for cells per minute.
            let first = s.sentAt.first ?? 0
            let whole = s.uvByMinute.filter { $0.key >= first && $0.key + 60_000 <= s.lastSentMs }
            // Finals of minutes that closed while input was still flowing, judged against the end
            // of the input (later ones are flushed at the end). Judged against the input sent so
            // far when each final arrived, as before 2026-12-03, a final faster than 2 s was left
            // out: the figure could not go below 2 s.
            let final = s.final.filter { $0.minute + 60_000 + outOfOrdernessMs + 2_000 <= s.lastSentMs }.map(\.ms)
            return (Distribution(values: s.raw.sorted()), Distribution(values: s.early.sorted()), Distribution(values: final.sorted()),
                    whole.values.max() ?? 0)
        }
    }
}

/// Reads a topic from the beginning on its own thread and hands each record's value and arrival
/// time (wall ms) to `body`, on a second thread: the reading thread only stamps and copies, so
/// the time `body` takes (JSON parsing) never delays the next poll and shows up as latency.
final class LatencyWatcher: Sendable {
    private let stopFlag = StopFlag()
    private let readerDone = StopFlag()
    private let done = DispatchSemaphore(value: 0)
    private let processed = DispatchSemaphore(value: 0)
    /// Batches read and not yet processed: (values, arrival).
    private let pending = Mutex<[([[UInt8]], Int64)]>([])
    private let wake = DispatchSemaphore(value: 0)

    init(config: StrataConfig, topic: String, body: @escaping @Sendable (UnsafeRawBufferPointer, Int64) -> Void) throws {
        let consumer = try KafkaConsumer(config: config.consumerConfig(groupId: nil, clientId: "strata-bench-watch"))
        let n = try consumer.partitionCount(topic: topic)
        try consumer.assign((0..<n).map { TopicPartitionOffset(topic: topic, partition: Int32($0), offset: TopicPartitionOffset.first) })
        let box = UncheckedBox(consumer)
        let reader = Thread { [self] in
            while !stopFlag.isSet {
                guard let batch = try? box.value.poll(maxMessages: 5_000, timeoutMs: 50), !batch.isEmpty else { continue }
                let arrival = wallMs()
                let values = batch.compactMap { m in m.error == nil ? Array(m.value) : nil }
                pending.withLock { $0.append((values, arrival)) }
                wake.signal()
            }
            box.value.close()
            readerDone.set()
            done.signal()
            wake.signal()
        }
        reader.name = "strata-bench-watch"
        let processor = Thread { [self] in
            while true {
                wake.wait()
                let batches = pending.withLock { p in defer { p.removeAll() }; return p }
                for (values, arrival) in batches {
                    for v in values { v.withUnsafeBytes { body($0, arrival) } }
                }
                if readerDone.isSet && pending.withLock({ $0.isEmpty }) { break }
            }
            processed.signal()
        }
        processor.name = "strata-bench-parse"
        reader.start()
        processor.start()
    }

    /// Stops reading, then waits until everything read has been processed.
    func stop() {
        stopFlag.set()
        done.wait()
        processed.wait()
    }
}

/// Peak RSS and CPU time of a child process, from /proc every 250 ms; also each thread's CPU
/// time (/proc/PID/task), kept per thread at its last sample, so threads that ended still count.
final class ProcessSampler: Sendable {
    private let stats = Mutex((peakKiB: 0, cpuTicks: 0))
    private let threads = Mutex([Int32: (name: String, ticks: Int)]())
    private let stopFlag = StopFlag()
    private let done = DispatchSemaphore(value: 0)

    init(pid: Int32) {
        let thread = Thread { [self] in
            while !stopFlag.isSet {
                if let now = ProcessStats.read(pid: pid) {
                    stats.withLock { $0 = (max($0.peakKiB, now.peakRSSKiB), now.cpuTicks) }
                    sampleThreads(pid: pid)
                }
                Thread.sleep(forTimeInterval: 0.25)
            }
            done.signal()
        }
        thread.start()
    }

    private func sampleThreads(pid: Int32) {
        guard let tids = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") else { return }
        for t in tids {
            guard let tid = Int32(t), let stat = try? String(contentsOfFile: "/proc/\(pid)/task/\(t)/stat", encoding: .utf8),
                  let ticks = ProcessStats.parseStat(stat),
                  let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { continue }
            let name = String(stat[stat.index(after: open)..<close])
            threads.withLock { $0[tid] = (name, max($0[tid]?.ticks ?? 0, ticks)) }
        }
    }

    func stop() {
        stopFlag.set()
        done.wait()
    }

    var peakRSSKiB: Int { stats.withLock { $0.peakKiB } }
    var cpuSeconds: Double { Double(stats.withLock { $0.cpuTicks }) / Double(ProcessStats.ticksPerSecond) }

    /// CPU-seconds per thread group: the jobs' threads by name (`strata-split`, `strata-dwm`…, as
    /// `JobRunner` names them), librdkafka's (`rdk:*`) together, the rest (the main thread, the
    /// changelog follower…) as `other`. Up to the last sample (≤ 250 ms short).
    var threadCPUSeconds: [String: Double] {
        let jobThreads: Set = ["strata-split", "strata-dwm", "strata-archive", "strata-sink"]
        var out: [String: Double] = [:]
        for (_, t) in threads.withLock({ $0 }) {
            let group = jobThreads.contains(t.name) ? t.name : t.name.hasPrefix("rdk:") ? "librdkafka" : "other"
            out[group, default: 0] += Double(t.ticks) / Double(ProcessStats.ticksPerSecond)
        }
        return out
    }
}
