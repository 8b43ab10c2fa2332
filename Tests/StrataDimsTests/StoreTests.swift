import Foundation
import Logging
import StrataDims
import StrataGen
import StrataTestSupport
import XCTest

/// One test body for every backend: the store contract, not an implementation, is under test.
enum StoreContract {
    /// Ids that would break SQL if they were ever spliced into a statement.
    static let hostileIds = [
        "c'; DROP TABLE content_dim; --", "x' OR '1'='1", "\"quoted\"", "semi;colon", "back\\slash",
        "per%cent_under", "内容🎬", "tab\tand\nnewline", "' UNION SELECT 1,2,3,4,5,6,7 --",
    ]

    static func run(_ store: any DimensionStore, file: StaticString = #filePath, line: UInt = #line) throws {
        try store.migrate()
        try store.migrate() // idempotent

        let gen = DimensionGenerator(contents: 2_000, users: 2_000, seed: 7)
        let contents = gen.allContents()
        let users = gen.allUsers()
        try store.upsert(contents: contents)
        try store.upsert(users: users)
        XCTAssertEqual(try store.contentCount(), 2_000, file: file, line: line)
        XCTAssertEqual(try store.userCount(), 2_000, file: file, line: line)

        // 2 000 known + 500 unknown ids: 5 chunks of 500, one query each.
        let unknown = (0..<500).map { "c9\(String(format: "%07d", $0))" }
        let before = store.queryCount
        let found = try store.contents(contents.map(\.contentId) + unknown)
        XCTAssertEqual(store.queryCount - before, 5, "one query per chunk of 500", file: file, line: line)
        XCTAssertEqual(found.count, 2_000, file: file, line: line)
        for c in contents { XCTAssertEqual(found[c.contentId], c, file: file, line: line) }
        for id in unknown { XCTAssertNil(found[id], file: file, line: line) }

        // By position (the cache's form): each known id's row comes once, at its own index, across
        // chunks and between unknown ids.
        var asked: [String] = [], expected: [Int: ContentDim] = [:]
        for i in 0..<2_500 {
            if i % 5 == 4 { asked.append(unknown[i / 5]) } else { expected[i] = contents[expected.count]; asked.append(expected[i]!.contentId) }
        }
        var seen: [Int: ContentDim] = [:]
        try store.contents(asked) { i, c in XCTAssertNil(seen.updateValue(c, forKey: i), "position \(i) answered twice", file: file, line: line) }
        XCTAssertEqual(seen, expected, file: file, line: line)
        let userIds = ["u999999999"] + users.map(\.userId).reversed()
        var seenUsers: [Int: UserDim] = [:]
        try store.users(userIds) { i, u in XCTAssertNil(seenUsers.updateValue(u, forKey: i), file: file, line: line) }
        XCTAssertEqual(seenUsers, Dictionary(uniqueKeysWithValues: users.reversed().enumerated().map { ($0 + 1, $1) }), file: file, line: line)

        let foundUsers = try store.users(users.map(\.userId).reversed() + ["u999999999"])
        XCTAssertEqual(foundUsers.count, 2_000, file: file, line: line)
        for u in users { XCTAssertEqual(foundUsers[u.userId], u, file: file, line: line) }

        // Empty lookups ask nothing.
        let q0 = store.queryCount
        XCTAssertTrue(try store.contents([]).isEmpty, file: file, line: line)
        XCTAssertTrue(try store.users([]).isEmpty, file: file, line: line)
        XCTAssertEqual(store.queryCount, q0, file: file, line: line)

        // Hostile ids are data: absent first, then stored and found verbatim; the table survives.
        XCTAssertTrue(try store.contents(hostileIds).isEmpty, file: file, line: line)
        let hostile = hostileIds.enumerated().map { i, id in
            ContentDim(contentId: id, title: "it's \"fine\"; --", category: "news", authorId: "a000001",
                       region: "Guangdong", status: "published", publishTs: Int64(i))
        }
        try store.upsert(contents: hostile)
        let back = try store.contents(hostileIds)
        XCTAssertEqual(back.count, hostileIds.count, file: file, line: line)
        for h in hostile { XCTAssertEqual(back[h.contentId], h, file: file, line: line) }
        XCTAssertEqual(try store.contentCount(), 2_000 + hostileIds.count, file: file, line: line)
        let hostileUser = UserDim(userId: "u'; DELETE FROM user_dim; --", gender: "f", ageBand: "18-24",
                                  province: "Guangdong", cityTier: 1)
        try store.upsert(users: [hostileUser])
        XCTAssertEqual(try store.users([hostileUser.userId]), [hostileUser.userId: hostileUser], file: file, line: line)
        XCTAssertEqual(try store.userCount(), 2_001, file: file, line: line)

        // Upsert replaces; duplicates in one batch: the last wins.
        var changed = contents[42]
        changed.title = "Updated, with \"quotes\""
        changed.status = "offline"
        changed.publishTs += 1
        var twice = changed
        twice.title = "final title"
        try store.upsert(contents: [changed, twice])
        XCTAssertEqual(try store.contents([changed.contentId])[changed.contentId], twice, file: file, line: line)
        var movedUser = users[7]
        movedUser.province = "Beijing"
        movedUser.cityTier = 1
        try store.upsert(users: [movedUser])
        XCTAssertEqual(try store.users([movedUser.userId])[movedUser.userId], movedUser, file: file, line: line)

        // Scans see every id exactly once.
        var scanned: [String] = []
        try store.forEachContentId { scanned.append($0) }
        XCTAssertEqual(scanned.count, 2_000 + hostileIds.count, file: file, line: line)
        XCTAssertEqual(Set(scanned), Set(contents.map(\.contentId) + hostileIds), file: file, line: line)
        var scannedUsers = Set<String>()
        try store.forEachUserId { scannedUsers.insert($0) }
        XCTAssertEqual(scannedUsers, Set(users.map(\.userId) + [hostileUser.userId]), file: file, line: line)

        // Deletes.
        try store.deleteContents(hostileIds + ["never-existed"])
        try store.deleteUsers([hostileUser.userId])
        XCTAssertTrue(try store.contents(hostileIds).isEmpty, file: file, line: line)
        XCTAssertEqual(try store.contentCount(), 2_000, file: file, line: line)
        XCTAssertEqual(try store.userCount(), 2_000, file: file, line: line)
    }

