internal import CRdKafka

/// The linked librdkafka and the oldest one Strata accepts.
public enum Librdkafka {
    /// 2.1.1 fixed the skipping of tagged fields ("Fix number of bytes skipped when receiving tags");
    /// older clients cannot talk to brokers that send them (Tansu among them).
    public static let minimumVersion: Int32 = 0x0201_01ff
    public static let minimumVersionString = "2.1.1"

    public static var version: Int32 { rd_kafka_version() }
    public static var versionString: String { String(cString: rd_kafka_version_str()) }

    /// Throws a message that names the fix when the linked librdkafka is too old.
    public static func requireSupportedVersion() throws(KafkaError) {
        guard version >= minimumVersion else {
            throw KafkaError.config(
                "librdkafka \(versionString) is linked, but Strata needs \(minimumVersionString) or newer "
                + "(older versions mis-skip tagged protocol fields). Run deploy/local/setup, which builds and "
                + "installs Debian's librdkafka 2.8.0 packages, then rebuild Strata.")
        }
    }
}
