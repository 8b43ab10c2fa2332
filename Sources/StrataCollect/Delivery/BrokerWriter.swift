import Foundation
public import Logging
public import StrataKafka
import Synchronization

/// Writes framed batches to the raw topic and tells, per batch, whether the broker acknowledged
/// every event: each message carries its batch's delivery token, and a thread of its own serves
/// librdkafka's delivery reports and ends the waits that ran out of time.
///
/// A producer that can never succeed again (fenced, a fatal idempotence error) is replaced by a
/// new one; the old one is still polled until it has reported every message it held. Its
/// failures count as failures, so those events are spooled or replayed: a duplicate at worst.
public final class BrokerWriter: Sendable {
    private struct Generation: Sendable {
        let producer: KafkaProducer
        let topic: KafkaTopic
        let number: Int
    }

    /// Set from delivery reports (librdkafka's thread) when a producer must be replaced: the
    /// number of that generation (a retired one's late reports name their own and are ignored).
    private final class Broken: Sendable {
        let generation = Atomic<Int>(0)
        let reason = Mutex<String>("")
        func set(_ number: Int, _ why: String) {
            reason.withLock { $0 = why }
            generation.store(number, ordering: .relaxed)
        }
    }

    let config: KafkaConfig
    let topicName: String
    let logger: Logger
    private let broken = Broken()
    private let current: Mutex<Generation>
    private let retired = Mutex<[KafkaProducer]>([])
    private let waiting = Mutex<[DeliveryBatch]>([])
    private let stop = Atomic<Bool>(false)
    private let stopped = DispatchSemaphore(value: 0)

    /// `config` should be an idempotent producer with `acks=all` (`KafkaConfig.producer` is).
    public init(config: KafkaConfig, topic: String, logger: Logger = Logger(label: "strata.collect.broker")) throws {
        self.config = config
        topicName = topic
        self.logger = logger
        current = Mutex(try Self.generation(1, config: config, topic: topic, logger: logger, broken: broken))
        let thread = Thread { [self] in pollLoop() }
        thread.name = "strata-collect-acks"
        thread.start()
    }

    private static func generation(_ number: Int, config: KafkaConfig, topic: String, logger: Logger, broken: Broken) throws -> Generation {
        let producer = try KafkaProducer(config: config, logger: logger) { token, error in
            if let error, Self.breaksProducer(error) { broken.set(number, "\(error)") }
            DeliveryBatch.report(token: token, error: error)
        }
        return Generation(producer: producer, topic: producer.topic(topic), number: number)
    }

    /// Errors after which this producer instance never delivers again.
    static func breaksProducer(_ e: KafkaError) -> Bool {
        e.isFatal || e.code.isFencing || ["_FATAL", "OUT_OF_ORDER_SEQUENCE_NUMBER", "UNKNOWN_PRODUCER_ID"].contains(e.code.name)
    }

    /// Messages queued in librdkafka or in flight, not yet reported (the broker lag).
    public var outstanding: Int {
        current.withLock { $0.producer.outstanding } + retired.withLock { $0.reduce(0) { $0 + $1.outstanding } }
    }

    /// Sends every event of `batch` and waits up to `timeout` for all their acknowledgements.
    /// Never waits for queue space: a full queue counts as a failure (the caller spools).
    public func send(_ batch: FramedBatch, timeout: Duration) async -> DeliveryOutcome {
        guard batch.count > 0 else { return .delivered }
        let db = enqueue(batch, deadline: .now + timeout, waitWhenFull: false)
        waiting.withLock { $0.append(db) }
        return await db.wait()
    }

    /// As `send`, for the drainer's thread: waits for queue space, and for the reports without a
    /// deadline of its own (librdkafka reports every message within `message.timeout.ms`), until
    /// `giveUp` says to stop waiting.
    func sendBlocking(_ batch: FramedBatch, giveUp: () -> Bool) -> (DeliveryOutcome, String?) {
        guard batch.count > 0 else { return (.delivered, nil) }
        let db = enqueue(batch, deadline: .now + .seconds(86_400 * 365), waitWhenFull: true)
        let outcome = db.waitBlocking(giveUp: giveUp)
        return (outcome, db.firstError.withLock { $0 })
    }

    private func enqueue(_ batch: FramedBatch, deadline: ContinuousClock.Instant, waitWhenFull: Bool) -> DeliveryBatch {
        let gen = current.withLock { $0 }
        let db = DeliveryBatch(count: batch.count, deadline: deadline)
        let token = db.retainForDelivery()
        var queued = 0
        var refused: KafkaError? = nil
        batch.forEach { key, value in
            guard refused == nil else { return }
            do throws(KafkaError) {
                try gen.producer.produce(to: gen.topic, key: key, value: value, copy: true, deliveryToken: token, waitWhenFull: waitWhenFull)
                queued += 1
            } catch {
                refused = error
            }
        }
        if let refused {
            if Self.breaksProducer(refused) { broken.set(gen.number, "\(refused)") }
            db.abandon(count: batch.count - queued, error: refused)
        }
        return db
    }

    /// Asks for a new producer (on the reporting thread): for a producer that still fails while the
    /// broker answers, e.g. one whose idempotence state a restarted broker no longer knows.
    public func renewProducer(reason: String) {
        broken.set(current.withLock { $0.number }, reason)
    }

    /// True when a broker answers a metadata request for the topic within `timeoutMs`.
    public func probe(timeoutMs: Int32 = 2_000) -> Bool {
        let gen = current.withLock { $0 }
        return (try? gen.producer.partitionCount(topic: topicName, timeoutMs: timeoutMs)) != nil
    }

    /// Stops the reporting thread, then waits up to `flushMs` for outstanding messages.
    public func close(flushMs: Int32 = 5_000) {
        guard !stop.exchange(true, ordering: .relaxed) else { return }
        stopped.wait()
        try? current.withLock { $0 }.producer.flush(timeoutMs: flushMs)
    }

    private func pollLoop() {
        while !stop.load(ordering: .relaxed) {
            current.withLock { $0 }.producer.poll(timeoutMs: 5)
            retired.withLock { list in
                for p in list { p.poll(timeoutMs: 0) }
                list.removeAll { $0.outstanding == 0 }
            }
            let brokenGeneration = broken.generation.exchange(0, ordering: .relaxed)
            if brokenGeneration != 0, brokenGeneration == current.withLock({ $0.number }) { replaceProducer() }
            sweep()
        }
        stopped.signal()
    }

    private func replaceProducer() {
        let old = current.withLock { $0 }
        do {
            let fresh = try Self.generation(old.number + 1, config: config, topic: topicName, logger: logger, broken: broken)
            current.withLock { $0 = fresh }
            retired.withLock { $0.append(old.producer) }
            logger.warning("the producer can no longer deliver; replaced by a new one (its unacknowledged events are spooled or replayed)",
                           metadata: ["reason": "\(broken.reason.withLock { $0 })", "generation": "\(fresh.number)"])
        } catch {
            logger.error("cannot create a new producer; retrying", metadata: ["error": "\(error)"])
            broken.set(old.number, "\(error)")
            Thread.sleep(forTimeInterval: 1)
        }
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