    /// More ids than one scan page, to cross page boundaries.
    static func runLargeScan(_ store: any DimensionStore, file: StaticString = #filePath, line: UInt = #line) throws {
        try store.migrate()
        let users = DimensionGenerator(contents: 0, users: 25_001, seed: 1).allUsers()
        try store.upsert(users: users)
        var n = 0
        var last = ""
        try store.forEachUserId { id in
            XCTAssertGreaterThan(id, last, "ids come in ascending order, each once", file: file, line: line)
            last = id
            n += 1
        }
        XCTAssertEqual(n, 25_001, file: file, line: line)
    }
}

final class SQLiteDimensionStoreTests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("strata-dims-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    func testStoreContract() throws {
        try StoreContract.run(SQLiteDimensionStore(path: dir.appendingPathComponent("dims.db").path))
    }

    func testLargeScanCrossesPages() throws {
        try StoreContract.runLargeScan(SQLiteDimensionStore(path: dir.appendingPathComponent("dims.db").path))
    }

    func testFactoryOpensSQLiteAndSchemaHasAllTables() throws {
        let path = dir.appendingPathComponent("f.db").path
        let store = try DimensionStoreFactory.open("sqlite:\(path)")
        XCTAssertTrue(store is SQLiteDimensionStore)
        try store.migrate()
        // Checked with the sqlite3 shell, independently of the code under test.
        let tables = try PostgresServerProcess.run("/usr/bin/sqlite3", [path,
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name; SELECT version FROM schema_version; PRAGMA journal_mode;"])
        XCTAssertEqual(tables.split(separator: "\n").map(String.init),
                       ["content_dim", "dws_minute", "schema_version", "user_dim", "1", "wal"])
        let columns = try PostgresServerProcess.run("/usr/bin/sqlite3", [path, "SELECT group_concat(name, ',') FROM pragma_table_info('dws_minute')"])
        XCTAssertEqual(columns.trimmingCharacters(in: .whitespacesAndNewlines),
                       "minute,content_id,expose,click,play,play_ms,like,share,comment,report,uv,rev,final,emitted_at")
    }

    func testDataSurvivesReopenAndIsSharedBetweenInstances() throws {
        let path = dir.appendingPathComponent("shared.db").path
        let a = try SQLiteDimensionStore(path: path)
        try a.migrate()
        let b = try SQLiteDimensionStore(path: path)
        // Reads before the write must not pin an old snapshot on the reader connections.
        XCTAssertEqual(try a.contentCount(), 0)
        XCTAssertEqual(try b.contentCount(), 0)
        try a.forEachContentId { _ in }
        let c = DimensionGenerator(contents: 3, users: 0).allContents()
        try a.upsert(contents: c)
        XCTAssertEqual(try a.contents(c.map(\.contentId)).count, 3, "the reader connection sees the writer's commit")
        XCTAssertEqual(try b.contents(c.map(\.contentId)).count, 3, "a second instance sees committed rows")
        XCTAssertEqual(try b.contentCount(), 3)
        let reopened = try SQLiteDimensionStore(path: path)
        XCTAssertEqual(try reopened.contents(c.map(\.contentId)).count, 3)
    }

    func testFactoryRejectsUnknownAddresses() {
        for bad in ["mysql://localhost/db", "data/strata.db", "sqlite:", "redis://localhost"] {
            XCTAssertThrowsError(try DimensionStoreFactory.open(bad), bad) { error in
                guard case DimensionStoreError.invalidAddress(let message) = error else {
                    return XCTFail("\(bad): \(error)")
                }
                XCTAssertFalse(message.isEmpty)
            }
        }
    }

    func testConcurrentLookupsDuringBulkUpsert() throws {
        let store = try SQLiteDimensionStore(path: dir.appendingPathComponent("c.db").path)
        try store.migrate()
        let gen = DimensionGenerator(contents: 5_000, users: 0)
        try store.upsert(contents: gen.allContents())
        let ids = (0..<5_000).map(DimensionGenerator.contentId)
        let failures = LockedCounter()
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            if i == 0 {
                do { try store.upsert(contents: gen.allContents()) } catch { failures.add() }
            } else {
                do { if try store.contents(ids).count != 5_000 { failures.add() } } catch { failures.add() }
            }
        }
        XCTAssertEqual(failures.value, 0)
    }
}

