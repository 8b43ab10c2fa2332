import Foundation
public import Logging
import Synchronization

/// A job as the runner sees it: `strata job <name>` runs one, `strata run` several, with the same
/// summary, the same accounting check and one stop path.
public protocol StreamJob: AnyObject {
    var name: String { get }
    /// Runs until `shouldStop()` (or the job's own end, e.g. `--until-idle`); commits before
    /// returning. `report` gets the accounting after each transaction, on the job's thread.
    func run(shouldStop: @escaping () -> Bool, report: @escaping (JobSummary) -> Void) throws
    /// The accounting; read it from the thread that ran the job, once `run` has returned.
    var summary: JobSummary { get }
}

/// A job's accounting: every record consumed is accounted for in `outcomes` (published, filtered
/// with a reason, dead-lettered, late…); `balanced` says the books close.
public struct JobSummary: Encodable, Sendable {
    public var job: String
    public var consumed = 0
    /// Where the consumed records went; they add up to `consumed` when the books balance.
    public var outcomes: [String: Int] = [:]
    /// Breakdowns of outcomes, e.g. routed records per action, filtered records per reason.
    public var details: [String: [String: Int]] = [:]
    /// Records written besides the consumed ones (rows, markers, checkpoints).
    public var written: [String: Int] = [:]
    public var transactions = 0
    public var abortedTransactions = 0
    /// Wall and CPU time of the job's thread per stage of its loop (`StageClock`), and the thread's
    /// whole (`thread`); empty for jobs without a loop.
    public var stages: [String: StageClock.Totals] = [:]
    public var thread: StageClock.Totals?

    public init(job: String) { self.job = job }

    /// The loop's stage totals (call on the job's thread, e.g. from its `summary`).
    public mutating func addStages(_ clock: StageClock) {
        stages = clock.snapshot
        thread = clock.thread
    }

    public var balanced: Bool { consumed == outcomes.values.reduce(0, +) }

    enum CodingKeys: String, CodingKey {
        case job, consumed, outcomes, details, written, transactions, balanced, stages, thread
        case abortedTransactions = "aborted_transactions"
        case cpuUsPerRecord = "stage_cpu_us_per_record"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(job, forKey: .job)
        try c.encode(consumed, forKey: .consumed)
        try c.encode(outcomes, forKey: .outcomes)
        try c.encode(details, forKey: .details)
        try c.encode(written, forKey: .written)
        try c.encode(transactions, forKey: .transactions)
        try c.encode(abortedTransactions, forKey: .abortedTransactions)
        try c.encode(balanced, forKey: .balanced)
        if !stages.isEmpty {
            try c.encode(stages, forKey: .stages)
            try c.encodeIfPresent(thread, forKey: .thread)
            // µs of the job thread's CPU per consumed record, per stage (the budget's unit).
            let n = Double(max(consumed, 1))
            try c.encode(stages.filter { $0.value.cpuNs > 0 }.mapValues { (Double($0.cpuNs) / 1e3 / n * 100).rounded() / 100 },
                         forKey: .cpuUsPerRecord)
        }
    }

    /// One JSON line, keys sorted: what `strata job` and `strata run` print on exit.
    public var jsonLine: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{\"job\":\"\(job)\"}"
    }

    /// Short human form for progress lines.
    public var progressLine: String {
        let parts = outcomes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
        return "\(job): consumed \(consumed)" + (parts.isEmpty ? "" : ", " + parts.joined(separator: ", "))
    }
}

/// Runs jobs on threads of their own and supervises them: a job that fails stops the others; a
/// stop request (signal) reaches all through `shouldStop`. Returns when every job has returned.
public enum JobRunner {
    public struct Outcome: Sendable {
        public var summaries: [JobSummary]
        /// Jobs that threw, with the error.
        public var failures: [String: String]
        /// Exit status: 0, 1 when a job failed, 3 when the accounting of a job does not balance.
        public var exitCode: Int32 {
            if !failures.isEmpty { return 1 }
            return summaries.allSatisfy(\.balanced) ? 0 : 3
        }
    }

    /// `tick` runs on the calling thread about once a second while the jobs run (progress,
    /// metrics), with the latest summary each job reported.
    public static func run(_ jobs: [any StreamJob], shouldStop: @escaping @Sendable () -> Bool,
                           logger: Logger = Logger(label: "strata.runner"), tick: ([JobSummary]) -> Void = { _ in }) -> Outcome {
        let failures = Mutex<[String: String]>([:])
        let latest = Mutex<[JobSummary]>(jobs.map { JobSummary(job: $0.name) })
        let stopAll = Atomic<Bool>(false)
        let stop: @Sendable () -> Bool = { stopAll.load(ordering: .relaxed) || shouldStop() }
        var done: [DispatchSemaphore] = []
        for (i, job) in jobs.enumerated() {
            let finished = DispatchSemaphore(value: 0)
            let box = JobBox(job)
            let thread = Thread {
                nameThisThread("strata-\(box.job.name)")
                do { try box.job.run(shouldStop: stop) { s in latest.withLock { $0[i] = s } } } catch {
                    logger.error("job failed; stopping the others", metadata: ["job": "\(box.job.name)", "error": "\(error)"])
                    failures.withLock { $0[box.job.name] = "\(error)" }
                    stopAll.store(true, ordering: .relaxed)
                }
                finished.signal()
            }
            thread.name = "strata-\(job.name)"
            thread.start()
            done.append(finished)
        }
        for d in done {
            while d.wait(timeout: .now() + 1) == .timedOut { tick(latest.withLock { $0 }) }
        }
        // Every thread has returned: the jobs' own accounting is final and safe to read here.
        let summaries = jobs.map(\.summary)
        tick(summaries)
        return Outcome(summaries: summaries, failures: failures.withLock { $0 })
    }
}

/// Names the calling OS thread (Linux: its `comm`, at most 15 bytes), which Foundation's
/// `Thread.name` does not do on Linux: what top -H, perf and `bench catch-up`'s per-thread CPU show.
/// (`pthread_setname_np` is not visible to Swift through Glibc; the thread's comm file is the same.)
func nameThisThread(_ name: String) {
    let fd = open("/proc/thread-self/comm", O_WRONLY)
    guard fd >= 0 else { return }
    let bytes = Array(name.utf8.prefix(15))
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
}

/// Hands a job to its thread; each job is used by that one thread while it runs.
private final class JobBox: @unchecked Sendable {
    let job: any StreamJob
    init(_ job: any StreamJob) { self.job = job }
}
