import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A throwaway PostgreSQL cluster: `initdb` into a temp dir, `pg_ctl start` on a free local port,
/// torn down (immediate stop + rm) on `stop()`/deinit. When the tests run as root the cluster is
/// created and run as the `postgres` user (`runuser -u postgres --`), since PostgreSQL refuses to
/// run as root and its data dir must be owned by the server's user.
/// Shared by the store tests (StrataDimsTests) and the reconcile tests.
/// Binaries: $STRATA_PG_BIN, else /usr/lib/postgresql/<15…>/bin. Missing binaries are an error.
public final class PostgresServerProcess {
    public struct Failure: Error, CustomStringConvertible { public let description: String }

    public let port: Int
    public let bin: String
    private let dir: URL
    private var running = false

    public var url: String { "postgres://postgres@127.0.0.1:\(port)/postgres" }

    public init() throws {
        bin = try Self.findBinaries()
        port = try RedisServerProcess.freePort()
        dir = URL(fileURLWithPath: "/tmp").appendingPathComponent("strata-pg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        if getuid() == 0 {
            try Self.run("/bin/chown", ["postgres:postgres", dir.path])
        }
        do {
            try asServerUser("\(bin)/initdb", ["-D", dataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                                               "--locale=C", "--no-sync", "--no-instructions"])
            try start()
        } catch {
            let log = (try? String(contentsOfFile: "\(dir.path)/server.log", encoding: .utf8)) ?? ""
            try? FileManager.default.removeItem(at: dir)
            throw Failure(description: "\(error)\nserver.log:\n\(log)")
        }
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: dir)
    }

    private var dataDir: String { "\(dir.path)/data" }

    /// Starts the server (again, after `stop()`: same data, same port).
    public func start() throws {
        guard !running else { return }
        try asServerUser("\(bin)/pg_ctl", ["-D", dataDir, "-l", "\(dir.path)/server.log", "-w", "-t", "60",
                                           "-o", "-p \(port) -k \(dir.path) -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
                                           "start"])
        running = true
    }

    /// Stops the server at once (`-m immediate`: connections are cut, as in a crash); the data stays
    /// until deinit, so `start()` brings the same cluster back.
    public func stop() {
        guard running else { return }
        running = false
        _ = try? asServerUser("\(bin)/pg_ctl", ["-D", dataDir, "-m", "immediate", "-w", "stop"])
    }

    /// Runs SQL through psql and returns its unaligned, tuples-only output.
    public func psql(_ sql: String, database: String = "postgres") throws -> String {
        try Self.run(wrapped("\(bin)/psql").0, wrapped("\(bin)/psql").1 + [
            "-h", "127.0.0.1", "-p", "\(port)", "-U", "postgres", "-d", database, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
    }

    private func wrapped(_ tool: String) -> (String, [String]) {
        getuid() == 0 ? ("/usr/sbin/runuser", ["-u", "postgres", "--", tool]) : (tool, [])
    }

    @discardableResult
    private func asServerUser(_ tool: String, _ args: [String]) throws -> String {
        let (exe, prefix) = wrapped(tool)
        return try Self.run(exe, prefix + args)
    }

    private static func findBinaries() throws -> String {
        let env = ProcessInfo.processInfo.environment
        var candidates: [String] = []
        if let explicit = env["STRATA_PG_BIN"] { candidates.append(explicit) }
        candidates += (13...18).reversed().map { "/usr/lib/postgresql/\($0)/bin" }
        for c in candidates where FileManager.default.isExecutableFile(atPath: "\(c)/initdb")
            && FileManager.default.isExecutableFile(atPath: "\(c)/pg_ctl") {
            return c
        }
        throw Failure(description: """
            PostgreSQL server binaries (initdb, pg_ctl) not found in \(candidates.joined(separator: ", ")). \
            Install them (Debian: apt-get install postgresql-15) or set STRATA_PG_BIN to their directory.
            """)
    }

    /// Runs a command to completion and returns its combined output. posix_spawn + waitpid
    /// rather than Foundation's Process, whose exit monitoring on Linux can miss a child that
    /// exits after spawning a daemon (pg_ctl start) and then wait forever.
    @discardableResult
    public static func run(_ exe: String, _ args: [String]) throws -> String {
        let outPath = "/tmp/strata-cmd-\(UUID().uuidString).out"
        defer { unlink(outPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Through sh, to start in /tmp: tools run as the postgres user must be able to stat the cwd.
        let argv = (["/bin/sh", "-c", "cd /tmp && exec \"$0\" \"$@\"", exe] + args).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, "/bin/sh", &actions, nil, argv, environ)
        guard rc == 0 else { throw Failure(description: "cannot run \(exe): \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let text = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        let exited = status & 0x7f == 0
        let code = (status >> 8) & 0xff
        guard exited && code == 0 else {
            throw Failure(description: "\(exe) \(args.joined(separator: " ")) failed (status \(status)):\n\(text)")
        }
        return text
    }
}
