import ArgumentParser
import Foundation
import StrataCLI
import StrataCore
import StrataKafka
import StrataRuntime
import Synchronization

extension BenchCommand {
    /// A long run at a steady rate, watched from outside: does anything grow that should not?
    struct Soak: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "soak",
            abstract: "A long `strata run` at a steady rate: RSS, lag, freshness and open cells every 10 s, a plot, and a verdict on growth.",
            discussion: """
            What runs: topics under a fresh prefix, a temporary SQLite store with the
            dimensions (--contents, --users), `strata run` as a child process (split,
            dwm, the changelog follower, and archive + sink unless --no-offline), and
            `strata gen events --rate R` producing the reference workload to ods.raw
            for --minutes (Zipf contents, sessions, 1 % invalid and 1 % unknown ids,
            duplicates, out-of-order and very late events). When the generator stops,
            the jobs drain and exit (strata run --until-idle, 60 s here: each job
            stops after that long without input of its own, so the sink, which reads
            what dwm publishes, stops for good if dwm publishes nothing that long,
            e.g. while it rebuilds its windows after a rebalance; at 15 s that
            happened in a 30-minute run on a busy machine).

            Every --sample-every seconds it records:
              rss_mb       VmRSS of the strata run process (/proc/PID/status)
              cpu_s        its user + system CPU seconds (/proc/PID/stat); cpu_pct:
                           % of one core since the previous sample
              open_cells   (minute, content, user) cells the dwm engine holds: open
                           windows, and final ones kept for the allowed lateness
                           (strata_dwm_open_cells in the run's --metrics-file)
              state_mb     the engine's estimate of that state (strata_dwm_state_bytes)
              lag_<job>    records between a group's committed offsets and the end
                           of its input, read without joining the group. split and
                           dwm are judged; archive and sink are recorded (the
                           archive commits once per roll, every 60 s)
              freshness_s  now - the newest emitted_at among the DWS rows read so
                           far (what the dashboard shows)
              final_age_s  now - the end of the newest minute with a final DWS row
              load_average the machine's 1-minute load average (/proc/loadavg)
            and with --broker-pid the broker's RSS and CPU (Tansu keeps every topic
            in memory).

            The verdict. The load is cut into thirds by time; the first is warm-up
            and is not judged. A series is summarized by its median over the middle
            and over the last third, and must not grow between them by more than:
              memory     max(32 MB, 5 %) for RSS - state_mb, i.e. RSS normalized by
                         the open-window state. More is memory that is not window
                         state: a leak, or a cache without a bound.
              lag        10 s of input (10 x rate records) for split and for dwm; and
                         no sample after warm-up above 60 s of input.
              freshness  5 s; and no sample after warm-up above 60 s.
            The books must balance too: the split consumed every event the generator
            produced, with its counts (routed, filtered, dead-lettered); dwm consumed
            what the split routed; the archive every event; every job's summary line
            balances; strata run exits 0; no group has lag left after the drain.
            PASS when all hold, FAIL (exit status 1) when one does not, INCONCLUSIVE
            (exit status 2) when a third has fewer than 3 samples of a series.

            Files in --out: samples.csv; soak.html (self-contained, an SVG chart per
            series, the thirds shaded and the compared medians dashed); run.log,
            run-summary.json, run.prom, gen.log, gen-stats.json. It prints a summary
            table and one JSON line. Build with -c release; the machine is shared,
            so read CPU and freshness with the other work on it in mind.

            Examples:
              strata bench soak --rate 5000 --minutes 2        # is everything wired?
              strata bench soak --rate 5000 --minutes 30 --brokers 127.0.0.1:29092 \\
                --redis redis://127.0.0.1:26379 \\
                --broker-pid $(cat ~/.cache/strata/soak-stack/broker.pid)
              chromium --headless --screenshot=/tmp/soak.png \\
                --window-size=1400,2000 file://$PWD/data/soak/soak.html
            """)

        @OptionGroup var global: GlobalOptions
        @Option(help: "Events per second produced to ods.raw.") var rate = 5_000
        @Option(help: "Minutes of input (the load period the verdict judges).") var minutes = 30.0
        @Option(help: "Seconds between samples.") var sampleEvery = 10.0
        @Option(help: "Folder for the samples, the HTML page and the logs.") var out = "data/soak"
        @Option(help: "Distinct known contents (dimensions and events).") var contents = 10_000
        @Option(help: "Distinct known users (dimensions and events).") var users = 100_000
        @Option(help: "Early-revision interval of the dwm job, ms.") var earlyIntervalMs: Int64 = 2_000
        @Flag(help: "Run split and dwm only, without the archive and sink jobs.") var noOffline = false
        @Option(help: "Extra arguments for `strata run`, e.g. --run-args='--dwm-batch-size 5000'.") var runArgs = ""
        @Option(help: "Log level of `strata run`.") var runLogLevel = "info"
        @Option(help: "The broker's pid, to record its RSS and CPU beside the pipeline's.") var brokerPid: Int32?
        @Option(help: "Seconds between starting strata run and starting the generator (group joins).") var joinSeconds = 8.0
        @Option(help: "strata run's --until-idle, seconds: how long the jobs wait without input before they stop.") var untilIdle = 60
        @Flag(help: "Keep the store and the archive (in --out/work) after the run.") var keepData = false

        func validate() throws {
            guard rate > 0 else { throw ValidationError("--rate must be positive") }
            guard sampleEvery >= 1 else { throw ValidationError("--sample-every must be at least 1 second") }
            let perThird = minutes * 60 / sampleEvery / 3
            guard perThird >= Double(SoakVerdict.minimumSamplesPerThird) else {
                throw ValidationError("--minutes \(minutes) gives \(Int(perThird)) samples per third at --sample-every \(sampleEvery); the verdict needs \(SoakVerdict.minimumSamplesPerThird) (e.g. --minutes 2 with the default 10 s)")
            }
        }

        /// Judged groups first; the offline ones are recorded only.
        var judgedGroups: [String] { ["split", "dwm"] }
        var recordedGroups: [String] { judgedGroups + (noOffline ? [] : ["archive", "sink"]) }

        func run() throws {
            let config = try global.resolve()
            let topology = try global.loadTopology(config)
            Shutdown.install()
            let work = out + "/work"
            try? FileManager.default.removeItem(atPath: work)
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            let prefix = "soak-\(UUID().uuidString.prefix(8).lowercased())."
            let admin = try KafkaAdmin(config: KafkaConfig(["bootstrap.servers": config.brokers]).merging(config.kafka))
            for (name, e) in try admin.createTopics(topology.topics.map { NewTopic(name: prefix + $0.name, partitions: $0.partitions) }) {
                if let e { throw ValidationError("cannot create \(name): \(e)") }
            }
            let storePath = work + "/store.db"
            try BenchDimensions.load(storePath: storePath, contents: contents, users: users)
            defer { if !keepData { try? FileManager.default.removeItem(atPath: work) } }

            let raw = prefix + Topology.raw
            // `strata run --topic-prefix P` prefixes its groups too.
            var watches: [LagWatch] = [.split(topicPrefix: prefix, groupId: prefix + Topology.splitGroup),
                                       .dwm(topology: topology, topicPrefix: prefix, groupId: prefix + Topology.dwmGroup)]
            if !noOffline {
                watches += [.archive(topicPrefix: prefix, groupId: prefix + Topology.archiveGroup),
                            .sink(topicPrefix: prefix, groupId: prefix + Topology.sinkGroup)]
            }
            let lagConfig = config.consumerConfig(groupId: nil, clientId: "strata-bench-soak-lag")
            let dws = DWSFreshness()
            let dwsWatch = try LatencyWatcher(config: config, topic: prefix + Topology.dws) { value, _ in dws.observe(value) }

            let runProcess = try startRun(config: config, prefix: prefix, storePath: storePath, archive: work + "/ods")
            let runPid = runProcess.processIdentifier
            stderrLine("soak: topics \(prefix)*, strata run pid \(runPid) (log \(out)/run.log); the generator starts in \(Int(joinSeconds)) s")
            Thread.sleep(forTimeInterval: joinSeconds)
            guard runProcess.isRunning else { throw ValidationError("strata run exited with \(runProcess.terminationStatus); see \(out)/run.log") }

            let loadSeconds = Int((minutes * 60).rounded())
            let gen = try startGenerator(config: config, topic: raw, seconds: loadSeconds)
            let started = ContinuousClock.now
            stderrLine("soak: generating \(rate) events/s for \(loadSeconds) s into \(raw) (generator pid \(gen.processIdentifier))")

            var samples: [SoakSample] = []
            var genEndedAt: Double?
            var genCPU = 0.0
            var forwarded = false
            var next = sampleEvery
            var progress = Progress()
            while true {
                // Sleep to the next sample time, watching for the end of the run and for a stop request.
                while (ContinuousClock.now - started).seconds < next && runProcess.isRunning {
                    if Shutdown.isRequested && !forwarded {
                        forwarded = true
                        stderrLine("soak: stopping the generator and strata run")
                        if gen.isRunning { gen.interrupt() }
                        runProcess.interrupt()
                    }
                    if genEndedAt == nil && !gen.isRunning { genEndedAt = (ContinuousClock.now - started).seconds }
                    Thread.sleep(forTimeInterval: 0.1)
                }
                guard runProcess.isRunning, let run = ProcessStats.read(pid: runPid) else { break }
                let t = (ContinuousClock.now - started).seconds
                var s = SoakSample(t: t, phase: gen.isRunning ? .load : .drain, rssMB: Double(run.rssKiB) / 1024, cpuSeconds: run.cpuSeconds)
                if gen.isRunning, let g = ProcessStats.read(pid: gen.processIdentifier) {
                    genCPU = g.cpuSeconds
                    s.generatorCPUSeconds = g.cpuSeconds
                }
                if let p = samples.last, t > p.t { s.cpuPercent = (s.cpuSeconds - p.cpuSeconds) / (t - p.t) * 100 }
                let metrics = (try? String(contentsOfFile: out + "/run.prom", encoding: .utf8)).map(MetricsRegistry.parse) ?? [:]
                s.openCells = metrics["strata_dwm_open_cells"].map { Int($0) }
                s.openWindows = metrics["strata_dwm_open_windows"].map { Int($0) }
                s.stateMB = metrics["strata_dwm_state_bytes"].map { $0 / 1_048_576 }
                s.lag = Self.measure(watches, consumerConfig: lagConfig)
                s.loadAverage = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").first.flatMap { Double($0) }
                let now = wallMs(), d = dws.current
                s.freshnessS = d.newestEmittedAt.map { Double(now - $0) / 1000 }
                s.finalAgeS = d.newestFinalMinute.map { Double(now - ($0 + 60_000)) / 1000 }
                s.dwsRows = d.rows
                if let pid = brokerPid, let b = ProcessStats.read(pid: pid) {
                    s.brokerRSSMB = Double(b.rssKiB) / 1024
                    s.brokerCPUSeconds = b.cpuSeconds
                }
                samples.append(s)
                let status = "t=\(Int(t)) s of \(loadSeconds) (\(s.phase.rawValue)): rss \(Int(s.rssMB)) MB, open cells \(s.openCells.map(String.init) ?? "-"), "
                    + "lag split \(s.lag["split"].map(String.init) ?? "-") dwm \(s.lag["dwm"].map(String.init) ?? "-"), "
                    + "freshness \(s.freshnessS.map { String(format: "%.1f", $0) } ?? "-") s, load \(s.loadAverage.map { String(format: "%.1f", $0) } ?? "-")"
                if progress.enabled { progress.update(status, force: true) } else { stderrLine("soak: " + status) }
                next += sampleEvery
            }
            progress.finish()
            runProcess.waitUntilExit()
            if gen.isRunning {
                stderrLine("soak: strata run exited (status \(runProcess.terminationStatus)) before the generator; stopping it")
                gen.interrupt()
            }
            gen.waitUntilExit()
            dwsWatch.stop()
            let loadEnd = min(genEndedAt ?? Double(loadSeconds), Double(loadSeconds))

            // Accounting: the generator's own counts against the jobs' summaries, and nothing left behind.
            let finalLag = Self.measure(watches, consumerConfig: lagConfig)
            var partitions: [String: Int] = [:]
            for w in watches { partitions[w.job] = w.topics.compactMap { t in topology.topic(named: String(t.dropFirst(prefix.count)))?.partitions }.reduce(0, +) }
            let genStats = Self.json(try? Data(contentsOf: URL(fileURLWithPath: out + "/gen-stats.json"))) ?? [:]
            let summaryText = (try? String(contentsOfFile: out + "/run-summary.json", encoding: .utf8)) ?? ""
            let summaries = summaryText.split(separator: "\n").compactMap { Self.json(Data($0.utf8)) }
            let accounting = Self.accounting(gen: genStats, summaries: summaries, offline: !noOffline, exitStatus: runProcess.terminationStatus,
                                             finalLag: finalLag, partitions: partitions, interrupted: forwarded)

            let verdict = SoakVerdict.evaluate(samples, loadSeconds: loadEnd, rate: Double(rate), groups: judgedGroups, accounting: accounting)
            let summary = SoakSummary(samples, loadSeconds: loadEnd, groups: recordedGroups)
            let produced = genStats["total"] as? Int ?? 0
            let harnessCPU = ProcessStats.read(pid: getpid())?.cpuSeconds ?? 0
            let host = ProcessInfo.processInfo.hostName
            let date = ISO8601DateFormatter().string(from: Date())
            let facts: [(String, String)] = [
                ("date", date), ("host", host), ("cores", "\(ProcessInfo.processInfo.activeProcessorCount)"),
                ("rate", "\(rate) events/s"), ("load", "\(SoakVerdict.format(loadEnd / 60)) min"), ("produced", "\(produced) events"),
                ("jobs", noOffline ? "split + dwm" : "split + dwm + archive + sink"), ("early interval", "\(earlyIntervalMs) ms"),
                ("samples", "\(samples.count) every \(SoakVerdict.format(sampleEvery)) s"), ("topics", prefix + "*"),
                ("Strata CPU per event", produced > 0 ? String(format: "%.1f µs", (samples.last?.cpuSeconds ?? 0) * 1e6 / Double(produced)) : "–"),
                ("generator CPU", String(format: "%.0f s", genCPU)), ("harness CPU", String(format: "%.0f s", harnessCPU)),
            ]
            try SoakReport.csv(samples, groups: recordedGroups).write(toFile: out + "/samples.csv", atomically: true, encoding: .utf8)
            let title = "Strata soak: \(rate) events/s for \(SoakVerdict.format(loadEnd / 60)) minutes"
            try SoakReport.html(samples, verdict: verdict, summary: summary,
                                context: .init(title: title, facts: facts, loadSeconds: loadEnd, groups: recordedGroups, judgedGroups: judgedGroups))
                .write(toFile: out + "/soak.html", atomically: true, encoding: .utf8)

            print(title + " — " + verdict.outcome.rawValue)
            print(facts.map { "\($0.0) \($0.1)" }.joined(separator: " · "))
            print()
            print(TextTable.render(header: ["check", "warm-up", "middle", "last", "max", "allowed growth", "ceiling", "result"], rows: verdict.checks.map { c in
                let f = { (x: Double?) in x.map { SoakVerdict.format($0) } ?? "-" }
                return ["\(c.name) (\(c.unit))", f(c.warmUp), f(c.middle), f(c.last), f(c.max), f(c.allowance), f(c.ceiling), c.outcome.rawValue]
            }))
            print()
            print(TextTable.render(header: ["accounting", "detail", "result"], rows: accounting.map { [$0.what, $0.detail, $0.ok ? "PASS" : "FAIL"] }))
            print()
            print(TextTable.render(header: ["figure", "value"], rows: SoakReport.summaryRows(summary, groups: recordedGroups).map { [$0.0, $0.1] }))
            print()
            print("files: \(out)/soak.html, \(out)/samples.csv, \(out)/run.log")
            var line: [String: Any] = ["bench": "soak", "verdict": verdict.outcome.rawValue, "rate": rate, "load_s": loadEnd, "produced": produced,
                                       "samples": samples.count, "rss_start_mb": summary.rssStartMB, "rss_peak_mb": summary.rssPeakMB,
                                       "cpu_s": summary.cpuSecondsLoad]
            let optional: [(String, Double?)] = [("rss_middle_mb", summary.rssMiddleMB), ("rss_last_mb", summary.rssLastMB),
                                                 ("non_window_middle_mb", summary.nonWindowMiddleMB), ("non_window_last_mb", summary.nonWindowLastMB),
                                                 ("open_cells_max", summary.cellsMax.map(Double.init)), ("freshness_p50_s", summary.freshnessP50),
                                                 ("freshness_max_s", summary.freshnessMax)]
            for case let (key, value?) in optional { line[key] = value }
            line["lag_max"] = summary.lagMax
            if let data = try? JSONSerialization.data(withJSONObject: line, options: [.sortedKeys]) { print(String(decoding: data, as: UTF8.self)) }
            switch verdict.outcome {
            case .pass: return
            case .fail: throw ExitCode(1)
            case .inconclusive: throw ExitCode(2)
            }
        }

        /// Every group's lag, measured side by side (one consumer each; a reading takes a few
        /// round trips per partition, seconds on a busy broker). A failed reading is left out.
        static func measure(_ watches: [LagWatch], consumerConfig: KafkaConfig) -> [String: Int64] {
            let readings = Mutex<[String: Int64]>([:])
            DispatchQueue.concurrentPerform(iterations: watches.count) { i in
                if let lag = try? watches[i].measure(consumerConfig: consumerConfig) { readings.withLock { $0[watches[i].job] = lag } }
            }
            return readings.withLock { $0 }
        }

        static func json(_ data: Data?) -> [String: Any]? {
            data.flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
        }

        /// The books at the end: the generator's counts, each job's summary line, what is left unread.
        static func accounting(gen: [String: Any], summaries: [[String: Any]], offline: Bool, exitStatus: Int32,
                               finalLag: [String: Int64], partitions: [String: Int], interrupted: Bool) -> [SoakVerdict.AccountingLine] {
            var lines: [SoakVerdict.AccountingLine] = []
            func job(_ name: String) -> [String: Any]? { summaries.first { $0["job"] as? String == name } }
            func outcome(_ j: [String: Any]?, _ key: String) -> Int? { (j?["outcomes"] as? [String: Any])?[key] as? Int }
            let split = job("split"), dwm = job("dwm")
            let total = gen["total"] as? Int
            let splitConsumed = split?["consumed"] as? Int
            lines.append(.init(what: "produced = consumed by split", detail: "generator \(total.map(String.init) ?? "?"), split consumed \(splitConsumed.map(String.init) ?? "?")",
                               ok: total != nil && total == splitConsumed))
            let routed = outcome(split, "routed"), filtered = outcome(split, "filtered"), dead = outcome(split, "dead_lettered")
            let gRouted = gen["routed"] as? Int, gInvalid = gen["invalid_id"] as? Int, gMalformed = gen["malformed"] as? Int
            lines.append(.init(what: "split outcomes = generator's counts",
                               detail: "routed \(str(routed)) (\(str(gRouted))), filtered \(str(filtered)) (invalid ids \(str(gInvalid))), dead-lettered \(str(dead)) (malformed \(str(gMalformed)))",
                               ok: routed != nil && routed == gRouted && filtered == gInvalid && dead == gMalformed))
            let dwmConsumed = dwm?["consumed"] as? Int
            lines.append(.init(what: "split routed = consumed by dwm", detail: "\(str(routed)) → \(str(dwmConsumed))", ok: routed != nil && routed == dwmConsumed))
            if offline {
                let archived = job("archive")?["consumed"] as? Int
                lines.append(.init(what: "produced = consumed by archive", detail: "\(str(total)) → \(str(archived))", ok: total != nil && total == archived))
                // On Tansu a reader also sees aborted transactions' rows: then the sink may read more.
                let dwsRows = (dwm?["written"] as? [String: Any])?["dws_rows"] as? Int
                let aborted = dwm?["aborted_transactions"] as? Int ?? 0
                let sink = job("sink")
                let sinkRows = (sink?["consumed"] as? Int).map { $0 - (outcome(sink, "markers") ?? 0) }
                lines.append(.init(what: "DWS rows published = consumed by sink",
                                   detail: "\(str(dwsRows)) → \(str(sinkRows))" + (aborted > 0 ? " (dwm aborted \(aborted) transactions)" : ""),
                                   ok: dwsRows != nil && (sinkRows == dwsRows || (aborted > 0 && (sinkRows ?? 0) >= dwsRows!))))
            }
            for name in ["split", "dwm"] + (offline ? ["archive", "sink"] : []) {
                let j = job(name)
                let outcomes = (j?["outcomes"] as? [String: Any] ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                lines.append(.init(what: "\(name) balanced", detail: j.map { "consumed \($0["consumed"] as? Int ?? -1) = \(outcomes)" } ?? "no summary line",
                                   ok: j?["balanced"] as? Bool == true))
            }
            lines.append(.init(what: "strata run exit status", detail: "\(exitStatus)" + (interrupted ? " (interrupted)" : ""), ok: exitStatus == 0))
            // A transactional producer's commit marker takes an offset after the last record: up to one per partition.
            let left = finalLag.sorted { $0.key < $1.key }
            lines.append(.init(what: "drained (lag after the run, ≤ 1 marker per partition)",
                               detail: left.map { "\($0.key) \($0.value) of ≤ \(partitions[$0.key] ?? 0)" }.joined(separator: ", "),
                               ok: !left.isEmpty && left.allSatisfy { $0.value <= Int64(partitions[$0.key] ?? 0) }))
            return lines
        }

        private static func str(_ x: Int?) -> String { x.map(String.init) ?? "?" }

        private func startRun(config: StrataConfig, prefix: String, storePath: String, archive: String) throws -> Process {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            var args = ["run", "--topic-prefix", prefix, "--brokers", config.brokers, "--redis", config.redisURL,
                        "--store", "sqlite:" + storePath, "--until-idle", "\(untilIdle)", "--log-format", "json", "--log-level", runLogLevel,
                        "--early-interval-ms", "\(earlyIntervalMs)", "--metrics-file", out + "/run.prom"]
            args += noOffline ? ["--no-offline"] : ["--archive", archive]
            if let t = config.topologyPath { args += ["--topology", t] }
            for (k, v) in config.kafka { args += ["-X", "\(k)=\(v)"] }
            args += runArgs.split(separator: " ").map(String.init)
            p.arguments = args
            p.standardOutput = try Self.create(out + "/run-summary.json")
            p.standardError = try Self.create(out + "/run.log")
            try p.run()
            return p
        }

        private func startGenerator(config: StrataConfig, topic: String, seconds: Int) throws -> Process {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            var args = ["gen", "events", "--rate", "\(rate)", "--duration", "\(seconds)s", "--topic", topic, "--brokers", config.brokers,
                        "--contents", "\(contents)", "--users", "\(users)", "--stats-file", out + "/gen-stats.json", "--log-format", "json"]
            if let t = config.topologyPath { args += ["--topology", t] }
            for (k, v) in config.kafka { args += ["-X", "\(k)=\(v)"] }
            p.arguments = args
            p.standardOutput = FileHandle.nullDevice
            p.standardError = try Self.create(out + "/gen.log")
            try p.run()
            return p
        }

        private static func create(_ path: String) throws -> FileHandle {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            return try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        }
    }
}

