@testable import StrataJobs
import StrataDWM
import XCTest

/// Which checkpoints a restore may trust on a broker that shows aborted transactions: the dwm job
/// killed while a transaction that only published finals (no new input) was open must restore
/// from the transaction before it, not from checkpoints that claim finals which never committed.
final class CheckpointChoiceTests: XCTestCase {
    let topic = "q.ods.raw"

    /// A transaction of `writer`: one checkpoint per partition at `positions`, all claiming `watermark`.
    func transaction(_ writer: String, _ seq: Int, advanced: Bool, positions: [Int64], watermark: Int64) -> [CheckpointRecord] {
        positions.enumerated().map { p, pos in
            CheckpointRecord(topic: topic, partition: Int32(p), position: pos,
                             checkpoint: SourceCheckpoint(replayOffset: pos / 2, maxTs: watermark + 5_000, watermark: watermark),
                             tag: CheckpointTag(writer: writer, seq: seq, advanced: advanced))
        }
    }

    func log(_ transactions: [[CheckpointRecord]], seals: [String: Int] = [:]) -> CheckpointLog {
        var l = CheckpointLog()
        for t in transactions { for r in t { l.records[r.source, default: []].append(r) } }
        l.seals = seals
        return l
    }

    /// Per partition, the watermark of the checkpoint a restore picks.
    func chosen(_ records: [String: [CheckpointRecord]], committed: [String: Int64]) -> [Int64] {
        (0..<4).map { p in CheckpointRecord.select(records["\(topic)|\(p)"] ?? [], committed: committed["\(topic)|\(p)"]).record?.checkpoint.watermark ?? -1 }
    }

    func committed(_ positions: [Int64]) -> [String: Int64] {
        Dictionary(uniqueKeysWithValues: positions.enumerated().map { ("\(topic)|\($0.offset)", $0.element) })
    }

    func testAKilledTransactionThatOnlyPublishedIsNotTrusted() {
        // The failure seen on the local broker: partition 1 catches up, the last commit moves it to
        // 3 363; then a transaction with no new input closes a minute and is killed before it commits.
        let at = [Int64(9_934), 3_363, 2_252, 4_254]
        let l = log([transaction("a", 0, advanced: true, positions: [9_934, 760, 2_252, 4_254], watermark: 1_000),
                     transaction("a", 1, advanced: true, positions: at, watermark: 2_000),
                     transaction("a", 2, advanced: false, positions: at, watermark: 60_000)])
        // Taken as they come, the aborted one wins: its positions are the committed ones.
        XCTAssertEqual(chosen(l.records, committed: committed(at)), [60_000, 60_000, 60_000, 60_000])
        let (trusted, untrusted) = l.trusted(committed: committed(at))
        XCTAssertEqual(untrusted, [])
        XCTAssertEqual(chosen(trusted, committed: committed(at)), [2_000, 2_000, 2_000, 2_000])
        // Had it committed, a later transaction or a seal of the same engine says so.
        var sealed = l
        sealed.seals = ["a": 3]
        XCTAssertEqual(chosen(sealed.trusted(committed: committed(at)).records, committed: committed(at)), [60_000, 60_000, 60_000, 60_000])
    }

    func testAKilledTransactionThatReadMoreIsNotTrustedForAnyPartition() {
        // It advanced partition 1 past the committed offset and rewrote the others unchanged: none
        // of its checkpoints counts, or partition 0 would restore finals partition 1's never had.
        let at = [Int64(100), 200, 300, 400]
        let l = log([transaction("a", 0, advanced: true, positions: at, watermark: 1_000),
                     transaction("a", 1, advanced: true, positions: [100, 250, 300, 400], watermark: 9_000)])
        XCTAssertEqual(chosen(l.records, committed: committed(at)), [9_000, 1_000, 9_000, 9_000], "mixed: the hazard")
        XCTAssertEqual(chosen(l.trusted(committed: committed(at)).records, committed: committed(at)), [1_000, 1_000, 1_000, 1_000])
    }

