// swift-tools-version:6.2
import PackageDescription

let package = Package(
    name: "Strata",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "strata", targets: ["strata"]),
        .library(name: "StrataKafka", targets: ["StrataKafka"]),
        .library(name: "StrataRedis", targets: ["StrataRedis"]),
        .library(name: "StrataCore", targets: ["StrataCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.21.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.1.0"),
        .package(url: "https://github.com/adam-fowler/compress-nio", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.81.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
    ],
    targets: [
        // C libraries, found through pkg-config (deploy/local/setup installs them).
        .systemLibrary(name: "CRdKafka", pkgConfig: "rdkafka", providers: [.apt(["librdkafka-dev"])]),
        .systemLibrary(name: "CHiredis", pkgConfig: "hiredis", providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        // The CPU's prefetch hint, which Swift does not expose (the in-process cache's lookups).
        .target(name: "CPrefetch"),

        // Thin Swift wrappers over the C APIs.
        .target(name: "StrataKafka", dependencies: ["CRdKafka", .product(name: "Logging", package: "swift-log")]),
        .target(name: "StrataRedis", dependencies: ["CHiredis"]),

        // Contracts shared by every job: topology, event scanning, id patterns, metrics, config, logging.
        .target(name: "StrataCore", dependencies: [
            .product(name: "Yams", package: "Yams"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        // The transactional consume → transform → produce loop every job runs, and the job runner.
        .target(name: "StrataRuntime", dependencies: ["StrataCore", "StrataKafka",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics")]),
        // Synthetic workload: events and the demo dimensions.
        .target(name: "StrataGen", dependencies: ["StrataCore", "StrataDims"]),
        // The ODS split job: ods.raw -> ods.<action> | ods.dlq.
        .target(name: "StrataSplit", dependencies: ["StrataCore", "StrataKafka", "StrataRuntime",
            .product(name: "Logging", package: "swift-log")]),

        // Dimension store (SQLite, PostgreSQL), CSV loading, and the tiered cache in front of it.
        // Also the warehouse tables: dws_minute (DWSTable) and the settlement prices (PricingTable).
        // Its DDL is sql/<dialect>/00N_*.sql, embedded through links in Store/SQL.
        .target(name: "StrataDims", dependencies: ["StrataCore", "StrataRedis", "CSQLite", "CPrefetch",
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "Logging", package: "swift-log")],
            resources: [.embedInCode("Store/SQL/sqlite_001_dimensions.sql"),
                        .embedInCode("Store/SQL/postgres_001_dimensions.sql"),
                        .embedInCode("Store/SQL/sqlite_002_warehouse.sql"),
                        .embedInCode("Store/SQL/postgres_002_warehouse.sql"),
                        .embedInCode("Store/SQL/sqlite_003_pricing.sql"),
                        .embedInCode("Store/SQL/postgres_003_pricing.sql"),
                        .embedInCode("Store/SQL/sqlite_004_dwm_minute.sql"),
                        .embedInCode("Store/SQL/postgres_004_dwm_minute.sql")]),
        // The offline archive: Zstandard files (the only user of libzstd) and their path contract.
        .target(name: "StrataArchive", dependencies: ["CZstd"]),
        // `strata reconcile` / `strata settle`: the day recomputed in batch from the archive, in code
        // that shares nothing with the stream jobs' parsing, windows or aggregation.
        .target(name: "StrataReconcile", dependencies: ["StrataArchive", "StrataDims", "StrataKafka"]),
        // Minute row-to-column windows: cells, watermarks, revisions (no broker).
        .target(name: "StrataDWM", dependencies: ["StrataCore"]),
        // The jobs that join layers: dwm (windows + enrichment + exactly-once publishing) and dimsync.
        .target(name: "StrataJobs", dependencies: ["StrataCore", "StrataKafka", "StrataRuntime", "StrataDWM", "StrataDims", "StrataSplit",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics")]),
        // The offline layer's stream jobs: archive (ods.raw → files by event hour) and sink (dws.content → dws_minute).
        .target(name: "StrataOffline", dependencies: ["StrataCore", "StrataKafka", "StrataRuntime", "StrataArchive", "StrataDims", "StrataQuery",
            .product(name: "Logging", package: "swift-log")]),
        // The declarative stream query language: lexer, parser, planner, evaluator.
        .target(name: "StrataQuery", dependencies: ["StrataCore"]),

        // `strata serve`: the big-screen dashboard and the live query feeds over HTTP (shared subscriptions).
        .target(name: "StrataServe", dependencies: ["StrataQuery", "StrataKafka", "StrataCore", "StrataRuntime",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "Logging", package: "swift-log")],
            resources: [.embedInCode("Resources/openapi.yaml")]),

        // `strata collect`: the HTTP collection gateway (validate, enrich, rate-limit; 202 only once an
        // event is acknowledged by the broker or fsynced to the local spool), and the browser SDK.
        .target(name: "StrataCollect", dependencies: ["StrataCore", "StrataKafka", "StrataSplit",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "CompressNIO", package: "compress-nio"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "Logging", package: "swift-log")],
            resources: [.embedInCode("Server/sdk.js")]),

        // What the strata commands share: global options, progress, signals, thread helpers.
        .target(name: "StrataCLI", dependencies: ["StrataCore", "StrataKafka", "StrataRuntime",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log")]),
        // `strata bench …`: the benchmarks, each beside its baseline.
        .target(name: "StrataBench", dependencies: [
            "StrataCLI", "StrataCore", "StrataKafka", "StrataRedis", "StrataGen", "StrataRuntime", "StrataSplit", "StrataDims", "StrataDWM", "StrataQuery", "StrataJobs", "StrataCollect",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Hummingbird", package: "hummingbird"),
        ]),

        .executableTarget(name: "strata", dependencies: [
            "StrataCLI", "StrataBench", "StrataArchive", "StrataReconcile",
            "StrataCore", "StrataKafka", "StrataRedis", "StrataGen", "StrataSplit", "StrataDims", "StrataDWM", "StrataQuery", "StrataJobs", "StrataRuntime", "StrataServe", "StrataOffline", "StrataCollect",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        // Helpers shared by test targets: real redis-server and PostgreSQL child processes, the strata binary, reading a topic to its end.
        .target(name: "StrataTestSupport", dependencies: ["StrataCore", "StrataKafka"], path: "Tests/StrataTestSupport"),
        .testTarget(name: "StrataCoreTests", dependencies: ["StrataCore", "StrataGen", "StrataTestSupport",
            .product(name: "Metrics", package: "swift-metrics")]),
        .testTarget(name: "StrataKafkaTests", dependencies: ["StrataKafka", "StrataTestSupport"]),
        .testTarget(name: "StrataRedisTests", dependencies: ["StrataRedis", "StrataTestSupport"]),
        .testTarget(name: "StrataSplitTests", dependencies: ["StrataSplit", "StrataGen", "StrataKafka", "StrataCore", "strata", "StrataTestSupport"]),
        .testTarget(name: "StrataDimsTests", dependencies: ["StrataDims", "StrataGen", "StrataRedis", "StrataCore", "StrataTestSupport"]),
        .testTarget(name: "StrataDWMTests", dependencies: ["StrataDWM", "StrataGen", "StrataCore", "StrataTestSupport"]),
        .testTarget(name: "StrataJobsTests", dependencies: ["StrataJobs", "StrataOffline", "StrataArchive", "StrataDWM", "StrataDims", "StrataKafka", "StrataGen", "StrataCore", "StrataQuery", "StrataRuntime", "strata", "StrataTestSupport",
            .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "StrataArchiveTests", dependencies: ["StrataArchive"]),
        .testTarget(name: "StrataReconcileTests", dependencies: ["StrataReconcile", "StrataArchive", "StrataDims", "StrataCore", "StrataKafka", "strata", "StrataTestSupport"]),
        .testTarget(name: "StrataRuntimeTests", dependencies: ["StrataRuntime", "StrataCore", "StrataKafka"]),
        .testTarget(name: "StrataServeTests", dependencies: ["StrataServe", "StrataQuery", "StrataKafka", "StrataCore", "StrataTestSupport",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
            .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "StrataCollectTests", dependencies: ["StrataCollect", "StrataGen", "StrataKafka", "StrataCore", "strata", "StrataTestSupport",
            .product(name: "CompressNIO", package: "compress-nio"),
            .product(name: "NIOCore", package: "swift-nio")],
            exclude: ["sdk.test.js"]),
        .testTarget(name: "StrataQueryTests", dependencies: ["StrataQuery", "StrataCore", "StrataTestSupport"]),
        .testTarget(name: "StrataBenchTests", dependencies: ["StrataBench"]),
    ],
    swiftLanguageModes: [.v6]
)

// The compiler keeps the module boundaries: imports are internal unless a file says `public import`
// (so C modules and dependencies don't leak through the wrappers' APIs), every file imports what it
// uses, and existential types are spelled `any P`.
for target in package.targets where target.type != .system {
    target.swiftSettings = (target.swiftSettings ?? []) + [
        .enableUpcomingFeature("ExistentialAny"),
        .enableUpcomingFeature("MemberImportVisibility"),
        .enableUpcomingFeature("InternalImportsByDefault"),
    ]
}
