import Foundation
import CoreMetrics
public import StrataCore

/// Cumulative wall and CPU time per stage of one job's loop: where a job's thread spends its time
/// (poll, the stage's own work, produce, commit waits…), to budget the CPU per event
/// (docs/performance.md, "Where the time goes").
///
/// Read once per stage per batch, never per record: two `clock_gettime` calls per lap (the
/// monotonic clock, and the calling thread's CPU clock). CPU is the job's thread only: what
/// librdkafka's own threads spend (compression, the broker connections) is outside it, which is
/// the point: wall − CPU of a stage is time the job's thread waited (the broker, Redis, a full
/// produce queue). Laps chain: each `lap(stage)` adds the time since the previous lap, so the
/// stages partition the thread's time with no gaps. A stage may lap finer stages of its own inside
/// a call of the loop (the dwm stage's `window_apply`, `enrich_lookup`…); the loop's lap after
/// the call then gets only the rest. Used by the one thread that runs the job; exported as
/// `strata_job_stage_seconds_total{job, stage, clock="wall"|"cpu"}` and in the job's summary.
public final class StageClock {
    struct Mark {
        let wallNs: UInt64
        let cpuNs: UInt64
    }

    /// One stage's totals.
    public struct Totals: Sendable, Encodable {
        public var wallNs: UInt64 = 0
        public var cpuNs: UInt64 = 0
        /// Laps recorded (batches, transactions, polls).
        public var laps = 0

        enum CodingKeys: String, CodingKey { case wallS = "wall_s", cpuS = "cpu_s", laps }
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode((Double(wallNs) / 1e6).rounded() / 1e3, forKey: .wallS)
            try c.encode((Double(cpuNs) / 1e6).rounded() / 1e3, forKey: .cpuS)
            try c.encode(laps, forKey: .laps)
        }
    }

    public let job: String
    public private(set) var names: [String] = []
    private var totals: [Totals] = []
    private var wallCounters: [FloatingPointCounter] = []
    private var cpuCounters: [FloatingPointCounter] = []
    private let registry: MetricsRegistry
    /// The first `start()`, and the previous lap.
    private var threadStart: Mark?
    private var last: Mark?

    public init(job: String, registry: MetricsRegistry = .shared) {
        self.job = job
        self.registry = registry
    }

    /// The index of `name`, registered on first use (at start-up, not per batch).
    public func stage(_ name: String) -> Int {
        if let i = names.firstIndex(of: name) { return i }
        names.append(name)
        totals.append(Totals())
        let help = "Cumulative time of a job's thread per stage of its loop (wall: elapsed; cpu: the thread's CPU time)"
        wallCounters.append(registry.secondsCounter("strata_job_stage_seconds_total", help: help,
                                                    labels: ["job": job, "stage": name, "clock": "wall"]))
        cpuCounters.append(registry.secondsCounter("strata_job_stage_seconds_total", help: help,
                                                   labels: ["job": job, "stage": name, "clock": "cpu"]))
        return names.count - 1
    }

    /// Starts the chain (and the thread's total) now: the next lap counts from here.
    public func start() {
        let now = Self.now()
        last = now
        if threadStart == nil { threadStart = now }
    }

    /// Adds the time since the previous lap (or `start()`) to `stage`.
    public func lap(_ stage: Int) {
        let now = Self.now()
        guard let since = last else { start(); return }
        let wall = now.wallNs &- since.wallNs, cpu = now.cpuNs &- since.cpuNs
        totals[stage].wallNs &+= wall
        totals[stage].cpuNs &+= cpu
        totals[stage].laps += 1
        wallCounters[stage].increment(by: Double(wall) / 1e9)
        cpuCounters[stage].increment(by: Double(cpu) / 1e9)
        last = now
        if let t = threadStart { thread = Totals(wallNs: now.wallNs &- t.wallNs, cpuNs: now.cpuNs, laps: 1) }
    }

    /// Every stage's totals so far, by name.
    public var snapshot: [String: Totals] {
        var out: [String: Totals] = [:]
        for (i, n) in names.enumerated() { out[n] = totals[i] }
        return out
    }

    /// At the last lap: the wall time since `start()`, and the thread's whole CPU time, start-up
    /// before `start()` included (the group join, the clients' set-up).
    public private(set) var thread = Totals()

    private static func now() -> Mark { Mark(wallNs: read(CLOCK_MONOTONIC), cpuNs: read(CLOCK_THREAD_CPUTIME_ID)) }

    @inline(__always)
    private static func read(_ clock: clockid_t) -> UInt64 {
        var ts = timespec()
        clock_gettime(clock, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}
