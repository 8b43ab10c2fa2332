import StrataTestSupport
import StrataCore
import StrataDWM
import StrataGen
import XCTest

/// Generated dirty input, shuffled across sources, against the reference computation.
final class GoldenTests: XCTestCase {
    func testFinalRowsEqualReferenceComputation() {
        var w = EventWorkload()
        w.contents = 2_000
        w.users = 20_000
        w.eventsPerSecond = 500          // 200 000 lines ≈ 400 s of event time: 7 minutes
        w.duplicateShare = 0.03
        w.unknownIdShare = 0.02
        w.invalidIdShare = 0.01
        w.malformedShare = 0.005
        w.outOfOrderShare = 0.1
        w.outOfOrderMaxMs = 20_000       // beyond the 5 s out-of-orderness: corrections of final minutes
        w.lateShare = 0.005
        w.seed = 7
        let stream = generatedStream(w, count: 200_000, seed: 12)

        let engine = makeEngine()
        var subscriber = Subscriber()
        var rng = SeededRandom(seed: 3)
        var nextCollect = rng.below(300)
        var wrongOutcomes: [String] = []
        var kinds: [String: Int] = [:]
        for (i, r) in stream.enumerated() {
            let outcome = engine.apply(r.bytes, source: r.source, offset: r.offset)
            kinds["\(r.kind)", default: 0] += 1
            let ok: Bool
            switch r.kind {
            case .valid, .outOfOrder: ok = outcome == .applied || outcome == .corrected
            case .duplicate: ok = outcome == .duplicate
            case .late: ok = outcome == .late
            case .unknownId, .invalidId: ok = outcome == .filtered(WindowEngine.unknownContentId)
            case .malformed: if case .filtered = outcome { ok = true } else { ok = false }
            }
            if !ok && wrongOutcomes.count < 10 { wrongOutcomes.append("\(r.kind) -> \(outcome): \(String(decoding: r.bytes, as: UTF8.self))") }
            if i == nextCollect {
                subscriber.receive(engine.collect(nowMs: 0))
                XCTAssertTrue(engine.accounting.isBalanced, "\(engine.accounting)")
                nextCollect += 1 + rng.below(1_000)
            }
        }
        subscriber.receive(engine.flushAll(nowMs: 0))
        XCTAssertEqual(wrongOutcomes, [])
        XCTAssertEqual(Array(subscriber.violations.prefix(5)), [])

        let counted = stream.filter { [.valid, .outOfOrder, .duplicate].contains($0.kind) }.map { $0.parsed! }
        let reference = referenceRows(counted)
        XCTAssertGreaterThan(reference.dwm.count, 10_000)
        XCTAssertGreaterThanOrEqual(Set(reference.dws.keys.map(\.minute)).count, 7)
        assertRowsEqual(subscriber, reference)

        let a = engine.accounting
        XCTAssertTrue(a.isBalanced, "\(a)")
        XCTAssertEqual(a.consumed, stream.count)
        XCTAssertEqual(a.duplicates, kinds["duplicate"])
        XCTAssertEqual(a.late, kinds["late"])
        XCTAssertEqual(a.filtered[WindowEngine.unknownContentId], kinds["unknownId"]! + kinds["invalidId"]!)
        XCTAssertEqual(a.filteredTotal, kinds["unknownId"]! + kinds["invalidId"]! + kinds["malformed"]!)
        XCTAssertEqual(a.applied, reference.dwm.values.reduce(0) { $0 + Int($1.rev / 2) })
        XCTAssertGreaterThan(a.corrections, 0, "the workload must exercise corrections: \(a)")
        // Evicted windows freed their memory.
        XCTAssertLessThanOrEqual(engine.openWindows, 4)
    }
}
