// swift-tools-version:6.2
import PackageDescription

// Strata's libFuzzer targets (docs/fuzzing.md). A package of its own, so `swift build` and
// `swift test` of the main package never see them: they only link with the fuzzer runtime, and
// Fuzz/run builds them with `-sanitize=fuzzer,address`.
//
// The library targets are the main package's own files, linked from ../Sources (symbolic links
// under Fuzz/Sources): all of StrataQuery, and from the other modules only the parsers and what
// they need. That keeps NIO, PostgreSQL, Kafka, the HTTP server and YAML (a stand-in for Yams)
// out of the build, and the package has no dependencies to resolve. A parser that starts to need
// another file fails this build: link the file in too.
let package = Package(
    name: "StrataFuzz",
    platforms: [.macOS(.v15)],
    targets: [
        // The main package's sources (links).
        .target(name: "StrataCore", dependencies: ["Yams"]),
        .target(name: "StrataQuery", dependencies: ["StrataCore"]),
        .target(name: "StrataDims", dependencies: ["StrataCore"]),
        .target(name: "StrataSplit", dependencies: ["StrataCore"]),
        .target(name: "StrataCollect", dependencies: ["StrataCore", "StrataSplit"]),

        // What Topology.swift needs of Yams, and no more (no YAML is read here).
        .target(name: "Yams"),

        // libFuzzer's driver, and the checks shared by the targets.
        .target(name: "CLibFuzzer"),
        .target(name: "FuzzSupport", dependencies: ["CLibFuzzer"]),

        // One fuzz target per input format: LLVMFuzzerTestOneInput, and a main that runs libFuzzer's driver.
        .executableTarget(name: "FuzzEventScanner", dependencies: ["FuzzSupport", "StrataCore", "StrataSplit", "StrataQuery"]),
        .executableTarget(name: "FuzzQuery", dependencies: ["FuzzSupport", "StrataQuery"]),
        .executableTarget(name: "FuzzDimCSV", dependencies: ["FuzzSupport", "StrataDims"]),
        .executableTarget(name: "FuzzDimJSON", dependencies: ["FuzzSupport", "StrataDims"]),
        .executableTarget(name: "FuzzCollectBody", dependencies: ["FuzzSupport", "StrataCore", "StrataSplit", "StrataCollect"]),
    ],
    swiftLanguageModes: [.v6]
)

// The main package's settings, so its files compile here as they do there.
for target in package.targets where target.name != "CLibFuzzer" {
    target.swiftSettings = (target.swiftSettings ?? []) + [
        .enableUpcomingFeature("ExistentialAny"),
        .enableUpcomingFeature("MemberImportVisibility"),
        .enableUpcomingFeature("InternalImportsByDefault"),
    ]
}
