import Foundation
import StrataArchive
import Synchronization
import XCTest

/// A partition's files are published only by the instance that took its lease last, and taking
/// a lease waits for a publish under it to end.
final class ArchiveLeasesTests: XCTestCase {
    private var root = ""

    override func setUp() {
        root = NSTemporaryDirectory() + "strata-leases-\(UUID().uuidString.prefix(8))"
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: root)
    }

    func testOnlyTheLatestTakerPublishes() throws {
        let a = try ArchiveLeases(root: root, owner: "g/a"), b = try ArchiveLeases(root: root, owner: "g/b")
        var ran: [String] = []
        try a.take([0, 1])
        XCTAssertTrue(try a.whileHeld(0) { ran.append("a0") })
        XCTAssertFalse(try b.whileHeld(0) { ran.append("b0") }, "b never took partition 0")
        try b.take([1])
        XCTAssertFalse(try a.whileHeld(1) { ran.append("a1") }, "b took partition 1 after a: a is a zombie for it")
        XCTAssertTrue(try b.whileHeld(1) { ran.append("b1") })
        XCTAssertTrue(try a.whileHeld(0) { ran.append("a0") }, "partition 0 is still a's")
        try a.take([])
        XCTAssertFalse(try a.whileHeld(0) { ran.append("a0") }, "revoked: nothing is a's any more")
        try a.take([1])
        XCTAssertTrue(try a.whileHeld(1) { ran.append("a1") }, "assigned again: a's")
        XCTAssertFalse(try b.whileHeld(1) { ran.append("b1") })
        XCTAssertEqual(ran, ["a0", "b1", "a0", "a1"])
        let text = try String(contentsOfFile: root + "/_leases/part-1", encoding: .utf8)
        XCTAssertTrue(text.hasPrefix("g/a "), "the lease names its holder: \(text)")
    }

    /// A new owner's take waits for a publish under way to finish: the old owner's renames are
    /// either all before the take or not made at all.
    func testTakingWaitsForAPublishUnderWay() throws {
        let a = try ArchiveLeases(root: root, owner: "g/a"), b = try ArchiveLeases(root: root, owner: "g/b")
        try a.take([3])
        let publishing = DispatchSemaphore(value: 0)
        let published = Atomic<Bool>(false)
        let done = DispatchSemaphore(value: 0)
        let held = Atomic<Bool>(false)
        let old = Unchecked(value: a)   // used by that thread alone until `done`
        Thread {
            let r = try? old.value.whileHeld(3) {
                publishing.signal()
                Thread.sleep(forTimeInterval: 0.5)
                published.store(true, ordering: .sequentiallyConsistent)
            }
            held.store(r == true, ordering: .sequentiallyConsistent)
            done.signal()
        }.start()
        publishing.wait()
        try b.take([3])
        XCTAssertTrue(published.load(ordering: .sequentiallyConsistent), "the take returned only after the publish ended")
        done.wait()
        XCTAssertTrue(held.load(ordering: .sequentiallyConsistent))
        XCTAssertFalse(try a.whileHeld(3) {}, "after the take, a's next publish is refused")
    }
}

private struct Unchecked<T>: @unchecked Sendable { let value: T }
