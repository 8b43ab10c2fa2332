public import ArgumentParser
import Foundation
import StrataCLI
import StrataCore
import StrataGen
import StrataKafka
import StrataSplit
import StrataDWM

/// `strata bench …`: the benchmarks, registered as a subcommand by the strata executable.
public struct BenchCommand: ParsableCommand {
    public init() {}

    public static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks, each beside its baseline in the same run.", subcommands: [Split.self, DWM.self, Enrich.self, Pipeline.self, CatchUp.self, QueryBench.self, BenchServe.self, Collect.self, CollectBaseline.self, Soak.self])

    struct DWM: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The dwm engine in-process (split routing + minute windows + collect) and the dwm job through the broker, each vs a copy baseline.",
            discussion: """
            In-process: the known-content gate is an in-memory check (warm cache); no enrichment (see `bench enrich`).

            Through the broker (--broker-events N): N generated events are split into fresh micro-queues (not timed); then (a) a copy loop consumes them and copies them to one topic with one transaction per early-revision interval, the baseline, and (b) the dwm job (SQLite store, Redis, enrichment, transactions) processes them. Rates are from the first record to the last; the dwm job's final flush is reported apart. Build with -c release.
            """)

        @OptionGroup var global: GlobalOptions
        @Option(help: "Events per round.") var events = 1_000_000
        @Option(help: "Rounds.") var rounds = 3
        @Option(help: "Events for the through-the-broker run; 0 skips it.") var brokerEvents = 0
        @Option(help: "Early-revision (transaction) interval of the broker run, ms.") var earlyIntervalMs: Int64 = 2_000

        func run() throws {
            let config = try global.resolve()
            let topology = try global.loadTopology(config)
            let (arena, offsets) = Split.generate(events, actions: topology.actions)
            let router = try SplitRouter(topology: topology)
            print("{\"bench\":\"engine.inprocess\",\"events\":\(events),\"bytes_per_event\":\(arena.count / max(events, 1))}")
            var copyRates: [Double] = [], engineRates: [Double] = []
            for round in 0..<rounds {
                let c = Split.timeCopy(arena, offsets)
                let engine = WindowEngine(config: WindowConfig(topology: topology)) { $0.count == 9 && $0[1] != UInt8(ascii: "9") }
                var rows = 0
                let t0 = ContinuousClock.now
                arena.withUnsafeBytes { src in
                    for i in 0..<(offsets.count - 1) {
                        let msg = UnsafeRawBufferPointer(rebasing: src[offsets[i]..<offsets[i + 1]])
                        var scanned: ScannedEvent?
                        switch router.route(msg, scanned: &scanned) {
                        case .route(let a, _), .routeDecoded(let a, _):
                            // One scan per event: the router's result feeds the engine.
                            engine.apply(scanned: scanned!, in: msg, source: Source(topic: a, partition: 0), offset: Int64(i))
                        case .filter, .deadLetter: break
                        }
                        if i % 200_000 == 199_999 { rows += engine.collect(nowMs: 0).dws.count }
                    }
                }
                rows += engine.flushAll(nowMs: 0).dws.count
                let d = (ContinuousClock.now - t0).seconds
                copyRates.append(Double(events) / c.seconds)
                engineRates.append(Double(events) / d)
                print("{\"round\":\(round),\"copy_baseline_events_per_s\":\(Int(copyRates.last!)),\"engine_events_per_s\":\(Int(engineRates.last!)),\"dws_rows\":\(rows),\"balanced\":\(engine.accounting.isBalanced)}")
            }
            let mc = Split.median(copyRates), me = Split.median(engineRates)
            print("{\"bench\":\"engine.inprocess\",\"median_copy_baseline_events_per_s\":\(Int(mc)),\"median_engine_events_per_s\":\(Int(me)),\"engine_over_baseline\":\(String(format: "%.4f", me / mc)),\"target_events_per_s\":1500000}")
            if brokerEvents > 0 { try broker(config: config, topology: topology) }
        }
    }

    struct Split: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Split throughput: in-process (parse + validate + route) and through the broker.",
            discussion: """
            In-process: the same generated events (~200 bytes) are (a) only copied into an output arena — the
            baseline — and (b) parsed, validated and routed. Through the broker: the same pre-loaded topic is
            (a) copied consume→produce and (b) split, both by the same transactional loop. Rounds alternate
            baseline and split so machine noise hits both. Prints one JSON line per measurement and the ratio.
            Build with -c release for meaningful numbers.
            """)
        @OptionGroup var global: GlobalOptions
        @Option(help: "Events per in-process round.") var events = 1_000_000
        @Option(help: "In-process rounds (each runs baseline and split).") var rounds = 5
        @Option(help: "Events for the through-the-broker run; 0 skips it.") var brokerEvents = 0
        @Option(help: "Partitions of the broker benchmark topic.") var partitions = 4
        @Option(help: "Records per transaction of the broker run (the split job's --batch-size).") var batchSize = SplitJob.Options(brokers: "").batchSize

        func run() throws {
            let config = try global.resolve()
            let topology = try global.loadTopology(config)
            let (arena, offsets) = Self.generate(events, actions: topology.actions)
            let router = try SplitRouter(topology: topology)
            print("{\"bench\":\"split.inprocess\",\"events\":\(events),\"bytes_per_event\":\(arena.count / max(events, 1)),\"cpu_cores_used\":1}")
            var copyRates: [Double] = [], splitRates: [Double] = []
            for round in 0..<rounds {
                let c = Self.timeCopy(arena, offsets)
                let s = Self.timeSplit(arena, offsets, router)
                copyRates.append(Double(events) / c.seconds)
                splitRates.append(Double(events) / s.seconds)
                print("{\"round\":\(round),\"copy_baseline_events_per_s\":\(Int(copyRates.last!)),\"split_events_per_s\":\(Int(splitRates.last!)),\"routed\":\(s.routed)}")
            }
            let mc = Self.median(copyRates), ms = Self.median(splitRates)
            print("{\"bench\":\"split.inprocess\",\"median_copy_baseline_events_per_s\":\(Int(mc)),\"median_split_events_per_s\":\(Int(ms)),\"split_over_baseline\":\(String(format: "%.3f", ms / mc)),\"target_events_per_s\":1500000}")

            if brokerEvents > 0 { try broker(config: config, topology: topology) }
        }

        // MARK: in-process

        static func generate(_ n: Int, actions: [String]) -> ([UInt8], [Int]) {
            var w = EventWorkload()
            w.actions = actions
            var gen = EventGenerator(w)
            var arena: [UInt8] = []
            arena.reserveCapacity(n * 240)
            var offsets: [Int] = [0]
            offsets.reserveCapacity(n + 1)
            var line: [UInt8] = []
            for _ in 0..<n {
                line.removeAll(keepingCapacity: true)
                _ = gen.next(into: &line)
                arena.append(contentsOf: line)
                offsets.append(arena.count)
            }
            return (arena, offsets)
        }

        static func timeCopy(_ arena: [UInt8], _ offsets: [Int]) -> (seconds: Double, routed: Int) {
            var out = [UInt8](repeating: 0, count: arena.count)
            let t0 = ContinuousClock.now
            arena.withUnsafeBytes { src in
                out.withUnsafeMutableBytes { dst in
                    for i in 0..<(offsets.count - 1) {
                        let start = offsets[i], len = offsets[i + 1] - offsets[i]
                        (dst.baseAddress! + start).copyMemory(from: src.baseAddress! + start, byteCount: len)
                    }
                }
            }
            let d = ContinuousClock.now - t0
            blackHole(out[out.count / 2])
            return (d.seconds, offsets.count - 1)
        }

        static func timeSplit(_ arena: [UInt8], _ offsets: [Int], _ router: SplitRouter) -> (seconds: Double, routed: Int) {
            var perAction = [Int](repeating: 0, count: router.actions.count)
            var other = 0
            let t0 = ContinuousClock.now
            arena.withUnsafeBytes { src in
                for i in 0..<(offsets.count - 1) {
                    let msg = UnsafeRawBufferPointer(rebasing: src[offsets[i]..<offsets[i + 1]])
                    switch router.route(msg) {
                    case .route(let a, let key): perAction[a] &+= 1 &+ key.count & 0
                    case .routeDecoded(let a, _): perAction[a] &+= 1
                    case .filter, .deadLetter: other &+= 1
                    }
                }
            }
            let d = ContinuousClock.now - t0
            return (d.seconds, perAction.reduce(0, +))
        }

        static func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }

        // MARK: through the broker

        func broker(config: StrataConfig, topology: Topology) throws {
            let prefix = "bench-\(UUID().uuidString.prefix(8))."
            let admin = try KafkaAdmin(config: KafkaConfig(["bootstrap.servers": config.brokers]).merging(config.kafka))
            var topics = topology.topics.map { NewTopic(name: prefix + $0.name, partitions: partitions) }
            topics.append(NewTopic(name: prefix + "copy", partitions: partitions))
            _ = try admin.createTopics(topics)
            let (arena, offsets) = Self.generate(brokerEvents, actions: topology.actions)
            let producer = try KafkaProducer(config: config.producerConfig(clientId: "strata-bench"))
            let raw = producer.topic(prefix + Topology.raw)
            let t0 = ContinuousClock.now
            try arena.withUnsafeBytes { src in
                for i in 0..<(offsets.count - 1) {
                    try producer.produce(to: raw, key: nil, value: UnsafeRawBufferPointer(rebasing: src[offsets[i]..<offsets[i + 1]]))
                    if i % 10_000 == 0 { producer.poll() }
                }
            }
            try producer.flush(timeoutMs: 300_000)
            let loadSeconds = (ContinuousClock.now - t0).seconds
            print("{\"bench\":\"split.broker.load\",\"events\":\(brokerEvents),\"produce_events_per_s\":\(Int(Double(brokerEvents) / loadSeconds))}")

            func runJob(copy: Bool, group: String) throws -> Double {
                var o = SplitJob.Options(brokers: config.brokers)
                o.kafka = config.kafka
                o.groupId = prefix + group
                o.instanceId = prefix + group
                o.topicPrefix = prefix
                o.untilIdle = .seconds(3)
                o.copyOnlyTo = copy ? prefix + "copy" : nil
                o.batchSize = batchSize
                let job = try SplitJob(options: o, topology: topology)
                try job.run()
                guard let a = job.firstRecordAt, let b = job.lastCommitAt, job.stats.consumed == brokerEvents else {
                    throw ValidationError("\(group) consumed \(job.stats.consumed) of \(brokerEvents)")
                }
                return Double(brokerEvents) / (b - a).seconds
            }
            let copyRate = try runJob(copy: true, group: "copy")
            let splitRate = try runJob(copy: false, group: "split")
            print("{\"bench\":\"split.broker\",\"events\":\(brokerEvents),\"copy_baseline_events_per_s\":\(Int(copyRate)),\"split_events_per_s\":\(Int(splitRate)),\"split_over_baseline\":\(String(format: "%.3f", splitRate / copyRate))}")
        }
    }
}

@inline(never) func blackHole<T>(_ x: T) { _ = x }

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// The calling thread's CPU time: what single-threaded in-process benches time, so that time the
/// thread spends off the CPU (another process on these shared 2 cores) does not count as its work.
enum ThreadCPU {
    static var now: Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
