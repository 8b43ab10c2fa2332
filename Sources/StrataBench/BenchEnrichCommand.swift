import ArgumentParser
import Foundation
import StrataCLI
import StrataCore
import StrataDWM
import StrataDims
import StrataGen
import StrataJobs
import StrataRedis

extension BenchCommand {
    /// One minute with N distinct (content, user) cells through the dwm job's enrichment path
    /// (``RowEnricher``: distinct ids → dimension cache → encoded rows), cold and warm.
    struct Enrich: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Enrichment of one minute of N distinct cells: cold, warm Redis, warm in-process, vs encoding alone.",
            discussion: """
            Builds a SQLite store with the cells' contents and users (a temporary file unless --store: upserted there too) and one emission of N DWM rows and one DWS row per content, then measures the job's lookup of the emission's distinct ids: (a) cold: empty Redis keys and in-process tier, (b) warm Redis: in-process tier cleared, (c) warm in-process; each with its Redis round trips and store queries. The summary also gives the whole enrichment with warm Redis (the lookup, then every row encoded: what the job spends on a minute's rows).

            Baselines: encoding the same rows with the dimensions already in hand, and bare MGETs of the same keys (the floor any Redis tier pays). Uses the configured Redis under a fresh key prefix and deletes its keys at the end. Build with -c release.
            """)

        @OptionGroup var global: GlobalOptions
        @Option(help: "Distinct (content, user) cells in the minute.") var cells = 1_000_000
        @Option(help: "Distinct contents among them.") var contents = 10_000
        @Option(help: "Distinct users among them (default: one per cell, the worst case).") var users: Int?
        @Option(help: "Rounds of the warm measurements.") var rounds = 3
        @Option(help: "Redis connections a lookup is spread over (the cache's redisConnections).") var redisConnections = DimensionCacheConfig().redisConnections
        @Option(help: "Dimension store to load the generated dimensions into and read them from, e.g. postgres://… (default: a temporary SQLite file).") var store: String?

        func run() throws {
            let config = try global.resolve()
            let topology = try global.loadTopology(config)
            let userCount = users ?? cells
            guard cells > 0, contents > 0, userCount > 0, userCount <= cells else {
                throw ValidationError("need cells > 0, contents > 0 and 0 < users ≤ cells")
            }
            let gen = DimensionGenerator(contents: contents, users: userCount, seed: 7)
            let storeAddress = store ?? "sqlite:" + NSTemporaryDirectory() + "strata-bench-enrich-\(UUID().uuidString.prefix(8)).db"
            let dimStore = try DimensionStoreFactory.open(storeAddress)
            try dimStore.migrate()
            try load(gen, into: dimStore)
            defer { if store == nil { try? FileManager.default.removeItem(atPath: String(storeAddress.dropFirst("sqlite:".count))) } }

            var cc = DimensionCacheConfig()
            cc.keyPrefix = "bench:\(UUID().uuidString.prefix(8)):"
            cc.localCapacity = 2 * (userCount + contents)
            cc.redisConnections = redisConnections
            cc.redisTTL = StaggeredTTL(baseSeconds: 3_600, jitter: 0.2)   // a safety net; the keys are deleted below
            var rc = try RedisConfig(url: config.redisURL)
            rc.commandTimeout = .seconds(10)
            let redis = try RedisClient(config: rc)
            let cache = try DimensionCache(store: dimStore, redis: redis, config: cc)
            defer { cleanUp(redis, cache: cache, gen: gen) }

            let emission = Self.minute(cells: cells, contents: contents, users: userCount, actions: topology.actions.count)
            let batch = RowBatch(actionCount: topology.actions.count)
            batch.append(emission)
            var enricher = RowEnricher(cache: cache, actions: topology.actions)
            print("{\"bench\":\"enrich\",\"cells\":\(cells),\"contents\":\(contents),\"users\":\(userCount),\"redis_connections\":\(redisConnections),\"dws_rows\":\(emission.dws.count),\"store\":\"\(storeAddress.hasPrefix("sqlite:") ? "sqlite" : "postgres")\"}")

            func measure(_ phase: String) throws -> Double {
                let r0 = cache.redisStats?.roundTrips ?? 0, s0 = cache.stats
                let t0 = ContinuousClock.now
                let asked = try enricher.lookUp(batch)
                let seconds = (ContinuousClock.now - t0).seconds
                let r1 = cache.redisStats?.roundTrips ?? 0, s1 = cache.stats
                print("{\"phase\":\"\(phase)\",\"seconds\":\(fmt(seconds)),\"ids\":\(asked.contents + asked.users),\"redis_round_trips\":\(r1 - r0),"
                      + "\"redis_hits\":\(s1.redisHits - s0.redisHits),\"local_hits\":\(s1.localHits - s0.localHits),"
                      + "\"store_queries\":\(s1.storeQueries - s0.storeQueries),\"store_ids\":\(s1.storeIds - s0.storeIds)}")
                return seconds
            }
            func encodeOnly() -> Double {
                let t0 = ContinuousClock.now
                var bytes = 0, next = 0
                while next < batch.dwmCount + batch.dwsCount {
                    let pass = enricher.encode(batch, from: next, emittedAt: 0)
                    bytes += pass.bytes
                    next = pass.rows.upperBound
                }
                let seconds = (ContinuousClock.now - t0).seconds
                blackHole(bytes)
                return seconds
            }

            // The floor of the Redis tier: the same keys fetched with MGET, values untouched.
            let keys = (0..<contents).map { cache.redisKey(content: DimensionGenerator.contentId($0)) }
                + (0..<userCount).map { cache.redisKey(user: DimensionGenerator.userId($0)) }
            func mgetOnly() throws -> Double {
                var bytes = 0
                let t0 = ContinuousClock.now
                try redis.mget(keys, chunkSize: cc.redisChunkSize) { _, v in bytes &+= v?.count ?? 0 }
                blackHole(bytes)
                return (ContinuousClock.now - t0).seconds
            }

            let cold = try measure("cold")
            // The cold lookup's write-backs go on behind it: the time Redis takes after the
            // lookup returned, before the warm-Redis rounds (which need them).
            let drainStart = ContinuousClock.now
            cache.awaitWriteBack()
            let coldDrain = (ContinuousClock.now - drainStart).seconds
            var warmRedis: [Double] = [], warmLocal: [Double] = [], encode: [Double] = [], mget: [Double] = []
            for _ in 0..<rounds {
                cache.clearLocalTier()
                warmRedis.append(try measure("warm_redis"))
                warmLocal.append(try measure("warm_local"))
                encode.append(encodeOnly())
                mget.append(try mgetOnly())
            }
            let e = Split.median(encode), wr = Split.median(warmRedis), wl = Split.median(warmLocal), mg = Split.median(mget)
            // The whole enrichment of the minute as the job does it: the lookup, then every row encoded.
            let whole = Split.median(zip(warmRedis, encode).map { $0 + $1 })
            print("{\"bench\":\"enrich\",\"cells\":\(cells),\"encode_only_baseline_s\":\(fmt(e)),\"mget_only_baseline_s\":\(fmt(mg)),"
                  + "\"cold_s\":\(fmt(cold)),\"cold_write_back_after_s\":\(fmt(coldDrain)),\"median_warm_redis_s\":\(fmt(wr)),\"median_warm_redis_with_encoding_s\":\(fmt(whole)),\"median_warm_local_s\":\(fmt(wl)),"
                  + "\"warm_redis_over_mget_only\":\(fmt(wr / mg)),\"target_warm_redis_s\":2}")
        }

        private func fmt(_ x: Double) -> String { String(format: "%.3f", x) }

        /// N cells: cell i is (content i mod contents, user i mod users), all distinct when users ≤ cells.
        static func minute(cells: Int, contents: Int, users: Int, actions: Int) -> Emission {
            var e = Emission()
            e.dwm.reserveCapacity(cells)
            let minute = EventWorkload.defaultStartMs
            var counts = [Int64](repeating: 0, count: actions)
            counts[0] = 1
            for i in 0..<cells {
                e.dwm.append(DWMRow(minute: minute, contentId: DimensionGenerator.contentId(i % contents),
                                    userId: DimensionGenerator.userId(i % users), counts: counts, playMs: 0,
                                    strategy: "s\(i % 4)", isFinal: true, rev: 3))
            }
            for c in 0..<contents {
                e.dws.append(DWSRow(minute: minute, contentId: DimensionGenerator.contentId(c), counts: counts, playMs: 0,
                                    uv: Int64(cells / contents), isFinal: true, rev: 3))
            }
            return e
        }

        private func load(_ gen: DimensionGenerator, into store: any DimensionStore) throws {
            var progress = Progress()
            let chunk = 20_000
            try store.upsert(contents: gen.allContents())
            for start in stride(from: 0, to: gen.users, by: chunk) {
                try store.upsert(users: (start..<min(start + chunk, gen.users)).map(gen.user))
                progress.update("loading users into the store: \(min(start + chunk, gen.users))/\(gen.users)")
            }
            progress.finish()
        }

        private func cleanUp(_ redis: RedisClient, cache: DimensionCache, gen: DimensionGenerator) {
            var keys: [[UInt8]] = (0..<gen.contents).map { cache.redisKey(content: DimensionGenerator.contentId($0)) }
            for u in 0..<gen.users {
                keys.append(cache.redisKey(user: DimensionGenerator.userId(u)))
                if keys.count == 10_000 { _ = try? redis.del(keys); keys.removeAll(keepingCapacity: true) }
            }
            _ = try? redis.del(keys)
        }
    }
}
