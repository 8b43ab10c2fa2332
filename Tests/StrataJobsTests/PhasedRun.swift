import Foundation
import StrataDWM
import StrataJobs
import StrataSplit
import StrataTestSupport
import Synchronization
import XCTest

/// The in-process split and dwm jobs of a `DWMEndToEndTests` env, running continuously while a
/// test produces its input in phases and injects a fault between them. `phase` returns when the
/// split has routed the phase and the dwm has committed everything routed; `finish` waits for the
/// dwm's `--until-idle` end (which stops the split) and reports the jobs' errors.
final class PhasedRun {
    let split: SplitJob
    let dwm: DWMJob
    private let splitProgress = Mutex((consumed: 0, routed: 0))
    private let dwmCommitted = Mutex(0)
    private let errors = Mutex<[String]>([])
    private let done = DispatchGroup()
    private let test: DWMEndToEndTests
    private let env: DWMEndToEndTests.Env

    init(_ test: DWMEndToEndTests, env: DWMEndToEndTests.Env, dwmUntilIdle: Duration = .seconds(10),
         dwmKafka: [String: String] = [:]) throws {
        self.test = test
        self.env = env
        var splitOptions = SplitJob.Options(brokers: test.brokers)
        splitOptions.topicPrefix = env.prefix; splitOptions.groupId = env.prefix + "split"; splitOptions.instanceId = env.prefix + "split"
        split = try SplitJob(options: splitOptions, topology: test.topology)
        var jobOptions = test.dwmOptions(env)
        jobOptions.untilIdle = dwmUntilIdle      // longer than any pause between phases; flushes every window at the end
        jobOptions.kafka = dwmKafka
        dwm = DWMJob(options: jobOptions, topology: test.topology, cache: env.cache)
        let stop = StopSignal()
        let box = UncheckedSendable(self)
        done.enter()
        Thread {
            let run = box.value
            do { try run.split.run(shouldStop: { stop.isSet }) { p in run.splitProgress.withLock { $0 = (p.consumed, p.routedTotal) } } }
            catch { run.errors.withLock { $0.append("split: \(error)") } }
            run.done.leave()
        }.start()
        done.enter()
        Thread {
            let run = box.value
            do { try run.dwm.run(onCommit: { p in run.dwmCommitted.withLock { $0 = p.accounting.consumed } }) }
            catch { run.errors.withLock { $0.append("dwm: \(error)") } }
            stop.set()
            run.done.leave()
        }.start()
    }

    /// Produces `range` of the env's lines and waits (up to `timeout`) until it is committed.
    func phase(_ range: Range<Int>, timeout: TimeInterval = 60, file: StaticString = #filePath, line: UInt = #line) throws {
        try test.produceRaw(env.lines[range], env: env)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let progress = splitProgress.withLock { $0 }
            if progress.consumed >= range.upperBound, dwmCommitted.withLock({ $0 }) >= progress.routed { return }
            if !errors.withLock({ $0.isEmpty }) { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        XCTFail("phase \(range) not committed within \(timeout) s: split \(splitProgress.withLock { $0 }), dwm \(dwmCommitted.withLock { $0 }), errors \(errors.withLock { $0 })",
                file: file, line: line)
    }

    /// Waits for both jobs to end; the jobs' errors (none expected).
    func finish() -> [String] {
        done.wait()
        return errors.withLock { $0 }
    }
}
