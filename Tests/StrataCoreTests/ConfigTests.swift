import Foundation
import Logging
import Synchronization
import XCTest
@testable import StrataCore

final class ConfigTests: XCTestCase {
    private var dir: String = ""

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("strata-config-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    private func write(_ name: String, _ text: String) throws -> String {
        let path = (dir as NSString).appendingPathComponent(name)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func testDefaults() throws {
        let c = try StrataConfig.resolve(.init(), environment: [:], workingDirectory: dir)
        XCTAssertEqual(c.brokers, "127.0.0.1:9092")
        XCTAssertEqual(c.redisURL, "redis://127.0.0.1:6379")
        XCTAssertEqual(c.store, "sqlite:data/strata.db")
        XCTAssertNil(c.topologyPath)
        XCTAssertEqual(c.kafka, [:])
        XCTAssertNil(c.configFile)
        XCTAssertEqual(c.sources, ["brokers": "default", "redis": "default", "store": "default", "topology": "default"])
        XCTAssertEqual(c, StrataConfig())
    }

    func testPrecedenceFlagOverEnvOverFileOverDefault() throws {
        let path = try write("a.yaml", """
            brokers: file-broker:9092
            redis: redis://file:6379
            topology: topo/
            kafka:
              security.protocol: SSL
              sasl.mechanisms: PLAIN
              client.id: from-file
            """)
        let env = [
            "STRATA_CONFIG": path,
            "STRATA_BROKERS": "env-broker:9092",
            "STRATA_REDIS_URL": "redis://env:6379",
            "STRATA_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "STRATA_KAFKA_SASL_MECHANISMS": "SCRAM-SHA-512",
        ]
        let c = try StrataConfig.resolve(
            .init(brokers: "flag-broker:9092", kafka: ["sasl.mechanisms": "OAUTHBEARER"]),
            environment: env, workingDirectory: dir)
        XCTAssertEqual(c.brokers, "flag-broker:9092")
        XCTAssertEqual(c.redisURL, "redis://env:6379")
        XCTAssertEqual(c.store, "sqlite:data/strata.db")
        XCTAssertEqual(c.topologyPath, "topo/")
        XCTAssertEqual(c.kafka, ["security.protocol": "SASL_SSL", "sasl.mechanisms": "OAUTHBEARER", "client.id": "from-file"])
        XCTAssertEqual(c.configFile, path)
        XCTAssertEqual(c.sources["brokers"], "flag")
        XCTAssertEqual(c.sources["redis"], "env")
        XCTAssertEqual(c.sources["store"], "default")
        XCTAssertEqual(c.sources["topology"], "file \(path)")
        XCTAssertEqual(c.sources["kafka.security.protocol"], "env")
        XCTAssertEqual(c.sources["kafka.sasl.mechanisms"], "flag")
        XCTAssertEqual(c.sources["kafka.client.id"], "file \(path)")
    }

    func testEnvironmentOnly() throws {
        let c = try StrataConfig.resolve(.init(), environment: [
            "STRATA_STORE": "postgres://strata@db/strata", "STRATA_TOPOLOGY": "/etc/strata/topology",
            "STRATA_KAFKA_SSL_CA_LOCATION": "/etc/ca.pem", "STRATA_BROKERS": "",   // empty = unset
        ], workingDirectory: dir)
        XCTAssertEqual(c.store, "postgres://strata@db/strata")
        XCTAssertEqual(c.topologyPath, "/etc/strata/topology")
        XCTAssertEqual(c.kafka, ["ssl.ca.location": "/etc/ca.pem"])
        XCTAssertEqual(c.brokers, "127.0.0.1:9092")
        XCTAssertEqual(c.sources["store"], "env")
        XCTAssertEqual(c.sources["brokers"], "default")
    }

    func testImplicitStrataYamlInWorkingDirectory() throws {
        _ = try write("strata.yaml", "store: sqlite:/var/lib/strata.db\nbrokers: [k1:9092, k2:9092]\n")
        let c = try StrataConfig.resolve(.init(), environment: [:], workingDirectory: dir)
        XCTAssertEqual(c.store, "sqlite:/var/lib/strata.db")
        XCTAssertEqual(c.brokers, "k1:9092,k2:9092")
        XCTAssertEqual(c.sources["store"], "file strata.yaml")
        XCTAssertEqual(c.configFile, "strata.yaml")
    }

    func testFlagConfigFileBeatsEnvConfigFile() throws {
        let a = try write("a.yaml", "redis: redis://a:6379\n")
        let b = try write("b.yaml", "redis: redis://b:6379\n")
        let c = try StrataConfig.resolve(.init(configFile: a), environment: ["STRATA_CONFIG": b], workingDirectory: dir)
        XCTAssertEqual(c.redisURL, "redis://a:6379")
    }

    func testScalarsKeepTheirLiteralText() throws {
        // YAML 1.1 would turn 0123 into 83 and 1:20 into 80; passwords must come through verbatim.
        let path = try write("s.yaml", """
            kafka:
              sasl.password: 0123
              sasl.username: 1:20
              enable.ssl.certificate.verification: false
              message.max.bytes: 2000000
            """)
        let c = try StrataConfig.resolve(.init(configFile: path), environment: [:], workingDirectory: dir)
        XCTAssertEqual(c.kafka["sasl.password"], "0123")
        XCTAssertEqual(c.kafka["sasl.username"], "1:20")
        XCTAssertEqual(c.kafka["enable.ssl.certificate.verification"], "false")
        XCTAssertEqual(c.kafka["message.max.bytes"], "2000000")
        XCTAssertFalse(c.describe().contains("0123"), "secrets are masked in describe()")
        XCTAssertTrue(c.describe(redactSecrets: false).contains("0123"))
    }

    func testNamedButMissingFileIsAnError() {
        XCTAssertThrowsError(try StrataConfig.resolve(.init(configFile: "nope/strata.yaml"), environment: [:], workingDirectory: dir)) {
            XCTAssertEqual($0 as? StrataConfigError, .fileNotFound(path: "nope/strata.yaml"))
            XCTAssertTrue("\($0)".contains("nope/strata.yaml"))
        }
        XCTAssertThrowsError(try StrataConfig.resolve(.init(), environment: ["STRATA_CONFIG": "/no/such.yaml"], workingDirectory: dir)) {
            XCTAssertTrue("\($0)".contains("/no/such.yaml"))
        }
    }

    func testUnknownKeyIsAnError() throws {
        let path = try write("typo.yaml", "brokers: k:9092\nredis_url: redis://x:6379\n")
        XCTAssertThrowsError(try StrataConfig.resolve(.init(configFile: path), environment: [:], workingDirectory: dir)) {
            XCTAssertEqual($0 as? StrataConfigError, .unknownKey(key: "redis_url", path: path))
            XCTAssertTrue("\($0)".contains("redis_url"))
        }
    }

    func testBadValuesAreErrors() throws {
        for (name, text) in [("list.yaml", "- brokers\n"), ("nested.yaml", "store: {a: 1}\n"),
                             ("kafka.yaml", "kafka: SSL\n"), ("null.yaml", "redis:\n"), ("syntax.yaml", "brokers: [a, b\n")] {
            let path = try write(name, text)
            XCTAssertThrowsError(try StrataConfig.resolve(.init(configFile: path), environment: [:], workingDirectory: dir), name) {
                XCTAssertTrue("\($0)".contains(name) || "\($0)".contains("file "), "\(name): \($0)")
            }
        }
        // An empty file sets nothing.
        let empty = try write("empty.yaml", "")
        XCTAssertEqual(try StrataConfig.resolve(.init(configFile: empty), environment: [:], workingDirectory: dir).brokers, "127.0.0.1:9092")
    }
}

/// StrataLogging's output formats (named *ConfigTests so the issue's test filter picks it up).
final class LoggingConfigTests: XCTestCase {
    private final class Lines: Sendable {
        let lines = Mutex<[String]>([])
        func add(_ b: [UInt8]) { lines.withLock { $0.append(String(decoding: b, as: UTF8.self)) } }
        var all: [String] { lines.withLock { $0 } }
    }

