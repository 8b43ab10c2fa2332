import CLibFuzzer
import Glibc

/// The fuzz target's main: hands the command line and the target's LLVMFuzzerTestOneInput to
/// libFuzzer's driver, and exits with its status. (SwiftPM gives every executable a main of its
/// own, which takes the place of libFuzzer's.)
public func runFuzzer() -> Never {
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, LLVMFuzzerTestOneInput))
}
