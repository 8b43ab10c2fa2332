import Foundation
import XCTest
@testable import StrataCore

final class TopologyTests: XCTestCase {
    static let shippedPath = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("topology/topology.yaml").path

    func testShippedTopology() throws {
        let t = try Topology.load(path: Self.shippedPath)
        XCTAssertEqual(t.actions, ["expose", "click", "play", "like", "share", "comment", "report"])
        XCTAssertEqual(t.contentIdPattern, "^c[0-9]{8}$")
        XCTAssertEqual(t.topics.count, 15)
        let expected = [Topology.raw] + t.actions.map(Topology.microQueue(for:))
            + [Topology.deadLetter, Topology.late, Topology.dwm, Topology.dws, Topology.dimChangelog, Topology.dwmCheckpoint, Topology.splitCheckpoint]
        XCTAssertEqual(Set(t.topics.map(\.name)), Set(expected))
        XCTAssertEqual(Topology.microQueue(for: "play"), "ods.play")
        XCTAssertEqual(t.topic(named: Topology.dwmCheckpoint)?.cleanupPolicy, "compact")
        XCTAssertEqual(t.topic(named: Topology.splitCheckpoint)?.cleanupPolicy, "compact")
        let internalTopics = [Topology.dimChangelog, Topology.dwmCheckpoint, Topology.splitCheckpoint]
        for name in expected where !internalTopics.contains(name) {
            let spec = try XCTUnwrap(t.topic(named: name))
            XCTAssertEqual(spec.partitions, 4, name)
            XCTAssertEqual(spec.replicationFactor, 1, name)
            XCTAssertEqual(spec.cleanupPolicy, "delete", name)
            XCTAssertNotNil(spec.retentionMs, name)
        }
        let changelog = try XCTUnwrap(t.topic(named: Topology.dimChangelog))
        XCTAssertEqual(changelog.cleanupPolicy, "compact")
        XCTAssertEqual(changelog.brokerConfigs, ["cleanup.policy": "compact"])
        XCTAssertEqual(t.topic(named: Topology.dwm)?.key, "content_id")
        XCTAssertEqual(t.topic(named: Topology.raw)?.brokerConfigs,
                       ["cleanup.policy": "delete", "retention.ms": "259200000"])
        XCTAssertNil(t.topic(named: "ods.nope"))
        XCTAssertTrue(try t.compiledContentIdPattern().matches("c00001686"))
    }

    func testDefaultPath() throws {
        XCTAssertEqual(Topology.defaultPath(environment: ["STRATA_TOPOLOGY": "/etc/strata/t.yaml"]), "/etc/strata/t.yaml")
        // From the package root (swift test's working directory) or by walking up from the test bundle.
        let found = Topology.defaultPath(environment: [:])
        XCTAssertTrue(found.hasSuffix("topology/topology.yaml"), found)
        XCTAssertEqual(try Topology.load(path: found), try Topology.load(path: Self.shippedPath))
    }

    static func yaml(actions: String = "[click, play]",
                     pattern: String = "'^c[0-9]{8}$'",
                     extraTopics: String = "",
                     click: String = "partitions: 4") -> String {
        """
        actions: \(actions)
        content_id_pattern: \(pattern)
        topics:
          - name: ods.raw
            partitions: 4
            key: content_id
            retention_ms: 1000
            cleanup_policy: delete
            config: {compression.type: lz4, min.insync.replicas: 2}
          - name: ods.click
            \(click)
            key: content_id
          - name: ods.play
            partitions: 4
            replication_factor: 1
            key: content_id
        \(extraTopics)
        """
    }

    func testMinimalValid() throws {
        let t = try Topology.parse(yaml: Self.yaml())
        XCTAssertEqual(t.actions, ["click", "play"])
        let raw = try XCTUnwrap(t.topic(named: "ods.raw"))
        XCTAssertEqual(raw.config, ["compression.type": "lz4", "min.insync.replicas": "2"])
        XCTAssertEqual(raw.brokerConfigs, ["compression.type": "lz4", "min.insync.replicas": "2",
                                           "retention.ms": "1000", "cleanup.policy": "delete"])
        // defaults: replication 1, delete, no retention
        XCTAssertEqual(t.topic(named: "ods.click"),
                       TopicSpec(name: "ods.click", partitions: 4, replicationFactor: 1, key: "content_id",
                                 retentionMs: nil, cleanupPolicy: "delete", config: [:]))
    }

