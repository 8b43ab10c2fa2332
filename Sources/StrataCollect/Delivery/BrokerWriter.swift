import Foundation
public import Logging
public import StrataKafka
import Synchronization

/// Writes framed batches to the raw topic and tells, per batch, whether the broker acknowledged
/// every event: each message carries its batch's delivery token, and a thread of its own serves
/// librdkafka's delivery reports and ends the waits that ran out of time.
public final class BrokerWriter: Sendable {
    let producer: KafkaProducer
    let topic: KafkaTopic
    let logger: Logger
    private let waiting = Mutex<[DeliveryBatch]>([])
    private let stop = Atomic<Bool>(false)
    private let stopped = DispatchSemaphore(value: 0)

    /// `config` should be an idempotent producer with `acks=all` (`KafkaConfig.producer` is).
    public init(config: KafkaConfig, topic: String, logger: Logger = Logger(label: "strata.collect.broker")) throws {
        producer = try KafkaProducer(config: config, logger: logger) { token, error in
            DeliveryBatch.report(token: token, failed: error != nil)
        }
        self.topic = producer.topic(topic)
        self.logger = logger
        let thread = Thread { [self] in pollLoop() }
        thread.name = "strata-collect-acks"
        thread.start()
    }

    /// Messages queued in librdkafka or in flight, not yet reported (the broker lag).
    public var outstanding: Int { producer.outstanding }

    /// Sends every event of `batch` and waits up to `timeout` for all their acknowledgements.
    /// Never waits for queue space: a full queue counts as a failure (the caller spools).
    public func send(_ batch: FramedBatch, timeout: Duration) async -> DeliveryOutcome {
        guard batch.count > 0 else { return .delivered }
        let db = enqueue(batch, deadline: .now + timeout, waitWhenFull: false)
        waiting.withLock { $0.append(db) }
        return await db.wait()
    }

    /// As `send`, for the drainer's thread: waits without a deadline of its own (librdkafka reports
    /// every message within `message.timeout.ms`) and waits for queue space.
    func sendBlocking(_ batch: FramedBatch) -> DeliveryOutcome {
        guard batch.count > 0 else { return .delivered }
        return enqueue(batch, deadline: .now + .seconds(86_400), waitWhenFull: true).waitBlocking()
    }

    private func enqueue(_ batch: FramedBatch, deadline: ContinuousClock.Instant, waitWhenFull: Bool) -> DeliveryBatch {
        let db = DeliveryBatch(count: batch.count, deadline: deadline)
        let token = db.retainForDelivery()
        var queued = 0
        var refused = false
        batch.forEach { key, value in
            guard !refused else { return }
            do {
                try producer.produce(to: topic, key: key, value: value, copy: true, deliveryToken: token, waitWhenFull: waitWhenFull)
                queued += 1
            } catch {
                refused = true
                logger.debug("produce refused", metadata: ["error": "\(error)"])
            }
        }
        if refused { db.abandon(count: batch.count - queued) }
        return db
    }

    /// True when a broker answers a metadata request for the topic within `timeoutMs`.
    public func probe(timeoutMs: Int32 = 2_000) -> Bool {
        (try? producer.partitionCount(topic: topic.name, timeoutMs: timeoutMs)) != nil
    }

    /// Stops the reporting thread after serving what librdkafka has (waiting up to `flushMs` for
    /// outstanding messages).
    public func close(flushMs: Int32 = 5_000) {
        guard !stop.exchange(true, ordering: .relaxed) else { return }
        stopped.wait()
        try? producer.flush(timeoutMs: flushMs)
    }

    private func pollLoop() {
        while !stop.load(ordering: .relaxed) {
            producer.poll(timeoutMs: 5)
            sweep()
        }
        stopped.signal()
    }

    /// Ends the waits past their deadline; forgets the finished ones.
    private func sweep() {
        let now = ContinuousClock.now
        let expired = waiting.withLock { list -> [DeliveryBatch] in
            guard !list.isEmpty else { return [] }
            var out: [DeliveryBatch] = []
            list.removeAll { b in
                if b.isDone { return true }
                if b.deadline <= now { out.append(b); return true }
                return false
            }
            return out
        }
        for b in expired { b.finish(.timedOut) }
    }
}