/// The newest DWS row seen: its `emitted_at`, and the newest minute with a final row.
final class DWSFreshness: Sendable {
    struct State { var newestEmittedAt: Int64?; var newestFinalMinute: Int64?; var rows = 0 }
    private let state = Mutex(State())
    private static let emittedKey = Array(#""emitted_at":"#.utf8)
    private static let minuteKey = Array(#""minute":"#.utf8)
    private static let finalTrue = Array(#""final":true"#.utf8)

    var current: State { state.withLock { $0 } }

    func observe(_ value: UnsafeRawBufferPointer) {
        let emitted = BenchServe.number(after: Self.emittedKey, in: value)
        let isFinal = Self.contains(Self.finalTrue, in: value)
        let minute = isFinal ? BenchServe.number(after: Self.minuteKey, in: value) : nil
        state.withLock { s in
            s.rows += 1
            if let emitted { s.newestEmittedAt = max(s.newestEmittedAt ?? emitted, emitted) }
            if let minute { s.newestFinalMinute = max(s.newestFinalMinute ?? minute, minute) }
        }
    }

    static func contains(_ needle: [UInt8], in bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= needle.count else { return false }
        outer: for i in 0...(bytes.count - needle.count) where bytes[i] == needle[0] {
            for j in 1..<needle.count where bytes[i + j] != needle[j] { continue outer }
            return true
        }
        return false
    }
}
