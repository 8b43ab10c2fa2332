import ArgumentParser
import Foundation
import StrataCollect
import StrataCore
import StrataDims
import StrataGen
import StrataKafka

struct GenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gen", abstract: "Synthetic workloads.", subcommands: [Events.self, Dims.self])

    struct Dims: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Generate content dimensions and user profiles for the ids `gen events` uses (c%08d, u%09d).",
            discussion: "Writes two CSV files for `strata dims load`, or loads them directly with --load.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Contents (same as gen events --contents).") var contents = 10_000
        @Option(help: "Users (same as gen events --users).") var users = 100_000
        @Option(help: "Random seed.") var seed: UInt64 = 42
        @Option(help: "Directory for content.csv and users.csv.") var out = "data/dims"
        @Flag(help: "Write the store and dim.changelog directly instead of CSV files.") var load = false
        @Option(help: "Dimension store when --load (env STRATA_STORE).") var store: String?
        @Option(help: "Prefix for every topic name.") var topicPrefix = ""

        func run() throws {
            let config = try global.resolve()
            let gen = DimensionGenerator(contents: contents, users: users, seed: seed)
            let contentDims = gen.allContents(), userDims = gen.allUsers()
            if load {
                try writeDimensions(config: config, storeAddress: store, topicPrefix: topicPrefix, contents: contentDims, users: userDims)
                return
            }
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            try Data(DimensionCSV.encode(contents: contentDims)).write(to: URL(fileURLWithPath: out + "/content.csv"))
            try Data(DimensionCSV.encode(users: userDims)).write(to: URL(fileURLWithPath: out + "/users.csv"))
            stderrLine("wrote \(contentDims.count) contents to \(out)/content.csv and \(userDims.count) users to \(out)/users.csv")
        }
    }

    struct Events: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Generate raw behaviour events (NDJSON) to a file, a topic, or standard output.",
            discussion: """
            Zipf-skewed content popularity; user sessions of exposes → click → play heartbeats → reactions;
            configurable shares of invalid ids (filtered by split), unknown ids, malformed lines (dead-lettered),
            duplicates, out-of-order and very late events. Deterministic for a --seed.
            Bounded: --count N (event times spaced by --events-per-second, ending now).
            Live: --rate R --duration D (paced in real time, event time = wall clock).
            --http URL posts the events to a collection gateway (`strata collect`) in NDJSON batches
            of --http-batch, the way apps do, instead of writing a topic. One connection waits for each
            answer (the broker's acknowledgement, ~5-10 ms), so it carries about 100 requests/s: for
            --rate R use --http-batch of at least R/100 (e.g. 100 for 5 000 events/s).
            The generator's own accounting is printed to stderr as one JSON line (and to --stats-file).
            """)

        @OptionGroup var global: GlobalOptions
        @Option(help: "Number of events (bounded mode).") var count: Int?
        @Option(help: "Events per second (live mode).") var rate: Double?
        @Option(help: "How long to run in live mode (e.g. 60s, 10m).") var duration: DurationArgument?
        @Option(help: "Write NDJSON to this file.") var out: String?
        @Option(help: "Produce to this topic instead of a file.") var topic: String?
        @Option(help: "Post to this collection gateway, e.g. http://127.0.0.1:8090/v1/events.") var http: String?
        @Option(help: "Events per request with --http.") var httpBatch = 20
        @Option(help: "Distinct known contents.") var contents = 10_000
        @Option(help: "Distinct known users.") var users = 100_000
        @Option(help: "Share of events with a non-content id (\"\", \"0\", \"null\", …).") var invalidShare = 0.01
        @Option(help: "Share of events with a well-formed content id unknown to the dimensions.") var unknownShare = 0.01
        @Option(help: "Share of malformed lines.") var malformedShare = 0.005
        @Option(help: "Share of exact duplicates of an earlier event.") var duplicateShare = 0.01
        @Option(help: "Share of events up to 4 s out of order.") var outOfOrderShare = 0.05
        @Option(help: "Share of events minutes late.") var lateShare = 0.002
        @Option(help: "Event-time spacing in bounded mode.") var eventsPerSecond: Double = 10_000
        @Option(help: "Event time (epoch ms) of the first event in bounded mode; default: so the last event is now.") var startMs: Int64?
        @Option(help: "Random seed.") var seed: UInt64 = 42
        @Option(help: "Write the generator's accounting as JSON to this file.") var statsFile: String?

        func validate() throws {
            guard (count != nil) != (rate != nil) else { throw ValidationError("give either --count N or --rate R --duration D") }
            if rate != nil && duration == nil { throw ValidationError("--rate needs --duration") }
            if [out, topic, http].compactMap({ $0 }).count > 1 { throw ValidationError("give one of --out, --topic, --http") }
            if httpBatch < 1 { throw ValidationError("--http-batch must be at least 1") }
        }

        func run() throws {
            let config = try global.resolve()
            Shutdown.install()
            let nowMs = Int64(Date().timeIntervalSince1970 * 1000)
            var workload = EventWorkload()
            workload.contents = contents; workload.users = users; workload.seed = seed
            workload.invalidIdShare = invalidShare; workload.unknownIdShare = unknownShare; workload.malformedShare = malformedShare
            workload.duplicateShare = duplicateShare; workload.outOfOrderShare = outOfOrderShare; workload.lateShare = lateShare
            if let rate {
                workload.eventsPerSecond = rate
                workload.startMs = nowMs
            } else {
                workload.eventsPerSecond = eventsPerSecond
                workload.startMs = startMs ?? nowMs - Int64(Double(count!) / eventsPerSecond * 1000)
            }
            workload.actions = try global.loadTopology(config).actions
            try workload.validate()
            var gen = EventGenerator(workload)

            let sink = try Sink(out: out, topic: topic, http: http, httpBatch: httpBatch, config: config)
            var progress = Progress()
            var line: [UInt8] = []
            line.reserveCapacity(512)
            var generated = 0
            let target = count ?? Int.max
            let started = ContinuousClock.now
            let deadline = duration.map { started + $0.duration }
            while generated < target && !Shutdown.isRequested {
                if let rate {
                    // Pace in real time: event number `generated` is due at generated / rate seconds.
                    let due = started + .milliseconds(Int64(Double(generated) / rate * 1000))
                    let now = ContinuousClock.now
                    if let deadline, now >= deadline { break }
                    if due > now { Thread.sleep(forTimeInterval: min(0.05, Double((due - now).components.attoseconds) / 1e18 + Double((due - now).components.seconds))) ; continue }
                }
                line.removeAll(keepingCapacity: true)
                _ = gen.next(into: &line)
                try sink.write(line)
                generated += 1
                if generated % 10_000 == 0 { progress.update("generated \(generated) events") }
            }
            try sink.finish()
            progress.finish()
            let counts = gen.stats
            var stats: [String: Any] = ["total": counts.total, "valid": counts.valid, "unknown_id": counts.unknownId, "invalid_id": counts.invalidId,
                                        "malformed": counts.malformed, "duplicate": counts.duplicate, "out_of_order": counts.outOfOrder,
                                        "late": counts.late, "routed": counts.routed, "by_action": counts.byAction]
            if let posted = sink.httpStats {
                stats["http"] = ["requests": posted.requests, "accepted": posted.accepted, "rejected": posted.rejected, "retries": posted.retries]
            }
            let json = String(decoding: try JSONSerialization.data(withJSONObject: stats, options: [.sortedKeys]), as: UTF8.self)
            stderrLine(json)
            if let statsFile { try json.write(toFile: statsFile, atomically: true, encoding: .utf8) }
        }
    }
}

