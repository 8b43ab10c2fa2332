import Synchronization

/// Orders the idle stops of jobs that run in one process (`strata run --until-idle`): a job that
/// reads what another publishes stops only after that one has finished (its last transaction
/// committed) and it has then seen no input for its own idle time. Each job's idle clock alone
/// follows only its input: a sink could stop while dwm was still rebuilding or about to flush its
/// last minutes, and those rows never reached the warehouse.
public struct IdleOrder: Sendable {
    /// The upstream job's end; nil: the job's input comes from outside the process.
    public var after: JobCompletion?
    /// Marked when this job's loop has returned (normally, on a stop, or on an error).
    public var signals: JobCompletion?

    public init(after: JobCompletion? = nil, signals: JobCompletion? = nil) {
        self.after = after
        self.signals = signals
    }

    /// Idle long enough to stop: `idle` without input, counted from the upstream's end when there is one.
    func isIdle(now: ContinuousClock.Instant, lastInput: ContinuousClock.Instant, idle: Duration) -> Bool {
        guard let after else { return now - lastInput >= idle }
        guard let upstreamEnd = after.finishedAt else { return false }
        return now - max(lastInput, upstreamEnd) >= idle
    }
}

/// When a job finished, once it has.
public final class JobCompletion: Sendable {
    private let instant = Mutex<ContinuousClock.Instant?>(nil)

    public init() {}

    public func markFinished() { instant.withLock { if $0 == nil { $0 = .now } } }

    public var finishedAt: ContinuousClock.Instant? { instant.withLock { $0 } }
}