    private func logger(_ format: StrataLogging.Format, _ sink: Lines) -> Logger {
        Logger(label: "strata.split") { label in
            var h = StrataLogHandler(label: label, format: format, metadataProvider: nil, sink: { sink.add($0) })
            h.logLevel = .debug
            return h
        }
    }

    func testJSONLines() throws {
        let sink = Lines()
        var log = logger(.json, sink)
        log[metadataKey: "job"] = "split"
        log.info("started \"fast\"\n", metadata: ["partitions": .stringConvertible(4), "msg": "clash", "tags": ["a", "b"]])
        log.trace("dropped below level")
        XCTAssertEqual(sink.all.count, 1)
        let line = sink.all[0]
        XCTAssertTrue(line.hasSuffix("}\n"))
        XCTAssertEqual(line.filter { $0 == "\n" }.count, 1, "one line per record")
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        XCTAssertEqual(obj["level"] as? String, "info")
        XCTAssertEqual(obj["label"] as? String, "strata.split")
        XCTAssertEqual(obj["msg"] as? String, "started \"fast\"\n")
        XCTAssertEqual(obj["job"] as? String, "split")
        XCTAssertEqual(obj["partitions"] as? Int, 4)
        XCTAssertEqual(obj["_msg"] as? String, "clash")
        XCTAssertEqual(obj["tags"] as? [String], ["a", "b"])
        let ts = try XCTUnwrap(obj["ts"] as? String)
        XCTAssertNotNil(ts.range(of: #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"#, options: .regularExpression), ts)
    }

    func testTextLines() {
        let sink = Lines()
        let log = logger(.text, sink)
        log.warning("lag high", metadata: ["lag": "12 s", "partition": .stringConvertible(3)])
        let line = sink.all.first ?? ""
        XCTAssertNotNil(line.range(of: #"^\d{2}:\d{2}:\d{2}\.\d{3} warning strata.split: lag high lag="12 s" partition=3\n$"#,
                                   options: .regularExpression), line)
    }

    func testRFC3339() {
        XCTAssertEqual(StrataLogHandler.rfc3339(Date(timeIntervalSince1970: 1_795_219_265.5)), "2026-11-21T00:01:05.500Z")
        XCTAssertEqual(StrataLogging.parseLevel("WARN"), .warning)
        XCTAssertEqual(StrataLogging.parseLevel("debug"), .debug)
        XCTAssertNil(StrataLogging.parseLevel("loud"))
        XCTAssertEqual(StrataLogging.resolve(.json), .json)
    }

    func testBootstrapIsIdempotent() {
        // The first call may already have happened in this process; any later one must be a no-op, not a crash.
        StrataLogging.bootstrap(level: .critical, format: .json, environment: [:])
        XCTAssertFalse(StrataLogging.bootstrap(level: .debug, format: .text, environment: [:]))
    }
}
