import Foundation
import Logging
import StrataKafka
import Synchronization

/// How far each watched job is behind its input (`LagWatch.measure`: the records between its
/// group's committed offsets and the end of each partition), measured every few seconds on a
/// thread of its own.
final class JobLagMonitor: Sendable {
    struct Reading: Sendable {
        var job: String
        var groupId: String
        var lag: Int64?
        var error: String?
        var measuredAtMs: Int64
    }
    let watches: [LagWatch]
    let consumerConfig: KafkaConfig
    let intervalMs: Int
    let logger: Logger
    private let readings = Mutex<[Reading]>([])
    private let stopFlag = Atomic<Bool>(false)

    init(watches: [LagWatch], consumerConfig: KafkaConfig, intervalMs: Int = 5_000, logger: Logger) {
        self.watches = watches
        self.consumerConfig = consumerConfig
        self.intervalMs = intervalMs
        self.logger = logger
    }

    var current: [Reading] { readings.withLock { $0 } }

    func start() {
        guard !watches.isEmpty else { return }
        let thread = Thread { [self] in
            while !stopFlag.load(ordering: .relaxed) {
                let measured = watches.map(measure)
                readings.withLock { $0 = measured }
                var waited = 0
                while waited < intervalMs && !stopFlag.load(ordering: .relaxed) {
                    Thread.sleep(forTimeInterval: 0.1)
                    waited += 100
                }
            }
        }
        thread.name = "strata-serve-lag"
        thread.start()
    }

    func stop() { stopFlag.store(true, ordering: .relaxed) }

    private func measure(_ watch: LagWatch) -> Reading {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        do {
            return Reading(job: watch.job, groupId: watch.groupId, lag: try watch.measure(consumerConfig: consumerConfig), error: nil, measuredAtMs: now)
        } catch {
            return Reading(job: watch.job, groupId: watch.groupId, lag: nil, error: String(describing: error), measuredAtMs: now)
        }
    }
}
