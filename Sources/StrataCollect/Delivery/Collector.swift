import CoreMetrics
import Foundation
import Logging
import Synchronization

/// Where an accepted batch was made durable, or why it could not be.
public enum StoreOutcome: Sendable, Equatable {
    /// Every event acknowledged by the broker.
    case broker
    /// Appended and fsynced to the spool (the drainer delivers it later).
    case spool
    /// The spool is at its quota: answer 503.
    case full
    /// The spool could not write: answer 503.
    case failed(String)
}

/// The durability core: an accepted batch goes to the broker and waits for its acknowledgements;
/// when they do not all come within `ackTimeout` (broker slow or down, queue full), the batch goes
/// to the spool instead and the gateway turns *degraded*: later batches go straight to the spool
/// (no one waits for a timeout per request) until the drainer has emptied the spool and the broker
/// answers again. Either way the caller answers only once the batch is durable.
///
/// Events that timed out may still be delivered later by librdkafka, and the drainer replays what
/// the spool holds, so an event can reach `ods.raw` twice; never zero times once it got a 202.
/// The dwm job counts an `event_id` once, which absorbs such duplicates.
public final class Collector: Sendable {
    public let broker: BrokerWriter
    public let spool: Spool
    public let ackTimeout: Duration
    let logger: Logger
    let metrics: CollectMetrics
    private let degradedFlag = Atomic<Bool>(false)
    private let stopFlag = Atomic<Bool>(false)
    private let drainerDone = DispatchSemaphore(value: 0)
    private let drainerStarted = Atomic<Bool>(false)

    init(broker: BrokerWriter, spool: Spool, ackTimeout: Duration, metrics: CollectMetrics, logger: Logger) {
        self.broker = broker
        self.spool = spool
        self.ackTimeout = ackTimeout
        self.metrics = metrics
        self.logger = logger
    }

    /// True while requests go straight to the spool.
    public var isDegraded: Bool { degradedFlag.load(ordering: .relaxed) }

    public func store(_ batch: FramedBatch) async -> StoreOutcome {
        guard batch.count > 0 else { return .broker }
        if !isDegraded {
            let outcome = await broker.send(batch, timeout: ackTimeout)
            if outcome == .delivered {
                metrics.acceptedBroker.increment(by: batch.count)
                return .broker
            }
            if !degradedFlag.exchange(true, ordering: .relaxed) {
                metrics.degraded.record(1)
                logger.warning("the broker did not acknowledge a batch in time; accepting into the spool until it is back",
                               metadata: ["outcome": "\(outcome)", "ack_timeout": "\(ackTimeout)"])
            }
        }
        do {
            try await spool.append(batch)
        } catch {
            switch error {
            case .full: return .full
            case .io(let m): return .failed(m)
            }
        }
        metrics.spooled.increment(by: batch.count)
        metrics.acceptedSpool.increment(by: batch.count)
        return .spool
    }

    // MARK: drainer

    /// Starts the drainer thread: replays sealed segments in order, deletes each once all its
    /// events are acknowledged, retries with backoff while the broker is away.
    public func startDrainer(idle: Duration = .milliseconds(200), maxBackoff: Duration = .seconds(5)) {
        guard !drainerStarted.exchange(true, ordering: .relaxed) else { return }
        let thread = Thread { [self] in
            drainLoop(idle: idle, maxBackoff: maxBackoff)
            drainerDone.signal()
        }
        thread.name = "strata-collect-drain"
        thread.start()
    }

    /// Stops the drainer (after the segment it is replaying), the spool writer and the producer.
    public func close() {
        stopFlag.store(true, ordering: .relaxed)
        if drainerStarted.load(ordering: .relaxed) { drainerDone.wait() }
        spool.close()
        broker.close()
    }

    private var stopping: Bool { stopFlag.load(ordering: .relaxed) }

    private func pause(_ d: Duration) {
        // Short steps, so close() does not wait out a long backoff.
        var left = d
        while left > .zero, !stopping {
            let step = min(left, .milliseconds(50))
            Thread.sleep(forTimeInterval: Double(step.components.attoseconds) / 1e18 + Double(step.components.seconds))
            left -= step
        }
    }

    private func leaveDegraded(_ why: String) {
        guard degradedFlag.exchange(false, ordering: .relaxed) else { return }
        metrics.degraded.record(0)
        logger.notice("requests go to the broker again", metadata: ["why": "\(why)"])
    }

    private func drainLoop(idle: Duration, maxBackoff: Duration) {
        var backoff = Duration.milliseconds(250)
        var failures = 0
        while !stopping {
            metrics.outstanding.record(broker.outstanding)
            guard let segment = spool.sealedSegments.first else {
                if spool.activeBytes > 0 {
                    // Whatever the active segment holds waits for the drainer: seal it and take it.
                    let done = DispatchSemaphore(value: 0)
                    Task { [spool] in await spool.sealActive(); done.signal() }
                    done.wait()
                    continue
                }
                if isDegraded, spool.isEmpty, broker.probe() {
                    leaveDegraded("the spool is drained and the broker answers")
                    continue
                }
                pause(idle)
                continue
            }
            let bytes: [UInt8]
            do {
                bytes = try spool.load(segment)
            } catch {
                logger.error("cannot read a spool segment; retrying", metadata: ["segment": "\(segment.path)", "error": "\(error)"])
                pause(maxBackoff)
                continue
            }
            var batch = FramedBatch()
            batch.bytes = bytes
            batch.count = bytes.withUnsafeBytes { p in
                var n = 0
                Frame.forEach(in: p, verify: false) { _, _ in n += 1 }
                return n
            }
            let (outcome, error) = broker.sendBlocking(batch) { stopping }
            switch outcome {
            case .delivered:
                spool.remove(segment)
                metrics.drained.increment(by: batch.count)
                logger.info("spool segment replayed", metadata: ["segment": "\(segment.path)", "events": "\(batch.count)"])
                backoff = .milliseconds(250)
                failures = 0
                // The broker took a whole segment: new requests may go to it again while the rest of
                // the spool drains (under a steady load the spool might never be empty).
                leaveDegraded("a spool segment was replayed and acknowledged")
            case .failed, .timedOut:
                failures += 1
                // Failing again while the broker answers metadata: the producer is the problem
                // (a restarted broker that forgot its idempotence state answers it with silence).
                if failures >= 2, !stopping, broker.probe() {
                    broker.renewProducer(reason: "replays keep failing while the broker answers: \(error ?? "?")")
                    failures = 0
                }
                logger.warning("replaying a spool segment failed; the broker seems away, retrying",
                               metadata: ["segment": "\(segment.path)", "retry_in": "\(backoff)", "error": "\(error ?? "?")"])
                pause(backoff)
                backoff = min(backoff * 2, maxBackoff)
            }
        }
    }
}
