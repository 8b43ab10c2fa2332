import Foundation
import StrataCollect
import StrataCore
import StrataKafka
import StrataTestSupport
import Synchronization
import XCTest

/// What "202 means durable" promises: with the broker away the gateway keeps answering from the
/// spool, the spool drains once the broker is back, a SIGKILL loses nothing that was answered 202,
/// and a full spool says 503.
final class DurabilityTests: XCTestCase {
    var cleanup: [() -> Void] = []

    override func tearDown() {
        for c in cleanup.reversed() { c() }
        cleanup = []
    }

    func spoolDir() -> String {
        let d = temporaryDirectory("spool")
        cleanup.append { try? FileManager.default.removeItem(atPath: d) }
        return d
    }

    /// Posts batches of 20 until `stop` is set; remembers each answered batch.
    final class Load: @unchecked Sendable {
        struct Answer { let ids: [String]; let status: Int; let durable: String?; let at: ContinuousClock.Instant }
        private let lock = NSLock()
        private var answers: [Answer] = []
        private(set) var failures: [String] = []
        let stop = Atomic<Bool>(false)
        let done = DispatchSemaphore(value: 0)

        init(url: String) {
            Thread { [self] in
                var events = EventFactory()
                defer { done.signal() }
                guard let client = try? EventPoster(url: url, timeout: .seconds(30)) else { return }
                while !stop.load(ordering: .relaxed) {
                    let batch = events.batch(20)
                    do {
                        let r = try client.post(batch.body)
                        let durable = (try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])?["durable"] as? String
                        lock.withLock { answers.append(Answer(ids: batch.ids, status: r.status, durable: durable, at: .now)) }
                    } catch {
                        lock.withLock { failures.append("\(error)") }
                        return
                    }
                }
            }.start()
        }

        func finish() -> [Answer] {
            stop.store(true, ordering: .relaxed)
            done.wait()
            return lock.withLock { answers }
        }

