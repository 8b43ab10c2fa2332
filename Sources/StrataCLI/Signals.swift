import Foundation
import Synchronization

/// SIGINT/SIGTERM ask long-running commands to finish their current batch, commit and exit.
public enum Shutdown {
    private static let requested = Atomic<Bool>(false)

    public static var isRequested: Bool { requested.load(ordering: .relaxed) }

    public static func install() {
        let handler: @convention(c) (Int32) -> Void = { _ in
            // A second signal exits at once (the user insists); exactly-once survives that too.
            if Shutdown.requested.exchange(true, ordering: .relaxed) { _exit(130) }
        }
        signal(SIGINT, handler)
        signal(SIGTERM, handler)
    }
}
