// A stand-in for the Yams library. StrataCore's Topology.swift, linked in for SplitRouter and
// EventValidator, reads topology files with Yams; the fuzz targets build their topology in code
// and never parse YAML, so this declares just what Topology.swift names. It keeps the real
// library (a third of the build) and any package resolution out of the fuzz build.

public struct YAMLDecoder {
    public init() {}

    public func decode<T: Decodable>(_ type: T.Type, from yaml: String) throws -> T {
        throw YamlError.unavailable
    }
}

public enum YamlError: Error, CustomStringConvertible {
    case unavailable

    public var description: String { "YAML is not read in the fuzz build (Fuzz/Sources/Yams)" }
}