        var snapshot: [Answer] { lock.withLock { answers } }
    }

    func testBrokerCutOffDuringALoadRunKeepsAnswering202AndLosesNothing() throws {
        let brokerPort = try unusedPort(), relayPort = try unusedPort()
        let log = temporaryDirectory("tansu") + ".log"
        let broker = try PrivateBroker(port: brokerPort, advertisedPort: relayPort, log: log)
        cleanup.append { broker.stop(); try? FileManager.default.removeItem(atPath: log) }
        let relay = try TCPRelay(port: relayPort, target: brokerPort)
        cleanup.append { relay.cut() }
        let brokers = "127.0.0.1:\(relayPort)"
        let topic = try RawTopic(brokers: brokers)

        var options = CollectOptions()
        options.rawTopic = topic.name
        options.spoolDirectory = spoolDir()
        options.ackTimeout = .milliseconds(300)
        options.accessLogSample = 0
        let gateway = try Gateway(options: options, brokers: brokers, kafka: ["message.timeout.ms": "3000"])
        cleanup.append { gateway.stop() }

        let load = Load(url: gateway.url)
        Thread.sleep(forTimeInterval: 1.5)
        relay.cut()
        let cutAt = ContinuousClock.now
        Thread.sleep(forTimeInterval: 3)
        try relay.restore()
        let restoredAt = ContinuousClock.now
        Thread.sleep(forTimeInterval: 2)
        let answers = load.finish()
        XCTAssertEqual(load.failures, [], "every request got an answer")

        XCTAssertTrue(answers.allSatisfy { $0.status == 202 }, "statuses: \(Set(answers.map(\.status)))")
        let during = answers.filter { $0.at > cutAt + .milliseconds(500) && $0.at < restoredAt }
        XCTAssertGreaterThan(during.count, 0, "202s kept coming while the broker was cut off")
        XCTAssertTrue(during.allSatisfy { $0.durable == "spool" }, "answered from the spool while cut off")
        XCTAssertGreaterThan(answers.filter { $0.durable == "broker" }.count, 0, "answered from the broker before the cut")

        XCTAssertTrue(gateway.waitForEmptySpool(timeout: .seconds(90)), "the drainer emptied the spool once the broker was back")
        let accepted = Set(answers.flatMap(\.ids))
        let stored = Set(try topic.eventIds(timeout: .seconds(90)))
        let missing = accepted.subtracting(stored)
        XCTAssertEqual(missing.count, 0, "accepted but not in ods.raw, e.g. \(Array(missing.sorted().prefix(5))) of \(accepted.count)")
        XCTAssertGreaterThan(gateway.metric("strata_collect_events_drained_total"), 0)
        XCTAssertEqual(gateway.metric("strata_collect_spool_bytes"), 0)
    }

    func testBrokerProcessStoppedAndRestartedDuringALoadRunGetsEverySpooledEvent() throws {
        // A real stop: the private broker's process ends (connections refused), then a new one
        // starts on the same port. Tansu keeps topics in memory, so the new broker starts empty:
        // what the old one acknowledged is gone with it (the broker's loss, not the gateway's), and
        // the check is that every event answered from the spool reaches the new broker.
        let port = try unusedPort()
        let log = temporaryDirectory("tansu") + ".log"
        var broker = try PrivateBroker(port: port, advertisedPort: port, log: log)
        cleanup.append { broker.stop(); try? FileManager.default.removeItem(atPath: log) }
        let brokers = "127.0.0.1:\(port)"
        let topic = try RawTopic(brokers: brokers)

        var options = CollectOptions()
        options.rawTopic = topic.name
        options.spoolDirectory = spoolDir()
        options.ackTimeout = .milliseconds(300)
        options.accessLogSample = 0
        let gateway = try Gateway(options: options, brokers: brokers, kafka: ["message.timeout.ms": "3000"])
        cleanup.append { gateway.stop() }

        let load = Load(url: gateway.url)
        Thread.sleep(forTimeInterval: 1.5)
        broker.stop()
        Thread.sleep(forTimeInterval: 3)
        broker = try PrivateBroker(port: port, advertisedPort: port, log: log)
        let admin = try KafkaAdmin(config: KafkaConfig(["bootstrap.servers": brokers]))
        _ = try admin.createTopics([NewTopic(name: topic.name, partitions: 2)])
        Thread.sleep(forTimeInterval: 2)
        let answers = load.finish()
        XCTAssertEqual(load.failures, [], "every request got an answer")
        XCTAssertTrue(answers.allSatisfy { $0.status == 202 }, "statuses: \(Set(answers.map(\.status)))")
        let spooled = answers.filter { $0.durable == "spool" }
        XCTAssertGreaterThan(spooled.count, 0, "202s kept coming from the spool while the broker was stopped")

        XCTAssertTrue(gateway.waitForEmptySpool(timeout: .seconds(90)), "the drainer emptied the spool into the new broker")
        let stored = Set(try topic.eventIds(timeout: .seconds(90)))
        let missing = Set(spooled.flatMap(\.ids)).subtracting(stored)
        XCTAssertEqual(missing.count, 0, "spooled but not in ods.raw, e.g. \(Array(missing.sorted().prefix(5)))")
    }

    func testBrokerDownFromTheStartSpoolsAndAFullSpoolAnswers503() throws {
        let dead = try unusedPort()
        var options = CollectOptions()
        options.rawTopic = "ods.raw"
        options.spoolDirectory = spoolDir()
        options.ackTimeout = .milliseconds(200)
        options.spoolSegmentBytes = 16 << 10
        options.spoolQuotaBytes = 64 << 10
        options.retryAfterSeconds = 7
        options.accessLogSample = 0
        let gateway = try Gateway(options: options, brokers: "127.0.0.1:\(dead)", kafka: ["message.timeout.ms": "2000"])
        cleanup.append { gateway.stop() }
        let client = try gateway.poster()
        var events = EventFactory()

        var r = try client.post(events.batch(20).body)
        XCTAssertEqual(r.status, 202, r.text)
        XCTAssertTrue(r.text.contains(#""durable":"spool""#), r.text)
        var health = try client.get("/healthz")
        XCTAssertTrue(health.text.contains(#""degraded":true"#), health.text)

        var statuses: [Int] = []
        for _ in 0..<200 {
            r = try client.post(events.batch(20).body)
            statuses.append(r.status)
            if r.status == 503 { break }
        }
        XCTAssertEqual(statuses.last, 503, "the quota was reached")
        XCTAssertTrue(statuses.dropLast().allSatisfy { $0 == 202 })
        XCTAssertEqual(r.retryAfter, 7)
        XCTAssertTrue(r.text.contains("spool_full"), r.text)
        health = try client.get("/healthz")
        XCTAssertLessThanOrEqual(gateway.server.collector.spool.bytes, 64 << 10)
        XCTAssertGreaterThan(gateway.metric("strata_collect_events_spooled_total"), 0)
    }

    /// Starts the real `strata collect` on a free port over `dir`, its log appended to `logPath`;
    /// returns once /healthz answers.
    func launchGateway(brokers: String, dir: String, topic: RawTopic, logPath: String, extra: [String] = []) throws -> (Process, Int) {
        let port = try unusedPort()
        let log = try XCTUnwrap(FileHandle(forWritingAtPath: logPath))
        log.seekToEndOfFile()
        let p = try launchStrata(strataBinary(packageRoot: packageRoot),
                                 ["collect", "--listen", "127.0.0.1:\(port)", "--brokers", brokers,
                                  "--topology", packageRoot.appendingPathComponent("topology/topology.yaml").path,
                                  "--topic-prefix", topic.prefix, "--spool-dir", dir,
                                  "--ack-timeout", "200ms", "--message-timeout", "3s", "--log-format", "json"] + extra,
                                 standardError: log)
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let r = try? EventPoster(url: "http://127.0.0.1:\(port)/").get("/healthz"), r.status == 200 { return (p, port) }
            Thread.sleep(forTimeInterval: 0.1)
        }
        p.terminate()
        throw TestFailure(description: "strata collect did not answer within 30 s")
    }

    /// Waits until the gateway's spool is empty.
    func waitForDrain(port: Int, timeout: Duration = .seconds(90)) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let h = try? EventPoster(url: "http://127.0.0.1:\(port)/").get("/healthz"), h.text.contains(#""spool_bytes":0"#) { return true }
            Thread.sleep(forTimeInterval: 0.2)
        }
        return false
    }

    func testSIGKILLedGatewayWithANonEmptySpoolDrainsEverythingAnsweredOnRestart() throws {
        let brokers = try TestEnvironment.brokers
        let topic = try RawTopic(brokers: brokers)
        let dir = spoolDir()
        let logPath = temporaryDirectory("collect") + ".log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        cleanup.append { try? FileManager.default.removeItem(atPath: logPath) }
        func start(brokers: String) throws -> (Process, Int) { try launchGateway(brokers: brokers, dir: dir, topic: topic, logPath: logPath) }

        // First life: no broker, so every 202 comes from the spool; killed in the middle of the load.
        let (first, port1) = try start(brokers: "127.0.0.1:\(try unusedPort())")
        cleanup.append { if first.isRunning { kill(first.processIdentifier, SIGKILL) } }
        let load = Load(url: "http://127.0.0.1:\(port1)/v1/events")
        Thread.sleep(forTimeInterval: 2)
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        let answers = load.finish()
        let accepted = answers.filter { $0.status == 202 }
        XCTAssertGreaterThan(accepted.count, 0)
        XCTAssertTrue(accepted.allSatisfy { $0.durable == "spool" })
        let segments = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".spool") }
        XCTAssertFalse(segments.isEmpty, "the spool is not empty after the kill")

        // Second life with the broker: the spool drains, nothing answered 202 is missing.
        let (second, port2) = try start(brokers: brokers)
        cleanup.append { if second.isRunning { second.terminate(); second.waitUntilExit() } }
        let drained = waitForDrain(port: port2)
        let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        XCTAssertTrue(drained, "the restarted gateway drained its spool; log:\n\(log.suffix(3000))")
        let stored = Set(try topic.eventIds(timeout: .seconds(90)))
        let missing = Set(accepted.flatMap(\.ids)).subtracting(stored)
        XCTAssertEqual(missing.count, 0, "answered 202 but not in ods.raw, e.g. \(Array(missing.sorted().prefix(5)))")
        second.terminate()
        second.waitUntilExit()
        XCTAssertEqual(second.terminationStatus, 0, "SIGTERM stops the gateway cleanly")
    }

    /// The spool's disk fills (a 256 KB tmpfs) while the broker is away: the gateway answers 503
    /// spool_failed for what it cannot make durable and keeps everything it answered 202 for; once
    /// there is room and the broker is back, every one of those events reaches ods.raw. Needs root
    /// for the mount (the test command runs as root in CI); skipped, and said so, otherwise.
    func testSpoolOnAFullDiskAnswers503AndLosesNothingItAccepted() throws {
        let brokers = try TestEnvironment.brokers
        let topic = try RawTopic(brokers: brokers)
        let dir = temporaryDirectory("spool-full")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { _ = try? PostgresServerProcess.run("/bin/umount", [dir]); try? FileManager.default.removeItem(atPath: dir) }
        do { _ = try PostgresServerProcess.run("/bin/mount", ["-t", "tmpfs", "-o", "size=256k", "tmpfs", dir]) } catch {
            throw XCTSkip("cannot mount a small tmpfs here (\(error)); the disk-full round needs root")
        }
        let logPath = temporaryDirectory("collect") + ".log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        cleanup.append { try? FileManager.default.removeItem(atPath: logPath) }

        // No broker, a quota far above the disk: the file system says no first.
        let (first, port1) = try launchGateway(brokers: "127.0.0.1:\(try unusedPort())", dir: dir, topic: topic, logPath: logPath,
                                               extra: ["--spool-segment", "32KB", "--spool-quota", "1GB"])
        cleanup.append { if first.isRunning { kill(first.processIdentifier, SIGKILL) } }
        let load = Load(url: "http://127.0.0.1:\(port1)/v1/events")
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline, !load.snapshot.contains(where: { $0.status == 503 }) { Thread.sleep(forTimeInterval: 0.05) }
        Thread.sleep(forTimeInterval: 0.5)
        let answers = load.finish()
        let accepted = answers.filter { $0.status == 202 }
        XCTAssertGreaterThan(accepted.count, 0, "the spool took events before the disk filled")
        XCTAssertTrue(accepted.allSatisfy { $0.durable == "spool" })
        XCTAssertTrue(answers.contains { $0.status == 503 }, "a full disk answers 503")
        XCTAssertTrue(answers.allSatisfy { $0.status == 202 || $0.status == 503 }, "\(Set(answers.map(\.status)))")
        first.terminate()
        first.waitUntilExit()
        let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        XCTAssertTrue(log.contains("the spool cannot write") && (log.contains("No space left on device") || log.contains("ENOSPC")),
                      "the log says why: \(log.suffix(1500))")

        // Room again (as an operator frees space) and the broker back: everything answered 202 arrives.
        _ = try PostgresServerProcess.run("/bin/mount", ["-o", "remount,size=64m", dir])
        let (second, port2) = try launchGateway(brokers: brokers, dir: dir, topic: topic, logPath: logPath)
        cleanup.append { if second.isRunning { second.terminate(); second.waitUntilExit() } }
        XCTAssertTrue(waitForDrain(port: port2), "the restarted gateway drained its spool")
        let storedList = try topic.eventIds(timeout: .seconds(90))
        let stored = Set(storedList)
        let acceptedIds = Set(accepted.flatMap(\.ids))
        let missing = acceptedIds.subtracting(stored)
        XCTAssertEqual(missing.count, 0, "answered 202 but not in ods.raw, e.g. \(Array(missing.sorted().prefix(5)))")
        second.terminate()
        second.waitUntilExit()
        let delivered = storedList.filter { acceptedIds.contains($0) }
        FaultReport.record(fault: "collector spool disk full", injected: 1, recordsIn: acceptedIds.count, recordsOut: delivered.count,
                           lost: missing.count, duplicated: delivered.count - Set(delivered).count, exact: missing.isEmpty)
    }
}
