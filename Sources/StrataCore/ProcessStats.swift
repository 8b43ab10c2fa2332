import Foundation

/// Memory and CPU time of a process, read from Linux's /proc (another process's, for benchmarks
/// that watch a child; this one's with `pid` = `getpid()`).
public struct ProcessStats: Sendable, Equatable {
    /// Resident set size now (`VmRSS`), KiB.
    public var rssKiB: Int
    /// Peak resident set size so far (`VmHWM`), KiB.
    public var peakRSSKiB: Int
    /// User + system CPU time, in clock ticks (`utime` + `stime` of /proc/PID/stat).
    public var cpuTicks: Int

    public init(rssKiB: Int, peakRSSKiB: Int, cpuTicks: Int) {
        self.rssKiB = rssKiB
        self.peakRSSKiB = peakRSSKiB
        self.cpuTicks = cpuTicks
    }

    public var cpuSeconds: Double { Double(cpuTicks) / Double(Self.ticksPerSecond) }

    public static let ticksPerSecond = max(1, Int(sysconf(Int32(_SC_CLK_TCK))))

    /// The process's figures, or nil once it is gone (or off Linux).
    public static func read(pid: Int32) -> ProcessStats? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let memory = parseStatus(status), let ticks = parseStat(stat) else { return nil }
        return ProcessStats(rssKiB: memory.rssKiB, peakRSSKiB: memory.peakRSSKiB, cpuTicks: ticks)
    }

    /// `VmRSS` and `VmHWM` (kB) of a /proc/PID/status text; nil without `VmRSS` (a zombie has none).
    public static func parseStatus(_ text: String) -> (rssKiB: Int, peakRSSKiB: Int)? {
        var rss: Int?, hwm: Int?
        for line in text.split(separator: "\n") {
            if line.hasPrefix("VmRSS:") { rss = kib(line) } else if line.hasPrefix("VmHWM:") { hwm = kib(line) }
        }
        guard let rss else { return nil }
        return (rss, hwm ?? rss)
    }

    /// `utime` + `stime` (ticks) of a /proc/PID/stat line. The command name (field 2) is in
    /// parentheses and may hold spaces and parentheses itself, so fields are counted after the
    /// last `)`: state is the first, utime the 12th, stime the 13th.
    public static func parseStat(_ text: String) -> Int? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count > 12, let utime = Int(fields[11]), let stime = Int(fields[12]) else { return nil }
        return utime + stime
    }

    private static func kib(_ line: Substring) -> Int? {
        // "VmRSS:\t  104312 kB": the kernel pads with spaces after a tab.
        line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.flatMap { Int($0) }
    }
}