/// Where generated lines go: a file, a topic, a collection gateway, or standard output.
private final class Sink {
    private var file: UnsafeMutablePointer<FILE>?
    private var producer: KafkaProducer?
    private var topic: KafkaTopic?
    private var poster: BatchPoster?
    private var sent = 0
    private var ownsFile = false

    init(out: String?, topic name: String?, http: String?, httpBatch: Int, config: StrataConfig) throws {
        if let http {
            poster = try BatchPoster(url: http, batchSize: httpBatch)
        } else if let name {
            let newProducer = try KafkaProducer(config: config.producerConfig(clientId: "strata-gen"))
            producer = newProducer
            topic = newProducer.topic(name)
        } else if let out {
            guard let opened = fopen(out, "w") else { throw ValidationError("cannot write \(out): \(String(cString: strerror(errno)))") }
            file = opened
            ownsFile = true
        } else {
            file = fdopen(STDOUT_FILENO, "w")
        }
    }

    var httpStats: BatchPoster.Stats? { poster?.stats }

    func write(_ line: [UInt8]) throws {
        if let poster {
            try poster.add(line)
        } else if let producer, let topic {
            try line.withUnsafeBytes { try producer.produce(to: topic, key: nil, value: $0, copy: true) }
            sent += 1
            if sent % 10_000 == 0 { producer.poll() }
        } else if let file {
            _ = line.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
            fputc(0x0A, file)
        }
    }

    func finish() throws {
        try poster?.flush()
        if let producer { try producer.flush(timeoutMs: 120_000) }
        if let file { fflush(file); if ownsFile { fclose(file) } }
    }
}
