import Foundation
import StrataCore
import StrataDWM
import StrataDims
import StrataGen
import StrataJobs
import StrataRedis
import StrataTestSupport
import XCTest

/// The dwm job's enrichment (lookup + encoding) against a private redis-server and a SQLite
/// store: every row's bytes, cold, with warm Redis (over several connections) and warm in
/// process, equal a JSON text written independently here from the store's dimensions.
final class RowEnricherTests: XCTestCase {
    private let actions = ["exposure", "click", "play", "like"]
    private let gen = DimensionGenerator(contents: 40, users: 3_000, seed: 5)

    /// Users whose values need escaping or are not ASCII, and one stored in Redis as valid but
    /// differently written JSON (keys reordered, spaces, `\u` escapes): rows carry the same bytes.
    private let special = [
        UserDim(userId: "u900000001", gender: "f\"q", ageBand: "18-24", province: "He\\bei\n\t", cityTier: 3),
        UserDim(userId: "u900000002", gender: "m", ageBand: "25-34", province: "Zhèjiāng 浙江", cityTier: 1),
        UserDim(userId: "u900000003", gender: "f", ageBand: "35-44", province: "Hé\u{1}nan", cityTier: 5),
    ]

    func testRowsAreTheSameBytesColdWarmRedisAndWarmInProcess() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("strata-enrich-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try RedisServerProcess()
        let store = try SQLiteDimensionStore(path: dir.appendingPathComponent("dims.db").path)
        try store.migrate()
        try store.upsert(contents: gen.allContents())
        try store.upsert(users: gen.allUsers() + special)

        var config = DimensionCacheConfig()
        config.redisConnections = 3
        config.redisParallelFrom = 100 // the parallel path, with few ids
        config.redisChunkSize = 70
        config.redisPipelineKeys = 400
        let redisConfig = RedisConfig(port: server.port, connectTimeout: .milliseconds(300), commandTimeout: .seconds(2),
                                      reconnectBackoffInitial: .milliseconds(5), reconnectBackoffMax: .milliseconds(50), maxAttempts: 2)
        let cache = try DimensionCache(store: store, redis: try RedisClient(config: redisConfig), config: config,
                                       metrics: MetricsRegistry())
        let admin = try RedisClient(config: redisConfig)

        // Cells: every user with two contents; well-formed unknown users (no profile: `null`).
        let unknown = (0..<50).map { "u8000000\(String(format: "%02d", $0))" }
        let userIds = (0..<gen.users).map(DimensionGenerator.userId) + special.map(\.userId) + unknown
        var emission = Emission()
        let minute: Int64 = 1_700_000_040_000
        for (i, u) in userIds.enumerated() {
            for c in Set([i % gen.contents, (i * 7 + 3) % gen.contents]).sorted() {
                emission.dwm.append(DWMRow(minute: minute, contentId: DimensionGenerator.contentId(c), userId: u,
                                           counts: [Int64(i % 5), 1, Int64(i % 3), 0], playMs: Int64(i * 13),
                                           strategy: i % 3 == 0 ? nil : "s\"\(i % 4)", isFinal: i % 2 == 0, rev: Int64(i % 9)))
            }
        }
        // A well-formed content id the store does not know (a filter false positive would get this
        // far): its rows carry `"content":null` and its DWS row is reported without content.
        let unknownContent = "c77777777"
        for u in unknown.prefix(3) {
            emission.dwm.append(DWMRow(minute: minute, contentId: unknownContent, userId: u, counts: [1, 0, 0, 0], playMs: 0,
                                       strategy: nil, isFinal: false, rev: 2))
        }
        for c in 0..<gen.contents {
            emission.dws.append(DWSRow(minute: minute, contentId: DimensionGenerator.contentId(c), counts: [3, 2, 1, 0],
                                       playMs: 99, uv: Int64(c), isFinal: true, rev: 2))
            if c == gen.contents / 2 {
                emission.dws.append(DWSRow(minute: minute, contentId: unknownContent, counts: [3, 0, 0, 0],
                                           playMs: 0, uv: 3, isFinal: false, rev: 6))
            }
        }
        let profiles = Dictionary(uniqueKeysWithValues: (gen.allUsers() + special).map { ($0.userId, $0) })
        let contents = Dictionary(uniqueKeysWithValues: gen.allContents().map { ($0.contentId, $0) })
        let expectedDWM = emission.dwm.map { expected($0, content: contents[$0.contentId], user: profiles[$0.userId]) }
        let expectedDWS = emission.dws.map { expected($0, content: contents[$0.contentId]) }

        // Passes of 64 KB: several per batch, one across the DWM/DWS boundary.
        let passBytes = 64 << 10
        var enricher = RowEnricher(cache: cache, actions: actions, passBytes: passBytes)
        let batch = RowBatch(actionCount: actions.count)
        batch.append(emission)
        XCTAssertEqual(batch.emission, emission, "the batch holds the rows as they were")
        func check(_ phase: String, file: StaticString = #filePath, line: UInt = #line) throws {
            let asked = try enricher.lookUp(batch)
            XCTAssertEqual(asked.users, userIds.count, phase, file: file, line: line)
            // Every row of a pass encoded first, then read: the rows' bytes must all stay as
            // written until the next pass (they are produced without a copy).
            var dwm: [String] = [], dws: [String] = [], withoutContent = 0, passes = 0, mixed = 0, next = 0
            while next < batch.dwmCount + batch.dwsCount {
                let pass = enricher.encode(batch, from: next, emittedAt: 42)
                XCTAssertEqual(pass.rows.lowerBound, next, phase, file: file, line: line)
                XCTAssertFalse(pass.rows.isEmpty, phase, file: file, line: line)
                XCTAssertEqual(pass.dwmRows.count + pass.dwsRows.count, pass.rows.count, phase, file: file, line: line)
                let rows = pass.dwmRows.map { String(decoding: enricher.dwmValue($0), as: UTF8.self) }
                    + pass.dwsRows.map { String(decoding: enricher.dwsValue($0), as: UTF8.self) }
                XCTAssertEqual(pass.bytes, rows.reduce(0) { $0 + $1.utf8.count }, phase, file: file, line: line)
                XCTAssertLessThan(pass.bytes - rows.last!.utf8.count, passBytes, "a pass stops once it holds passBytes", file: file, line: line)
                dwm += rows.prefix(pass.dwmRows.count)
                dws += rows.suffix(pass.dwsRows.count)
                withoutContent += pass.dwsWithoutContent
                if !pass.dwmRows.isEmpty && !pass.dwsRows.isEmpty { mixed += 1 }
                next = pass.rows.upperBound
                passes += 1
            }
            XCTAssertGreaterThanOrEqual(passes, 3, phase, file: file, line: line)
            XCTAssertEqual(mixed, 1, "one pass holds the last DWM rows and the first DWS rows", file: file, line: line)
            let known = (0..<batch.dwsCount).map { enricher.hasContent(batch.dwsRow($0)) }
            XCTAssertEqual(known, emission.dws.map { contents[$0.contentId] != nil }, phase, file: file, line: line)
            XCTAssertEqual(withoutContent, known.filter { !$0 }.count, phase, file: file, line: line)
            XCTAssertEqual(dwm.count, expectedDWM.count, phase, file: file, line: line)
            for (got, want) in zip(dwm, expectedDWM) where got != want {
                XCTFail("\(phase): \(got) != \(want)", file: file, line: line)
                break
            }
            XCTAssertEqual(dws, expectedDWS, phase, file: file, line: line)
        }

        try check("cold")
        XCTAssertGreaterThan(cache.stats.storeQueries, 0)
        cache.awaitWriteBack()

        // Redis holds one profile as equivalent JSON written differently, and one unreadable entry.
        let odd = #"{ "city_tier": 1, "province": "Zh\u00e8ji\u0101ng \u6d59\u6c5f", "user_id": "u900000002", "age_band": "25-34", "gender": "m" }"#
        try admin.set(cache.redisKey(user: "u900000002"), Array(odd.utf8), ttlSeconds: 600)
        try admin.set(cache.redisKey(user: DimensionGenerator.userId(7)), Array("{broken".utf8), ttlSeconds: 600)

        for round in 0..<2 {
            cache.clearLocalTier()
            let before = cache.stats
            try check("warm redis \(round)")
            let after = cache.stats
            XCTAssertEqual(after.storeIds - before.storeIds, round == 0 ? 1 : 0, "only the unreadable entry goes to the store")
            XCTAssertEqual(after.negativeHits - before.negativeHits + after.blocked - before.blocked, unknown.count + 1,
                           "unknown users and the unknown content: blocked by the filter or answered by negative entries")
            XCTAssertEqual(after.redisHits - before.redisHits, gen.users + special.count + gen.contents - (round == 0 ? 1 : 0))
            try check("warm in process \(round)")
            XCTAssertEqual(cache.stats.redisHits, after.redisHits, "the in-process tier answered")
        }
        XCTAssertGreaterThanOrEqual(cache.redisStats?.roundTrips ?? 0, 3, "several connections read")
        XCTAssertEqual(try admin.get(cache.redisKey(user: DimensionGenerator.userId(7))).map { Array($0) },
                       DimJSON.encode(profiles[DimensionGenerator.userId(7)]!), "the unreadable entry was replaced")
    }