final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add() { lock.lock(); n += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}

final class PostgresDimensionStoreTests: XCTestCase {
    // One cluster for the class: initdb costs a few seconds.
    nonisolated(unsafe) private static var server: PostgresServerProcess?
    nonisolated(unsafe) private static var databases = 0

    override func setUpWithError() throws {
        if Self.server == nil { Self.server = try PostgresServerProcess() }
    }

    override class func tearDown() {
        server?.stop()
        server = nil
        super.tearDown()
    }

    /// A fresh database per test, so tests do not see each other's rows.
    private func freshStore() throws -> (PostgresDimensionStore, String) {
        let server = try XCTUnwrap(Self.server)
        Self.databases += 1
        let name = "dims_\(Self.databases)"
        _ = try server.psql("CREATE DATABASE \(name)")
        let url = "postgres://postgres@127.0.0.1:\(server.port)/\(name)"
        return (try PostgresDimensionStore(url: url), name)
    }

    func testStoreContract() throws {
        let (store, _) = try freshStore()
        try StoreContract.run(store)
    }

    func testLargeScanCrossesPages() throws {
        let (store, _) = try freshStore()
        try StoreContract.runLargeScan(store)
    }

    /// A statement the server refuses (here: its table is gone) is `.rejected`, and a caller that
    /// waits out an unavailable store gives up on it at once instead of asking again for minutes.
    func testARefusedStatementIsNotWaitedFor() throws {
        let server = try XCTUnwrap(Self.server)
        let (store, name) = try freshStore()
        try store.migrate()
        _ = try server.psql("DROP TABLE user_dim", database: name)
        let wait = StoreWait(limit: .seconds(60), subject: "dimension store", logger: Logger(label: "test"))
        let start = ContinuousClock.now
        XCTAssertThrowsError(try wait.run("lookup") { try store.users(["u000000001"]) { _, _ in } }) { error in
            guard case .rejected(let message)? = error as? DimensionStoreError else {
                return XCTFail("\(error)")
            }
            XCTAssertTrue(message.contains("user_dim"), message)
            XCTAssertTrue(message.contains("42P01"), message)   // undefined_table
        }
        XCTAssertEqual(wait.retries, 0)
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(5))
    }

    func testFactoryMigrationAndSchema() throws {
        let server = try XCTUnwrap(Self.server)
        _ = try server.psql("CREATE DATABASE factory_db")
        let store = try DimensionStoreFactory.open("postgres://postgres:ignored@127.0.0.1:\(server.port)/factory_db?sslmode=disable")
        XCTAssertTrue(store is PostgresDimensionStore)
        // Concurrent migrations serialise on the advisory lock.
        let errors = LockedCounter()
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            do { try store.migrate() } catch { errors.add() }
        }
        XCTAssertEqual(errors.value, 0)
        let tables = try server.psql(
            "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables WHERE table_schema = 'public'",
            database: "factory_db")
        XCTAssertTrue(tables.contains("content_dim,dws_minute,schema_version,user_dim"), tables)
        XCTAssertEqual(try server.psql("SELECT version FROM schema_version", database: "factory_db"), "1\n")
    }

    /// Nobody listens on the port: the store's own error (a refused connection is retried by the
    /// pool until the connect timeout, so either "cannot connect" or "did not finish") names the address.
    func testUnreachableServerFailsFast() throws {
        let port = try RedisServerProcess.freePort()
        XCTAssertThrowsError(try PostgresDimensionStore(url: "postgres://postgres@127.0.0.1:\(port)/x",
                                                        connectTimeout: .seconds(3))) { error in
            XCTAssertTrue(error is DimensionStoreError, "\(type(of: error)): \(error)")
            XCTAssertTrue("\(error)".contains("postgres://postgres@127.0.0.1:\(port)/x"), "\(error)")
        }
    }
}
