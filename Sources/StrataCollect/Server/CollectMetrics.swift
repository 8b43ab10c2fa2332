import CoreMetrics
import StrataCore
import Synchronization

/// The gateway's metrics, looked up once (`/metrics` renders `MetricsRegistry.shared`).
final class CollectMetrics: Sendable {
    let registry: MetricsRegistry
    let acceptedBroker: Counter
    let acceptedSpool: Counter
    let spooled: Counter
    let drained: Counter
    let spoolBytes: Recorder
    let outstanding: Recorder
    let degraded: Recorder
    let duration: Timer
    private let rejected = Mutex<[String: Counter]>([:])
    private let statuses = Mutex<[Int: Counter]>([:])

    init(registry: MetricsRegistry = .shared) {
        self.registry = registry
        let accepted = "strata_collect_events_accepted_total"
        let acceptedHelp = "Events answered 202, by where they were durable when answered (broker ack or spool fsync)"
        acceptedBroker = registry.counter(accepted, help: acceptedHelp, labels: ["durable": "broker"])
        acceptedSpool = registry.counter(accepted, help: acceptedHelp, labels: ["durable": "spool"])
        spooled = registry.counter("strata_collect_events_spooled_total", help: "Events appended and fsynced to the local spool")
        drained = registry.counter("strata_collect_events_drained_total", help: "Spooled events replayed to the broker and acknowledged")
        spoolBytes = registry.gauge("strata_collect_spool_bytes", help: "Bytes in the spool's segment files")
        outstanding = registry.gauge("strata_collect_broker_outstanding", help: "Events queued or in flight to the broker, not yet acknowledged (broker lag)")
        degraded = registry.gauge("strata_collect_degraded", help: "1 while requests go straight to the spool (the broker was slow or down)")
        duration = registry.timer("strata_collect_request_duration_seconds", help: "POST /v1/events, from the request to the answer",
                                  buckets: [.microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
                                            .milliseconds(20), .milliseconds(50), .milliseconds(100), .milliseconds(500), .seconds(1), .seconds(5)])
    }

    func rejected(_ reason: String, count: Int = 1) {
        let c = rejected.withLock { map in
            if let c = map[reason] { return c }
            let c = registry.counter("strata_collect_events_rejected_total", help: "Events refused, by reason (the split's codes; body-level ones too)",
                                     labels: ["reason": reason])
            map[reason] = c
            return c
        }
        c.increment(by: count)
    }

    func status(_ code: Int) {
        let c = statuses.withLock { map in
            if let c = map[code] { return c }
            let c = registry.counter("strata_collect_requests_total", help: "HTTP requests to the gateway, by status", labels: ["status": String(code)])
            map[code] = c
            return c
        }
        c.increment()
    }
}
