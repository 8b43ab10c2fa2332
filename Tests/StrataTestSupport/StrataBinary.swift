public import Foundation

/// The `strata` executable built beside the test bundle (tests that SIGKILL a real job use it).
/// STRATA_BIN overrides.
public func strataBinary(packageRoot: URL) -> String {
    if let p = ProcessInfo.processInfo.environment["STRATA_BIN"] { return p }
    let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for candidate in [dir, dir.deletingLastPathComponent()] {
        let p = candidate.appendingPathComponent("strata").path
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    return packageRoot.appendingPathComponent(".build/debug/strata").path
}

/// Hands a value to another thread in a test that knows it is used by one thread at a time.
public final class UncheckedSendable<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}

/// Starts the strata executable at `binary` with `arguments`. Its output goes to /dev/null unless
/// `standardOutput`/`standardError` say otherwise (a FileHandle or a Pipe; nil inherits the test's).
public func launchStrata(_ binary: String, _ arguments: [String],
                         standardOutput: Any? = FileHandle.nullDevice,
                         standardError: Any? = FileHandle.nullDevice) throws -> Process {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: binary)
    process.arguments = arguments
    if let standardOutput { process.standardOutput = standardOutput }
    if let standardError { process.standardError = standardError }
    try process.run()
    return process
}
