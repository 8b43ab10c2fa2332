import Foundation
import StrataDWM
import StrataJobs
import StrataRuntime
import StrataSplit
import StrataTestSupport
import Synchronization
import XCTest

/// The in-process split and dwm jobs of a `DWMEndToEndTests` env, running continuously while a
/// test produces its input in phases and injects a fault between them. `phase` returns when the
/// split has routed the phase and the dwm has committed everything routed; `finish` stops the
/// split, waits for the dwm's `--until-idle` end and reports the jobs' errors. The dwm's idle
/// clock starts at the split's end (`IdleOrder`, as `strata run` orders them), so however long a
/// fault and the next phase's input take on a slow machine, the dwm never takes a pause between
/// phases for the end of its input.
final class PhasedRun {
    let split: SplitJob
    let dwm: DWMJob
    private let splitProgress = Mutex((consumed: 0, routed: 0))
    private let dwmCommitted = Mutex(0)
    private let errors = Mutex<[String]>([])
    private let done = DispatchGroup()
    private let stop = StopSignal()
    private let test: DWMEndToEndTests
    private let env: DWMEndToEndTests.Env

    init(_ test: DWMEndToEndTests, env: DWMEndToEndTests.Env, dwmKafka: [String: String] = [:]) throws {
        self.test = test
        self.env = env
        let splitEnd = JobCompletion()
        var splitOptions = SplitJob.Options(brokers: test.brokers)
        splitOptions.topicPrefix = env.prefix; splitOptions.groupId = env.prefix + "split"; splitOptions.instanceId = env.prefix + "split"
        splitOptions.idleOrder = IdleOrder(signals: splitEnd)
        split = try SplitJob(options: splitOptions, topology: test.topology)
        var jobOptions = test.dwmOptions(env)
        jobOptions.untilIdle = .seconds(3)      // after the split's end; flushes every window
        jobOptions.idleOrder = IdleOrder(after: splitEnd)
        jobOptions.kafka = dwmKafka
        dwm = DWMJob(options: jobOptions, topology: test.topology, cache: env.cache)
        let (stop, box) = (stop, UncheckedSendable(self))
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
            stop.set()      // a dwm that failed stops the split too
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

    /// Stops the split; waits for both jobs to end; the jobs' errors (none expected). The jobs run
    /// until it is called (the split has no idle end): a test calls it on every path (`defer`);
    /// again, it returns at once.
    func finish() -> [String] {
        stop.set()
        done.wait()
        return errors.withLock { $0 }
    }
}