    // MARK: The row contract, written independently of RowEncoder

    private func q(_ s: String) -> String { IndependentJSON.quoted(s) }

    private func metrics(_ counts: [Int64], _ playMs: Int64) -> String {
        var s = ""
        for (i, a) in actions.enumerated() {
            s += ",\(q(a)):\(counts[i])"
            if a == "play" { s += ",\"play_ms\":\(playMs)" }
        }
        return s
    }

    private func object(_ c: ContentDim?) -> String {
        guard let c else { return "null" }
        return "{\"title\":\(q(c.title)),\"category\":\(q(c.category)),\"author_id\":\(q(c.authorId)),\"region\":\(q(c.region))}"
    }

    private func expected(_ r: DWMRow, content: ContentDim?, user: UserDim?) -> String {
        let u = user.map { "{\"gender\":\(q($0.gender)),\"age_band\":\(q($0.ageBand)),\"province\":\(q($0.province)),\"city_tier\":\($0.cityTier)}" } ?? "null"
        return "{\"minute\":\(r.minute),\"content_id\":\(q(r.contentId)),\"user_id\":\(q(r.userId))" + metrics(r.counts, r.playMs)
            + ",\"strategy\":\(r.strategy.map(q) ?? "null"),\"content\":\(object(content)),\"user\":\(u)"
            + ",\"final\":\(r.isFinal),\"rev\":\(r.rev),\"emitted_at\":42}"
    }

    private func expected(_ r: DWSRow, content: ContentDim?) -> String {
        "{\"minute\":\(r.minute),\"content_id\":\(q(r.contentId))" + metrics(r.counts, r.playMs) + ",\"uv\":\(r.uv)"
            + ",\"content\":\(object(content)),\"final\":\(r.isFinal),\"rev\":\(r.rev),\"emitted_at\":42}"
    }
}