    func testInvalidTopologies() {
        let cases: [(String, String)] = [
            ("actions: [click\ntopics: [", "invalid YAML"),
            ("topics: []", "missing required key 'actions'"),
            ("actions: [click]", "missing required key 'topics'"),
            (Self.yaml(actions: "[]"), "at least one action"),
            (Self.yaml(actions: "[click, play, click]"), "action 'click' is listed more than once"),
            (Self.yaml(actions: "[click, play, view]"), "action 'view' has no micro-queue: declare topic 'ods.view'"),
            (Self.yaml(actions: "[click, Play]"), "action 'Play' must be lowercase"),
            (Self.yaml(actions: "click"), "actions: expected a list"),
            (Self.yaml(pattern: "'^c(0|1)$'"), "content_id_pattern: invalid id pattern '^c(0|1)$' at position 2: groups"),
            (Self.yaml(pattern: "'c[0-9]{8}'"), "content_id_pattern: invalid id pattern"),
            (Self.yaml(extraTopics: "  - {name: ods.raw, partitions: 1, key: k}"), "topic 'ods.raw' is declared more than once"),
            (Self.yaml(click: "partitions: 0"), "topic 'ods.click': partitions must be >= 1, got 0"),
            (Self.yaml(click: "partitions: four"), "topics[1].partitions: expected an integer"),
            (Self.yaml(click: "partitons: 4"), "unknown key 'partitons' in topic 'ods.click'"),
            (Self.yaml(click: "partitions: 4\n    partitions: 5"), "invalid YAML"),
            (Self.yaml(click: "partitions: 4\n    replication_factor: 0"), "replication_factor must be >= 1"),
            (Self.yaml(click: "partitions: 4\n    cleanup_policy: forever"), "cleanup_policy must be delete, compact or compact,delete"),
            (Self.yaml(click: "partitions: 4\n    retention_ms: -7"), "retention_ms must be -1"),
            (Self.yaml(click: "partitions: 4\n    config: {retention.ms: 5}"), "set retention.ms with the retention_ms field"),
            (Self.yaml(click: "partitions: 2"), "must have the same partition count"),
            (Self.yaml(extraTopics: "  - {name: dws.content, partitions: 4, key: content_id, cleanup_policy: compact}"),
             "topic 'dws.content' must not be compacted"),
            (Self.yaml(extraTopics: "  - {name: dwm.content_user, partitions: 8, key: content_id}"), "must have the same partition count"),
            (Self.yaml(extraTopics: "  - {name: 'bad topic', partitions: 1, key: k}"), "not a valid Kafka topic name"),
            (Self.yaml(extraTopics: "  - {name: ods.x, partitions: 1}"), "missing required key 'key' in topics[3]"),
            (Self.yaml() + "\nlateness: 5", "unknown key 'lateness' in topology"),
        ]
        for (yaml, fragment) in cases {
            do {
                let t = try Topology.parse(yaml: yaml, source: "test.yaml")
                XCTFail("accepted (\(t.topics.count) topics), expected \(fragment):\n\(yaml)")
            } catch let e as TopologyError {
                XCTAssertEqual(e.source, "test.yaml")
                XCTAssertTrue(e.description.hasPrefix("test.yaml: "), e.description)
                XCTAssertTrue(e.message.contains(fragment), "expected '\(fragment)' in: \(e.message)")
            } catch {
                XCTFail("unexpected error type \(type(of: error)): \(error)")
            }
        }
    }

    func testLoadErrorsNameThePath() throws {
        let missing = "/nonexistent/strata/topology.yaml"
        XCTAssertThrowsError(try Topology.load(path: missing)) { error in
            XCTAssertTrue(String(describing: error).contains(missing), "\(error)")
            XCTAssertTrue(String(describing: error).contains("not found"), "\(error)")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("strata-topology-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("topology.yaml")
        try Self.yaml(click: "partitions: 0").write(to: file, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try Topology.load(path: file.path)) { error in
            XCTAssertEqual(String(describing: error), "\(file.path): topic 'ods.click': partitions must be >= 1, got 0")
        }
    }
}
