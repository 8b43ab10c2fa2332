import StrataKafka
import XCTest

/// `-X` properties reach the right client: unprefixed ones every client, `producer.`/`consumer.`
/// ones only that kind (an admin client takes neither).
final class KafkaConfigTests: XCTestCase {
    func testPrefixedPropertiesApplyToTheirClientOnly() {
        let operator_ = ["linger.ms": "20", "consumer.max.poll.interval.ms": "60000", "producer.compression.type": "zstd",
                         "security.protocol": "ssl"]
        let p = KafkaConfig.producer(bootstrapServers: "b:1").merging(operator_)
        XCTAssertEqual(p["linger.ms"], "20")
        XCTAssertEqual(p["compression.type"], "zstd")
        XCTAssertNil(p["max.poll.interval.ms"])
        XCTAssertNil(p["consumer.max.poll.interval.ms"], "a prefixed key never reaches librdkafka as is")

        let c = KafkaConfig.consumer(bootstrapServers: "b:1", groupId: "g").merging(operator_)
        XCTAssertEqual(c["max.poll.interval.ms"], "60000", "overrides Strata's consumer default")
        XCTAssertNil(c["compression.type"])
        XCTAssertEqual(c["security.protocol"], "ssl")
        XCTAssertEqual(c.merging(["consumer.session.timeout.ms": "9000"]).role, .consumer, "merging keeps the role")

        let admin = KafkaConfig(["bootstrap.servers": "b:1"]).merging(operator_)
        XCTAssertEqual(admin.properties.keys.sorted(), ["bootstrap.servers", "linger.ms", "security.protocol"])
    }
}
