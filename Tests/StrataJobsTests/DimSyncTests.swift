import Foundation
import StrataCore
import StrataDims
import StrataGen
import StrataJobs
import StrataTestSupport
import XCTest

/// `strata job dimsync` as a group member, against the real broker, Redis and store.
final class DimSyncTests: XCTestCase {
    /// A group that never committed reads `dim.changelog` from its first record, applies every
    /// change to the cache (a changed content reaches a cache that held the old one), commits, and
    /// `--until-idle` ends the run; the group's next run starts where the first committed.
    func testAGroupMemberAppliesTheWholeChangelogThenResumesWhereItCommitted() throws {
        let sandbox = try PipelineSandbox(contents: 200, users: 1_000, seed: 101)
        let cache = try sandbox.makeCache()
        let gen = DimensionGenerator(contents: sandbox.contents, users: sandbox.users, seed: 101)
        let changed = gen.allContents().prefix(40).map { c in
            var c = c
            c.title = "retitled " + c.contentId
            return c
        }
        // The cache holds the old titles (in process and in Redis) before the change is written.
        let before = try cache.lookupContents(changed.map(\.contentId))
        XCTAssertEqual(before.count, changed.count)
        XCTAssertFalse(before.values.contains { $0.title.hasPrefix("retitled") })
        try DimensionWriter(store: sandbox.store, brokers: sandbox.brokers, kafka: [:], topicPrefix: sandbox.prefix).write(contents: Array(changed))

        var options = DimSync.Options(brokers: sandbox.brokers)
        options.topicPrefix = sandbox.prefix
        options.groupId = sandbox.prefix + "dimsync"
        options.untilIdle = .seconds(3)
        let first = DimSync(options: options, cache: cache)
        let started = ContinuousClock.now
        try first.run(shouldStop: { ContinuousClock.now - started > .seconds(120) })
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(120), "the idle run ended by itself")
        // The sandbox wrote every content and user once, then the changes.
        XCTAssertEqual(first.applied, sandbox.contents + sandbox.users + changed.count, "every changelog record, from the first")
        XCTAssertEqual(first.rejected, 0)
        cache.awaitWriteBack()
        let after = try cache.lookupContents(changed.map(\.contentId))
        XCTAssertEqual(Set(after.values.map(\.title)), Set(changed.map(\.title)), "the cache has the changed titles")

        let second = DimSync(options: options, cache: cache)
        try second.run(shouldStop: { ContinuousClock.now - started > .seconds(240) })
        XCTAssertEqual(second.applied, 0, "the group's next run resumes at its committed offsets")
    }
}
