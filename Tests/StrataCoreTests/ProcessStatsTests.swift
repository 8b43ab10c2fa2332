import Foundation
import XCTest
import StrataCore

final class ProcessStatsTests: XCTestCase {
    func testStatusGivesRSSAndPeak() throws {
        let status = "Name:\tstrata\nVmPeak:\t 2129752 kB\nVmHWM:\t  512000 kB\nVmRSS:\t  471040 kB\nThreads:\t12\n"
        let m = try XCTUnwrap(ProcessStats.parseStatus(status))
        XCTAssertEqual(m.rssKiB, 471_040)
        XCTAssertEqual(m.peakRSSKiB, 512_000)
        // Values too wide for the kernel's padding come straight after the tab.
        XCTAssertEqual(ProcessStats.parseStatus("VmRSS:\t123456789 kB\n")?.rssKiB, 123_456_789)
        // A zombie has no VmRSS line.
        XCTAssertNil(ProcessStats.parseStatus("Name:\tstrata\nState:\tZ (zombie)\n"))
    }

    /// Fields are counted after the last ")", so a command name with spaces and parentheses does not shift them.
    func testStatCountsFieldsAfterTheCommandName() {
        let stat = "4242 (strata (run) x) S 1 4242 4242 0 -1 4194304 1200 0 0 0 731 96 0 0 20 0 14 0 9000 2000000 50000"
        XCTAssertEqual(ProcessStats.parseStat(stat), 731 + 96)
        XCTAssertNil(ProcessStats.parseStat("4242 (x) S 1 2"))
    }

    func testOwnProcessReads() throws {
        let me = try XCTUnwrap(ProcessStats.read(pid: getpid()))
        XCTAssertGreaterThan(me.rssKiB, 0)
        XCTAssertGreaterThanOrEqual(me.peakRSSKiB, me.rssKiB)
        XCTAssertEqual(ProcessStats.read(pid: -1), nil)
    }
}