    func testTheLastCommitOfAKilledEngineIsTrustedByItsOffsets() {
        // Killed right after a commit that read input: nothing later confirms it, but the group's
        // offsets are the ones it sent.
        let l = log([transaction("a", 0, advanced: true, positions: [10, 20, 30, 40], watermark: 1_000),
                     transaction("a", 1, advanced: true, positions: [11, 20, 30, 41], watermark: 2_000)])
        let c = committed([11, 20, 30, 41])
        XCTAssertEqual(chosen(l.trusted(committed: c).records, committed: c), [2_000, 2_000, 2_000, 2_000])
    }

    func testAnEarlierEngineKilledMidTransactionAtTheSamePositionsLosesToTheOneThatCommitted() {
        // Engine a read to the end and was killed before committing; engine b restored from the
        // commit before, read the same records and committed at the same offsets, then sealed.
        let at = [Int64(50), 60, 70, 80]
        let l = log([transaction("a", 0, advanced: true, positions: [40, 60, 70, 80], watermark: 1_000),
                     transaction("a", 1, advanced: true, positions: at, watermark: 7_000),
                     transaction("b", 0, advanced: true, positions: at, watermark: 5_000),
                     transaction("b", 1, advanced: false, positions: at, watermark: 6_000)],
                    seals: ["b": 2])
        XCTAssertEqual(chosen(l.trusted(committed: committed(at)).records, committed: committed(at)), [6_000, 6_000, 6_000, 6_000])
    }

    func testOlderUntaggedCheckpointsAndAHistoryWithNothingTrustedAreKept() {
        var l = CheckpointLog()
        let old = CheckpointRecord(topic: topic, partition: 0, position: 5, checkpoint: SourceCheckpoint(replayOffset: 1, maxTs: 9, watermark: 3))
        let lone = transaction("z", 0, advanced: false, positions: [5, 6], watermark: 4)
        l.records["\(topic)|0"] = [old]
        l.records["\(topic)|1"] = [lone[1]]
        let (trusted, untrusted) = l.trusted(committed: committed([5, 6]))
        XCTAssertEqual(trusted["\(topic)|0"], [old])
        XCTAssertEqual(trusted["\(topic)|1"], [lone[1]])
        XCTAssertEqual(untrusted, ["\(topic)|1"])
    }

    /// The failure seen in `testKilledDirectDWMJobPublishesTheTruth`: the first life was killed in
    /// its first transaction, whose checkpoint the local broker shows; the group committed nothing.
    /// No checkpoint stays, so the partition is read from its start and its late events published.
    func testAKilledFirstTransactionWithNothingCommittedLeavesNoCheckpoint() {
        let first = transaction("a", 0, advanced: true, positions: [4_000], watermark: 1_000)
        var l = CheckpointLog()
        l.records["\(topic)|0"] = first
        let (trusted, untrusted) = l.trusted(committed: ["\(topic)|0": -1001])
        XCTAssertEqual(trusted["\(topic)|0"], [])
        XCTAssertEqual(untrusted, [])
        XCTAssertNil(CheckpointRecord.select(trusted["\(topic)|0"] ?? [], committed: -1001).record)
    }

    func testRecordsRoundTripWithAndWithoutTags() throws {
        let cp = SourceCheckpoint(replayOffset: 7, maxTs: 1_795_219_260_000, watermark: 1_795_219_200_000, dwmPartialEnd: 1_795_219_260_000, dwmPartsOut: 2)
        for tag in [nil, CheckpointTag(writer: "k3x9", seq: 12, advanced: true), CheckpointTag(writer: "q", seq: 0, advanced: false)] {
            let r = CheckpointRecord(topic: topic, partition: 3, position: 99, checkpoint: cp, tag: tag)
            XCTAssertEqual(CheckpointRecord(key: r.key(group: "g"), value: r.value, group: "g"), r)
            XCTAssertNil(CheckpointRecord(key: r.key(group: "g"), value: r.value, group: "h"))
        }
        XCTAssertNil(CheckpointRecord(key: Array("g|\(topic)|3".utf8), value: Array("99|t:w:x:a|\(cp.encoded)".utf8), group: "g"))
        let seal = CheckpointRecord.seal(group: "g", writer: "w", seq: 4)
        XCTAssertNil(CheckpointRecord(key: seal.key, value: seal.value, group: "g"), "a seal is not a checkpoint")
    }
}
