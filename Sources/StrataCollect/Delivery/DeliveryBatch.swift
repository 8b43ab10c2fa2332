import Dispatch
import Synchronization

/// How a batch sent to the broker ended.
public enum DeliveryOutcome: Sendable, Equatable {
    /// Every event acknowledged (`acks=all`).
    case delivered
    /// At least one event failed or could not be queued.
    case failed
    /// Not every acknowledgement came in time (the events may still be delivered later).
    case timedOut
}

/// Counts the delivery reports of one batch. Its address is every message's delivery token: the
/// batch is retained once when sent and released by the report that completes it, so it lives
/// exactly as long as librdkafka may still report on it.
final class DeliveryBatch: Sendable {
    private enum Waiter {
        case none
        case task(CheckedContinuation<DeliveryOutcome, Never>)
        case thread(DispatchSemaphore)
        case done(DeliveryOutcome)
    }

    private let remaining: Atomic<Int>
    private let failures = Atomic<Int>(0)
    private let waiter = Mutex<Waiter>(.none)
    /// The first failure, for the logs (written on failures only).
    let firstError = Mutex<String?>(nil)
    let deadline: ContinuousClock.Instant

    init(count: Int, deadline: ContinuousClock.Instant) {
        remaining = Atomic(count)
        self.deadline = deadline
    }

    /// The token for this batch's messages; retains the batch until its last report.
    func retainForDelivery() -> UInt { UInt(bitPattern: Unmanaged.passRetained(self).toOpaque()) }

    /// A delivery report for one of its messages (on the polling thread).
    static func report(token: UInt, error: (any Error)?) {
        guard let p = UnsafeRawPointer(bitPattern: token) else { return }
        let ref = Unmanaged<DeliveryBatch>.fromOpaque(p)
        let batch = ref.takeUnretainedValue()
        if let error { batch.firstError.withLock { if $0 == nil { $0 = "\(error)" } } }
        // The +1 from `retainForDelivery` keeps the batch alive through `settle`; drop it after.
        if batch.settle(count: 1, failed: error != nil) { ref.release() }
    }

    /// `count` messages will never be reported (they could not be queued).
    func abandon(count: Int, error: any Error) {
        firstError.withLock { if $0 == nil { $0 = "\(error)" } }
        if settle(count: count, failed: true) { Unmanaged.passUnretained(self).release() }
    }

    /// True when this settled the last message (the caller then drops the delivery retain).
    private func settle(count: Int, failed: Bool) -> Bool {
        if failed { failures.add(1, ordering: .relaxed) }
        let left = remaining.subtract(count, ordering: .acquiringAndReleasing).newValue
        guard left == 0 else { return false }
        finish(failures.load(ordering: .acquiring) > 0 ? .failed : .delivered)
        return true
    }

    /// Ends the wait (first outcome wins).
    func finish(_ outcome: DeliveryOutcome) {
        let w = waiter.withLock { w -> Waiter in
            let old = w
            if case .done = old { return .none }
            w = .done(outcome)
            return old
        }
        switch w {
        case .task(let c): c.resume(returning: outcome)
        case .thread(let s): s.signal()
        case .none, .done: break
        }
    }

    var isDone: Bool { waiter.withLock { if case .done = $0 { true } else { false } } }

    /// Waits for the outcome from a task.
    func wait() async -> DeliveryOutcome {
        await withCheckedContinuation { c in
            let done = waiter.withLock { w -> DeliveryOutcome? in
                if case .done(let o) = w { return o }
                w = .task(c)
                return nil
            }
            if let done { c.resume(returning: done) }
        }
    }

    /// Waits for the outcome on a thread of one's own (the drainer); `.timedOut` once `giveUp` says so.
    func waitBlocking(giveUp: () -> Bool) -> DeliveryOutcome {
        let s = DispatchSemaphore(value: 0)
        let done = waiter.withLock { w -> DeliveryOutcome? in
            if case .done(let o) = w { return o }
            w = .thread(s)
            return nil
        }
        if let done { return done }
        while s.wait(timeout: .now() + .milliseconds(200)) == .timedOut {
            if giveUp() {
                finish(.timedOut)
                break
            }
        }
        return waiter.withLock { if case .done(let o) = $0 { o } else { .failed } }
    }
}
