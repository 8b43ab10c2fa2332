import Foundation

/// One row of the fault suite's verdict table (`deploy/local/chaos`): a fault test appends what
/// it injected and what came through to the JSON-lines file named by `STRATA_CHAOS_REPORT`; without
/// that variable (the plain test command) nothing is written. "Records" are the events the fault
/// could affect: in = offered to the faulty stage, out = accounted for after it.
public enum FaultReport {
    public static func record(fault: String, injected: Int, recordsIn: Int, recordsOut: Int, lost: Int, duplicated: Int,
                              exact: Bool, broker: String = TestEnvironment.brokerKind) {
        guard let path = ProcessInfo.processInfo.environment["STRATA_CHAOS_REPORT"], !path.isEmpty else { return }
        let row: [String: Any] = ["fault": fault, "broker": broker, "injected": injected, "in": recordsIn, "out": recordsOut,
                                  "lost": lost, "duplicated": duplicated, "exact": exact]
        guard var line = try? JSONSerialization.data(withJSONObject: row, options: [.sortedKeys]) else { return }
        line.append(UInt8(ascii: "\n"))
        if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil) }
        guard let h = FileHandle(forWritingAtPath: path) else { return }
        h.seekToEndOfFile()
        h.write(line)
        try? h.close()
    }
}
