import ArgumentParser
import StrataKafka
import StrataCore

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Show the resolved configuration and where each setting came from (secrets redacted).")
    @OptionGroup var global: GlobalOptions
    func run() throws { print(try global.resolve().describe()) }
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print versions of Strata and its C libraries.")
    func run() throws {
        print("strata 0.1.0")
        print("librdkafka \(Librdkafka.versionString) (needs ≥ \(Librdkafka.minimumVersionString))")
    }
}
