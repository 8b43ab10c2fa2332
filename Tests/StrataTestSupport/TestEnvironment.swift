public import Foundation

/// The addresses of the private test stack that `deploy/local/test` starts and exports.
///
/// There is deliberately no default: an unset variable must not send the tests to the demo
/// stack's broker (127.0.0.1:9092) or Redis (6379), where they would read and write the demo's
/// data. Reading an unset (or empty) variable throws `TestEnvironment.Unset`, so a test that
/// reads it in `setUpWithError()` or in its body fails with the message below; it is never skipped.
///
///     override func setUpWithError() throws { brokers = try TestEnvironment.brokers }
public enum TestEnvironment {
    /// A required test variable is missing; its description says which and how to set it.
    public struct Unset: Error, CustomStringConvertible {
        public let name: String
        public var description: String {
            "\(name) is not set: these tests need the private test stack. Run them with deploy/local/test, "
                + "or start a stack (deploy/local/stack up with STRATA_BROKER_PORT/STRATA_REDIS_PORT) and export "
                + "STRATA_TEST_BROKERS=127.0.0.1:<broker port> and STRATA_TEST_REDIS_URL=redis://127.0.0.1:<redis port>. "
                + "There is no fallback to the demo stack's 9092/6379."
        }
    }

    /// `STRATA_TEST_BROKERS`: the test broker's bootstrap servers, e.g. "127.0.0.1:19092".
    public static var brokers: String {
        get throws { try required("STRATA_TEST_BROKERS") }
    }

    /// `STRATA_TEST_REDIS_URL`: the test Redis, e.g. "redis://127.0.0.1:16379".
    public static var redisURL: String {
        get throws { try required("STRATA_TEST_REDIS_URL") }
    }

    /// `STRATA_TEST_BROKER_KIND`: which broker `STRATA_TEST_BROKERS` is, `tansu` (the default) or
    /// `noida`. The test command runs the wrapper and exactly-once suites once per broker; the few
    /// assertions on what read_committed readers see of aborted transactions depend on it.
    public static var brokerKind: String {
        ProcessInfo.processInfo.environment["STRATA_TEST_BROKER_KIND"].flatMap { $0.isEmpty ? nil : $0 } ?? "tansu"
    }

    /// Whether the test broker hides aborted (and fenced) transactions from read_committed
    /// readers, as Kafka does: noida does, Tansu 0.6 does not (docs/exactly-once.md).
    public static var brokerHidesAbortedTransactions: Bool { brokerKind == "noida" }

    /// The value of environment variable `name`; throws `Unset` when it is missing or empty.
    public static func required(_ name: String,
                                environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        guard let value = environment[name]?.trimmingCharacters(in: .whitespaces), !value.isEmpty else {
            throw Unset(name: name)
        }
        return value
    }
}
